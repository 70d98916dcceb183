"""Grants: what a capability may do, where it came from, and whether it still may.

How it works: every capability the kernel hands out is backed by a ``Grant``
(its ``Scope`` plus a link to the grant it was derived from). A grant is live
while neither it nor any ancestor is revoked, so revoking one grant kills
every capability derived from it, on every connection, on their next call:
all capability objects for one grant share the same ``Grant`` instance.
Grants live only in memory until a token is saved for one of them (or a
descendant); then the grant and its ancestors are written to the ``grants``
family so that tokens and revocations survive restarts.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from aos.errors import PermissionDenied, Revoked
from aos.kernel.store import Op


@dataclass(frozen=True, slots=True)
class Scope:
    """The authority of one grant. Attenuation only ever narrows it."""

    kind: str  # kernel | cas | journal | timers | mailbox | revoker
    universe: str = ""
    read_only: bool = False
    world: str = ""  # journal: "" = every world of the universe
    send_to: str = "*"  # mailbox patterns: "*" any, "" none, else one name
    receive_from: str = "*"

    def describe(self) -> str:
        parts = [self.kind]
        if self.universe:
            parts.append(f"universe={self.universe}")
        if self.kind == "journal" and self.world:
            parts.append(f"name={self.world}")  # a raw journal's name (the field is historical)
        if self.kind == "mailbox":
            parts.append(f"send={self.send_to or 'none'} receive={self.receive_from or 'none'}")
        if self.read_only:
            parts.append("read-only")
        return " ".join(parts)


def pattern_covers(outer: str, inner: str) -> bool:
    """Whether mailbox pattern ``inner`` is within ``outer``."""
    return outer == "*" or inner == "" or outer == inner


def pattern_allows(pattern: str, name: str) -> bool:
    return pattern == "*" or (pattern != "" and pattern == name)


@dataclass(eq=False, slots=True)
class Grant:
    id: str
    scope: Scope
    parent: Grant | None
    revoked: bool = False
    persisted: bool = False
    on_revoke: list[Callable[[], None]] = field(default_factory=list)

    def live(self) -> bool:
        grant: Grant | None = self
        while grant is not None:
            if grant.revoked:
                return False
            grant = grant.parent
        return True

    def check(self) -> None:
        """Raise ``Revoked`` unless this grant and all its ancestors are live."""
        if not self.live():
            raise Revoked(f"this {self.scope.kind} capability has been revoked")


class GrantTable:
    """All persisted grants, plus minting, attenuation and revocation."""

    ROOT_ID = "root"

    def __init__(self, rows: dict[str, bytes]) -> None:
        self._by_id: dict[str, Grant] = {}
        self._watchers: list[Callable[[], None]] = []
        decoded = {grant_id: json.loads(raw) for grant_id, raw in rows.items()}
        for grant_id in decoded:
            self._load(grant_id, decoded)
        if self.ROOT_ID not in self._by_id:
            self._by_id[self.ROOT_ID] = Grant(self.ROOT_ID, Scope("kernel"), None)

    def _load(self, grant_id: str, decoded: dict[str, dict]) -> Grant | None:  # type: ignore[type-arg]
        if grant_id in self._by_id:
            return self._by_id[grant_id]
        row = decoded.get(grant_id)
        if row is None:
            return None
        parent = self._load(row["parent"], decoded) if row["parent"] else None
        grant = Grant(grant_id, Scope(**row["scope"]), parent, row["revoked"], persisted=True)
        self._by_id[grant_id] = grant
        return grant

    @property
    def root(self) -> Grant:
        return self._by_id[self.ROOT_ID]

    def get(self, grant_id: str) -> Grant | None:
        return self._by_id.get(grant_id)

    def derive(self, parent: Grant, scope: Scope) -> Grant:
        """A new child grant of ``parent`` (held in memory until saved)."""
        parent.check()
        return Grant(secrets.token_hex(12), scope, parent)

    def attenuate(self, parent: Grant, **narrower: object) -> Grant:
        """A child grant whose scope is the parent's with ``narrower`` applied.

        Raises ``PermissionDenied`` if the change would widen authority.
        """
        scope = parent.scope
        new = replace(scope, **narrower)  # type: ignore[arg-type]
        if scope.read_only and not new.read_only:
            raise PermissionDenied("cannot remove read-only from a read-only capability")
        if scope.world and new.world != scope.world:
            raise PermissionDenied(f"capability is limited to world {scope.world}")
        if not (pattern_covers(scope.send_to, new.send_to) and pattern_covers(scope.receive_from, new.receive_from)):
            raise PermissionDenied("cannot widen a mailbox capability")
        return self.derive(parent, new)

    def persist_ops(self, grant: Grant) -> list[Op]:
        """Writes that make ``grant`` and its ancestors durable (idempotent)."""
        ops = []
        node: Grant | None = grant
        while node is not None and not node.persisted:
            ops.append(Op("grants", node.id.encode(), self._encode(node)))
            node = node.parent
        return ops

    def mark_persisted(self, grant: Grant) -> None:
        node: Grant | None = grant
        while node is not None and not node.persisted:
            node.persisted = True
            self._by_id[node.id] = node
            node = node.parent

    def revoke(self, grant: Grant) -> list[Op]:
        """Revoke now (in memory, effective at once); return the writes that make it durable."""
        grant.revoked = True
        for watcher in list(self._watchers):
            watcher()
        return [Op("grants", grant.id.encode(), self._encode(grant))] if grant.persisted else []

    def watch_revocations(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` after every revocation; returns an unsubscribe function."""
        self._watchers.append(callback)
        return lambda: self._watchers.remove(callback) if callback in self._watchers else None

    @staticmethod
    def _encode(grant: Grant) -> bytes:
        row = {"scope": asdict(grant.scope), "parent": grant.parent.id if grant.parent else "", "revoked": grant.revoked}
        return json.dumps(row, sort_keys=True).encode()

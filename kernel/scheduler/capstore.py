"""The scheduler's grants and tokens, in etcd, so every scheduler honours every token.

``caps/grants.py`` and ``caps/tokens.py`` are reused as they are: they read
a store (``get``, ``scan``) and hand their writes to a committer
(``commit(ops)``). Here the store is the view's mirror of
``P/caps/<family>/<hex key>`` and the committer one etcd transaction per call,
applied to the mirror once etcd took it. A grant row another scheduler writes
(a new grant, a revocation) reaches this one through the watch and is filed
into its ``GrantTable`` (``sync``), so a revocation anywhere stops the
capability everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict

from aos.caps.grants import Grant, GrantTable, Scope
from aos.kernel.scheduler.etcd import Etcd
from aos.kernel.scheduler.view import ClusterView
from aos.kernel.store import Op

FAMILIES = ("grants", "tokens")


class EtcdCapStore:
    """``KernelStore``'s read side for the ``grants`` and ``tokens`` families, from the view."""

    def __init__(self, view: ClusterView) -> None:
        self.view = view

    def get(self, family: str, key: bytes) -> bytes | None:
        return self.view.caps.get((family, key))

    def scan(self, family: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for (fam, key), value in sorted(self.view.caps.items()):
            if fam == family and key.startswith(prefix):
                yield key, value


class EtcdCommitter:
    """``GroupCommitter.commit`` for cap ops: one transaction, then the mirror."""

    def __init__(self, etcd: Etcd, view: ClusterView) -> None:
        self.etcd = etcd
        self.view = view

    async def commit(self, ops: list[Op]) -> None:
        if not ops:
            return
        tx = self.etcd.tx
        writes = []
        for op in ops:
            key = self.etcd.keys.cap(op.family, op.key)
            writes.append(tx.delete(key) if op.value is None else tx.put(key, op.value))
        await self.etcd.txn([], writes)
        for op in ops:
            if op.value is None:
                self.view.caps.pop((op.family, op.key), None)
            else:
                self.view.caps[(op.family, op.key)] = op.value


def root_row() -> bytes:
    """The root grant of a cluster: the scheduler's admin authority."""
    row = {"scope": asdict(Scope("scheduler")), "parent": "", "revoked": False}
    return json.dumps(row, sort_keys=True).encode()


def sync(table: GrantTable, grant_id: str, raw: bytes | None) -> None:
    """File a grant row that arrived from etcd into ``table`` (new grants, revocations)."""
    if raw is None:
        return
    row = json.loads(raw)
    known: Grant | None = table.get(grant_id)
    if known is None:
        parent = table.get(row["parent"]) if row["parent"] else None
        if row["parent"] and parent is None:
            return  # its parent arrives first in the same transaction; a later event files it
        grant = Grant(grant_id, Scope(**row["scope"]), parent, row["revoked"], persisted=True)
        table._by_id[grant_id] = grant  # noqa: SLF001  (the table has no public insert; loading is what this is)
        return
    known.persisted = True
    if row["revoked"] and not known.revoked:
        table.revoke(known)

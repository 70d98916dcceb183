"""Portal mail between the host kernels of a cluster: where the destination world runs, and getting it there.

How it works. A world's ``portal.send`` (``kernel/host/effects.py``) names a
world of its universe (``W``) or, under a grant, of another (``U/W``). The
sending host looks the world up in its mirror of etcd (the slots the host
agent already watches for its assignments, and the ``hosts``/``hostcaps``
keys: every host's address and delegated Kernel token):

- placed here (or already here): the kernel's own inbox, as on one kernel;
- placed on another host: ``Kernel.deliverPortal`` on that host, through its
  delegated Kernel token (one cached connection per host), with the intent's
  idempotency key as the message id;
- no host yet (being placed, its host just died): wait and look again.

Every refusal (``WorldMoved``: the world moved on, or has not arrived yet), a
lost connection or a host that does not answer is retried, with backoff
capped at ``MAX_BACKOFF``, while the intent stays open: the effect runs until
a host's inbox answers. A host that died after accepting is caught by the
message id: the inbox's accepted ids travel with the world (shared storage),
so the retry to its next host answers ``accepted=False`` and the world sees
the event once. A sender that crashes re-runs the open intent with the same
idempotency key, so the same holds. Only a world that no view knows for
``UNKNOWN_GRACE`` seconds fails the send (``unknown_world``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import capnp

from aos.errors import AosError, InvalidArgument, PayloadTooLarge, PermissionDenied, UnknownWorld, WorldMoved
from aos.kernel.scheduler.layout import Placement, world_key

if TYPE_CHECKING:
    from aos.kernel.scheduler.view import ClusterView

log = logging.getLogger("aos.kernel.portal")

FIRST_BACKOFF = 0.01
MAX_BACKOFF = 1.0
CALL_TIMEOUT = 10.0  # a host that takes longer is treated as gone for this try
UNKNOWN_GRACE = 3.0  # a world just created may not be in this host's view yet
# refusals that a retry would meet again (bad names, too big, not a Kernel capability)
PERMANENT = (InvalidArgument, PermissionDenied, PayloadTooLarge)


@dataclass(frozen=True, slots=True)
class Route:
    """Where mail for one world goes now: ``here``, ``host`` (``host``/``address``/``token``),
    ``wait`` (no live host yet: ``why``) or ``unknown`` (no such world in the view)."""

    kind: str
    host: str = ""
    address: str = ""
    token: str = ""
    why: str = ""


def find_placement(slots: ClusterView | None, universe: str, world: str) -> Placement | None:
    if slots is None:
        return None
    key = world_key(universe, world)
    for entries in slots.slots.values():
        found = entries.get(key)
        if found is not None:
            return found
    return None


def route(slots: ClusterView | None, peers: ClusterView | None, me: str, universe: str, world: str) -> Route:
    """Pure: where mail for ``universe/world`` goes, from the two mirrors."""
    if slots is None or peers is None:
        return Route("wait", why="this host has not joined its cluster yet")
    placement = find_placement(slots, universe, world)
    if placement is None:
        return Route("unknown", why=f"no world {world_key(universe, world)} in the cluster")
    if not placement.host:
        return Route("wait", why=f"world {placement.key} waits for a host: {placement.reason or 'placing'}")
    if placement.host == me:
        return Route("here", host=me)
    record, token = peers.hosts.get(placement.host), peers.hostcaps.get(placement.host)
    if record is None or token is None:
        return Route("wait", why=f"host {placement.host} of world {placement.key} is not live")
    return Route("host", placement.host, record.address, token)


class HostKernels:
    """One connection per peer host, restored with its delegated Kernel token; dropped on any failure."""

    def __init__(self) -> None:
        self._links: dict[str, tuple[str, str, Any, Any]] = {}  # host -> (address, token, conn, kernel)
        self._locks: dict[str, asyncio.Lock] = {}
        self.tls_ca = ""  # trusted for peers that advertise tls: (aos-kernel --tls-ca); "" = the system's CAs

    async def kernel(self, host: str, address: str, token: str) -> Any:
        from aos.kernel.client import Connection, TlsOptions, host_tls

        async with self._locks.setdefault(host, asyncio.Lock()):  # one connection per host, not one per sender
            link = self._links.get(host)
            if link is not None and link[0] == address and link[1] == token:
                return link[3]
            self.forget(host)
            conn = await asyncio.wait_for(Connection.open(address, tls=host_tls(address, TlsOptions(self.tls_ca))),
                                          CALL_TIMEOUT)
            try:
                kernel = await asyncio.wait_for(conn.restore_kernel(token), CALL_TIMEOUT)
            except BaseException:
                conn.close()
                raise
            self._links[host] = (address, token, conn, kernel)
            return kernel

    def forget(self, host: str, kernel: Any = None) -> None:
        """Drop the host's connection (only if it is still ``kernel``'s, when given: another sender may
        have opened a fresh one meanwhile)."""
        link = self._links.get(host)
        if link is not None and (kernel is None or link[3] is kernel):
            del self._links[host]
            try:
                link[2].close()
            except Exception:  # noqa: BLE001 -- a connection that is already gone
                pass

    def close(self) -> None:
        for host in list(self._links):
            self.forget(host)


class PortalRoutes:
    """A host's side of cross-host portal mail; ``WorldHost.cluster`` while the host is in a cluster."""

    def __init__(self, host_id: str) -> None:
        self.host_id = host_id
        self.slots: ClusterView | None = None  # the agent's mirror of P/slots
        self.peers: ClusterView | None = None  # P/hosts and P/hostcaps
        self.links = HostKernels()
        self.remote_deliveries = 0
        self.retries = 0

    def attach(self, slots: ClusterView, peers: ClusterView) -> None:
        self.slots, self.peers = slots, peers

    def placed_here(self, universe: str, world: str) -> bool:
        placement = find_placement(self.slots, universe, world)
        return placement is not None and placement.host == self.host_id

    async def deliver(self, universe: str, world: str, message_id: str, from_world: str, schema: str,
                      value: bytes, local: Callable[[], Awaitable[bool]], held: Callable[[], bool]) -> bool:
        """Deliver until a host's inbox answers (True: accepted, False: a duplicate).

        ``local`` puts the mail into this kernel's inbox (``WorldMoved`` if the world is not here);
        ``held``: the world is in this kernel's registry (assigned away but not released yet: its mail
        leaves with it). Raises ``UnknownWorld`` for a world no view knows after ``UNKNOWN_GRACE`` and
        the ``PERMANENT`` refusals; retries everything else (cancel the task to stop)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = FIRST_BACKOFF
        while True:
            where = route(self.slots, self.peers, self.host_id, universe, world)
            why, kernel = where.why, None
            try:
                if where.kind == "here" or held():
                    return await local()
                if where.kind == "host":
                    kernel = await self.links.kernel(where.host, where.address, where.token)
                    accepted = await asyncio.wait_for(
                        kernel.deliver_portal(universe, from_world, world, message_id, schema, value), CALL_TIMEOUT)
                    self.remote_deliveries += 1
                    return bool(accepted)
                if where.kind == "unknown" and loop.time() - started >= UNKNOWN_GRACE:
                    raise UnknownWorld(why)
            except WorldMoved as exc:  # not there (yet, or any more): look again
                why = str(exc)
            except UnknownWorld:
                if where.kind == "unknown":
                    raise
                why = f"world {world_key(universe, world)} is not on host {where.host} yet"
            except PERMANENT:
                raise  # the same call would be refused again: the sender's receipt says why
            except (AosError, capnp.KjException, OSError, asyncio.TimeoutError) as exc:
                why = f"host {where.host}: {type(exc).__name__}: {str(exc)[:200]}"
                if where.kind == "host":
                    self.links.forget(where.host, kernel)
            self.retries += 1
            log.info("event=portal_retry world=%s in_s=%.3f why=%r", world_key(universe, world), delay, why[:200])
            await asyncio.sleep(delay)  # backoff between tries; the intent stays open meanwhile
            delay = min(delay * 2, MAX_BACKOFF)

    def close(self) -> None:
        self.links.close()

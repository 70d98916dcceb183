"""A host kernel's side of the cluster (``aos-kernel --scheduler ADDR``): join, lease, advertise, run.

How it works:

1. **Join.** The agent mints a delegated Kernel capability of its own kernel
   (kept in ``DATA/scheduler.kernel.token`` so a restart reuses it), connects
   to the scheduler with ``--scheduler-token`` and calls ``Scheduler.join``
   with its advertisement and that token. The scheduler checks that the
   address and token reach this kernel and answers where etcd is.
2. **Lease.** The agent holds its own etcd lease (one per host, whatever it
   runs) and puts ``P/hosts/<id>`` (address, capacity, labels, load) and
   ``P/hostcaps/<id>`` (the delegated token) under it. The lease is the
   host's liveness: if the process dies the keys lapse after the TTL and the
   leader places its worlds elsewhere. Liveness goes to etcd directly, not
   through the scheduler, so a scheduler failover never looks like a dead
   host, and the scheduler is never in the heartbeat path.
3. **Run what is assigned.** The agent watches the slots. A world assigned
   here with no ``previous`` host is acquired; a world assigned away from
   here is released, and then its ``previous`` is cleared so the new host
   acquires it without fencing this one. Acquire and release are the
   kernel's own ``WorldHost.acquire``/``release`` (shared storage); a kernel
   without them advertises no storage, so the scheduler pins its worlds to it
   and never asks it to move one (``WorldMover.supported``). A world still
   here that the view places on another host (not handed over by this one)
   was owned again at a restart during this host's own failover: once its
   head names this host no more it is dropped locally (``drop_lost``), so it
   answers ``WorldMoved``, not reads from a stale copy.

If the lease is lost (etcd away longer than the TTL) the agent joins again
with a new lease; by then its worlds may be elsewhere, and storage fencing
makes sure this host can no longer write them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from aos.caps.grants import Scope
from aos.errors import AosError
from aos.kernel.names import check_name
from aos.kernel.scheduler.errors import EtcdUnavailable
from aos.kernel.scheduler.layout import HostRecord, Placement, dumps, slot_from, slot_to

if TYPE_CHECKING:  # etcd (aetcd, grpc.aio) is imported only by a kernel that joins a cluster
    from aos.kernel.scheduler.etcd import Etcd, Lease
    from aos.kernel.scheduler.view import ClusterView
    from aos.kernel.server import KernelServer
    from aos.kernel.services import KernelServices

log = logging.getLogger("aos.kernel.agent")

HOST_ID_FILE = "scheduler.host"
TOKEN_FILE = "scheduler.kernel.token"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """scheduler: the scheduler's address; token_file: a Scheduler token (its admin token, say);
    capacity: total world load this host takes; labels: ``k=v`` a world may require;
    advertise: the address clients and the scheduler use ("" = the first TCP listener, else the first);
    host_id: "" = the storage host id, else the one kept in the data directory;
    drain_on_stop: seconds a stopping host waits for its worlds to be handed to other hosts;
    tls_ca: the CA file trusted for ``tls:`` schedulers and peer hosts ("" = the system's CAs)."""

    scheduler: str
    token_file: str
    capacity: float = 100.0
    labels: dict[str, str] = field(default_factory=dict)
    advertise: str = ""
    host_id: str = ""
    drain_on_stop: float = 0.0
    tls_ca: str = ""


def add_options(parser: Any) -> None:
    """``aos-kernel``'s cluster options."""
    parser.add_argument("--scheduler", metavar="ADDR", action="append",
                        help="join the cluster of the aos-scheduler at ADDR (tcp:HOST:PORT, tls:HOST:PORT or "
                             "unix:PATH); several (comma-separated or repeated): whichever leads")
    parser.add_argument("--tls-ca", metavar="PEM", default=None,
                        help="CA to trust for this kernel's own TLS connections: to a tls: scheduler and to other "
                             "hosts that listen with TLS, for portal mail (default: $AOS_TLS_CA, else the system's)")
    parser.add_argument("--scheduler-token", metavar="FILE",
                        help="a token for that scheduler (default: $AOS_SCHEDULER_TOKEN_FILE)")
    parser.add_argument("--capacity", type=float, default=100.0,
                        help="world load this host takes (a world's load is 1 by default; default 100)")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                        help="a label worlds may require (repeatable)")
    parser.add_argument("--advertise", metavar="ADDR", default="",
                        help="address the scheduler and clients use for this kernel (default: its first TCP listener)")
    parser.add_argument("--drain-on-stop", type=float, default=0.0, metavar="SECONDS",
                        help="on SIGTERM, hand this host's worlds to other hosts first, waiting at most SECONDS "
                             "(shared storage; default 0: stop at once and let them fail over)")


def config_from(args: Any) -> AgentConfig | None:
    """The agent's config from ``aos-kernel``'s options (None without ``--scheduler``); ``InvalidArgument`` if wrong."""
    from aos.errors import InvalidArgument

    if not args.scheduler:
        if args.label or args.advertise or args.scheduler_token or args.tls_ca:
            raise InvalidArgument("--label, --advertise, --scheduler-token and --tls-ca go with --scheduler ADDR")
        return None
    token = args.scheduler_token or os.environ.get("AOS_SCHEDULER_TOKEN_FILE", "")
    if not token:
        raise InvalidArgument("--scheduler needs --scheduler-token FILE (a token of that scheduler)")
    if not os.path.isfile(token):
        raise InvalidArgument(f"--scheduler-token {token}: no such file")
    if args.capacity < 0:
        raise InvalidArgument(f"--capacity {args.capacity:g}: use 0 or more")
    if args.drain_on_stop < 0:
        raise InvalidArgument(f"--drain-on-stop {args.drain_on_stop:g}: use 0 or more seconds")
    from aos.kernel.scheduler.client import scheduler_addresses
    from aos.kernel.tls import check_trusted_ca, trusted_ca

    tls_ca = trusted_ca(args.tls_ca)
    check_trusted_ca(tls_ca)
    return AgentConfig(",".join(scheduler_addresses(args.scheduler)), token, args.capacity,
                       parse_labels(args.label), args.advertise,
                       drain_on_stop=args.drain_on_stop, tls_ca=tls_ca)


def parse_labels(items: list[str]) -> dict[str, str]:
    from aos.errors import InvalidArgument

    labels = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgument(f"--label {item!r}: use KEY=VALUE")
        labels[check_name(key, "label key")] = check_name(value, "label value")
    return labels


class WorldMover:
    """The seam to the kernel's hand-over: ``WorldHost.acquire``/``release`` once shared storage has them."""

    def __init__(self, services: KernelServices, storage: Any) -> None:
        self.services = services
        self.storage = storage
        host = services.worlds
        self.supported = storage is not None and hasattr(host, "acquire") and hasattr(host, "release")

    def has(self, universe: str, world: str) -> bool:
        """In this kernel's registry now (a lookup, no error raised, for the many worlds not here)."""
        return self.services.worlds.registry.get(universe, world) is not None

    async def acquire(self, universe: str, world: str, take_over: bool) -> None:
        """Take the world; ``take_over`` when its previous host died without handing it over (fences it)."""
        import inspect

        acquire = self.services.worlds.acquire  # type: ignore[attr-defined]
        if "take_over" in inspect.signature(acquire).parameters:
            await acquire(universe, world, take_over=take_over)
        else:
            await acquire(universe, world)

    async def release(self, universe: str, world: str) -> None:
        await self.services.worlds.release(universe, world)  # type: ignore[attr-defined]

    async def drop(self, universe: str, world: str, placed_on: str) -> bool:
        """Forget locally a world placed on another host that took it (False: kept, its head names us)."""
        return bool(await self.services.worlds.drop_lost(universe, world, placed_on))  # type: ignore[attr-defined]


class HostAgent:
    def __init__(self, config: AgentConfig, server: KernelServer) -> None:
        assert server.services is not None
        self.config = config
        self.server = server
        self.services = server.services
        storage = getattr(server, "storage", None)
        self.mover = WorldMover(self.services, storage)
        self.storage_url = storage.config.url if self.mover.supported else ""
        self.host_id = config.host_id or (getattr(storage, "host_id", "") if storage is not None else "") \
            or self._kept_host_id()
        self.address = config.advertise or _advertise(server)
        self.etcd: Etcd | None = None
        self.lease: Lease | None = None
        self.joined = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._mine: dict[str, Placement] = {}
        self._busy: set[str] = set()
        self.stopping = False
        self._bytes: dict[str, int] = {}
        self._bytes_at = -1e9
        # portal mail to worlds on other hosts goes through the mirrors this agent keeps (portal.py)
        from aos.kernel.scheduler.portal import PortalRoutes

        self.portal = PortalRoutes(self.host_id)
        self.portal.links.tls_ca = config.tls_ca
        if hasattr(self.services.worlds, "cluster"):
            self.services.worlds.cluster = self.portal

    def _kept_host_id(self) -> str:
        path = os.path.join(self.server.config.data_dir, HOST_ID_FILE)
        if os.path.exists(path):
            with open(path) as f:
                return f.read().strip()
        host_id = "host-" + secrets.token_hex(4)
        with open(path, "w") as f:
            f.write(host_id + "\n")
        return host_id

    async def _kernel_token(self) -> str:
        path = os.path.join(self.server.config.data_dir, TOKEN_FILE)
        if os.path.exists(path):
            with open(path) as f:
                token = f.read().strip()
            try:
                grant = self.services.grants.get(self.services.tokens.resolve(token))
                if grant is not None and grant.live():
                    return token
            except AosError:
                pass
        grant = self.services.grants.derive(self.services.grants.root, Scope("kernel"))
        token = await self.services.save(grant)
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        os.replace(path + ".tmp", path)
        return token

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while not self.stopping:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (AosError, OSError) as exc:
                log.warning("event=scheduler_session_ended host=%s error=%r", self.host_id, str(exc)[:200])
            self.joined.clear()
            await asyncio.sleep(1.0)

    async def _join(self) -> tuple[str, int]:
        from aos.kernel.scheduler.client import SchedulerSession

        with open(self.config.token_file) as f:
            token = f.read().strip()
        advert = {"hostId": self.host_id, "address": self.address, "capacity": self.config.capacity,
                  "labels": [{"key": k, "value": v} for k, v in sorted(self.config.labels.items())],
                  "storage": self.storage_url, "health": self.server.health.address if self.server.health else ""}
        from aos.kernel.client import TlsOptions

        # schedulers given as tls:HOST:PORT: every one is reached over TLS, trusting --tls-ca
        tls = TlsOptions(self.config.tls_ca) if "tls:" in self.config.scheduler else None
        session = await SchedulerSession.open(self.config.scheduler, token, tls=tls)
        try:
            kernel_token = await self._kernel_token()
            return await session.on_leader(lambda s: s.scheduler.join(advert, kernel_token))
        finally:
            session.close()

    async def _session(self) -> None:
        from aos.kernel.scheduler.etcd import Etcd, watch_events
        from aos.kernel.scheduler.view import ClusterView

        etcd_url, ttl = await self._join()
        self.etcd = etcd = await Etcd.open(etcd_url)
        try:
            lease = self.lease = await etcd.lease(ttl)
            lease.start()
            await etcd.put(etcd.keys.hostcap(self.host_id), (await self._kernel_token()).encode(), lease=lease.id)
            tx = etcd.tx
            drain = etcd.keys.drain(self.host_id)  # set by our own last stop, not by the operator: lift it
            await etcd.txn([tx.value(drain) == DRAINED_BY_STOP], [tx.delete(drain)])
            await self._advertise()
            entries, revision = await etcd.get_prefix(etcd.keys.slots)
            view = ClusterView(etcd.keys)
            view.load(entries, revision)
            log.info("event=joined host=%s address=%s scheduler=%s", self.host_id, self.address, self.config.scheduler)
            print(f"joined {self.host_id} scheduler={self.config.scheduler}", flush=True)
            self.joined.set()
            # other hosts' addresses and Kernel tokens, for portal mail; a view of their own, so that
            # advertisements (ours too) do not wake the assignment loop below
            peers = ClusterView(etcd.keys)
            watches = [(etcd.keys.slots, revision + 1, view.apply)]
            for prefix in (etcd.keys.hosts, etcd.keys.hostcap("")):
                rows, at = await etcd.get_prefix(prefix)
                peers.load(rows, at)
                watches.append((prefix, at + 1, peers.apply))
            self.portal.attach(view, peers)
            watch = asyncio.ensure_future(_watch_all(etcd, watches))
            lost = asyncio.ensure_future(lease.lost.wait())
            try:
                while not lease.lost.is_set() and not watch.done():
                    await self._follow(view)
                    await self._advertise()
                    changed = asyncio.ensure_future(view.wait_changed(max(1.0, ttl / 2)))
                    await asyncio.wait([changed, lost, watch], return_when=asyncio.FIRST_COMPLETED)
                    changed.cancel()
                if watch.done() and not watch.cancelled() and watch.exception() is not None:
                    raise watch.exception()  # type: ignore[misc]
            finally:
                watch.cancel()
                lost.cancel()
        finally:
            if self.lease is not None and self.stopping:
                await self.lease.revoke()
            self.lease = None
            await etcd.close()

    async def _advertise(self) -> None:
        assert self.etcd is not None and self.lease is not None
        host = self.services.worlds
        record = HostRecord(self.host_id, self.address, self.config.capacity, dict(self.config.labels),
                            self.storage_url, os.getpid(),
                            self.server.health.address if self.server.health else "",
                            load=sum(p.load for p in self._mine.values()), worlds=len(host.registry),
                            bytes=self._stored_bytes())
        await self.etcd.put(self.etcd.keys.host(self.host_id), dumps(asdict(record)), lease=self.lease.id)

    def _stored_bytes(self) -> dict[str, int]:
        """Journal bytes per universe of the worlds this host runs (what byte quotas count), every 10 s at most."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._bytes_at < 10.0:
            return self._bytes
        from aos.kernel.host.registry import journal_universe
        from aos.kernel.names import key

        sizes: dict[str, int] = {}
        store = self.services.store
        for meta in self.services.worlds.registry.all():
            total = sum(len(v) for _, v in store.scan("journal", key(journal_universe(meta.universe), meta.world_id)))
            sizes[meta.universe] = sizes.get(meta.universe, 0) + total
        self._bytes, self._bytes_at = sizes, loop.time()
        return sizes

    async def _follow(self, view: ClusterView) -> None:
        """Acquire what is newly assigned here, release what moved away, drop what another host took."""
        placements = view.placements()
        now = {p.key: p for p in placements if p.host == self.host_id}
        if self.mover.supported:
            for placement in placements:
                # still here but placed on another host (not by a hand-over from us), or being handed to us
                # by another: owned again at a restart during our own failover (or kept through a lost
                # lease) while the leader gave it away. Dropped locally once its head names us no more, so
                # it answers no read from a stale copy, and is acquired afresh when it is assigned here
                elsewhere = placement.host not in ("", self.host_id) and placement.previous != self.host_id
                coming = placement.host == self.host_id and placement.previous not in ("", self.host_id)
                if ((elsewhere or coming) and placement.key not in self._busy
                        and self.mover.has(placement.universe, placement.world)):
                    self._busy.add(placement.key)
                    asyncio.ensure_future(self._drop(placement))
        for key, placement in now.items():
            # epoch 1 is the world's creation on this host, by the scheduler through our Kernel cap:
            # nothing to acquire (and acquiring while the create runs would race it)
            if key in self._busy or placement.previous or placement.epoch <= 1:
                continue
            if not self.mover.has(placement.universe, placement.world) and self.mover.supported:
                self._busy.add(key)
                asyncio.ensure_future(self._acquire(placement))
        for key, placement in view_items_moved_away(view, self.host_id):
            if key in self._busy:
                continue
            self._busy.add(key)
            asyncio.ensure_future(self._release(placement, view))
        self._mine = now

    async def _acquire(self, placement: Placement) -> None:
        try:
            await self.mover.acquire(placement.universe, placement.world, placement.takeover)
            log.info("event=acquired world=%s epoch=%d", placement.key, placement.epoch)
        except AosError as exc:
            log.warning("event=acquire_failed world=%s error=%r", placement.key, str(exc)[:200])
        finally:
            self._busy.discard(placement.key)

    async def _drop(self, placement: Placement) -> None:
        try:
            await self.mover.drop(placement.universe, placement.world, placement.host)
        except AosError as exc:
            log.warning("event=drop_failed world=%s error=%r", placement.key, str(exc)[:200])
        finally:
            self._busy.discard(placement.key)

    async def _release(self, placement: Placement, view: ClusterView) -> None:
        """Hand a world over: release it here, then clear ``previous`` so its new host takes it."""
        assert self.etcd is not None
        try:
            if self.mover.supported and self.mover.has(placement.universe, placement.world):
                await self.mover.release(placement.universe, placement.world)
                log.info("event=released world=%s to=%s", placement.key, placement.host)
            etcd, tx = self.etcd, self.etcd.tx
            for _ in range(8):
                slot = _slot_key_of(view, placement)
                entry = await etcd.get(slot)
                if entry is None:
                    return
                entries = slot_from(entry.value)
                current = entries.get(placement.key)
                if current is None or current.previous != self.host_id:
                    return
                entries[placement.key] = replace(current, previous="")
                if await etcd.txn([tx.mod(slot) == entry.mod_revision], [tx.put(slot, slot_to(entries))]):
                    return
        except (AosError, EtcdUnavailable) as exc:
            log.warning("event=release_failed world=%s error=%r", placement.key, str(exc)[:200])
        finally:
            self._busy.discard(placement.key)

    async def _drain_before_stop(self, timeout: float) -> None:
        try:
            await _drain_away(self, timeout)
        except (AosError, EtcdUnavailable) as exc:
            log.warning("event=drain_failed host=%s error=%r", self.host_id, str(exc)[:200])

    async def stop(self) -> None:
        if self.config.drain_on_stop > 0 and self.mover.supported and self.etcd is not None and self.joined.is_set():
            await self._drain_before_stop(self.config.drain_on_stop)
        self.stopping = True
        if self.lease is not None:
            await self.lease.revoke()  # its worlds fail over now, not after the TTL
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.portal.close()


async def _watch_all(etcd: Etcd, watches: list[tuple[bytes, int, Any]]) -> None:
    """Run several prefix watches; the first to fail ends them all (the session starts again)."""
    from aos.kernel.scheduler.etcd import watch_events

    try:
        async with asyncio.TaskGroup() as group:
            for prefix, start, apply in watches:
                group.create_task(watch_events(etcd, prefix, start, apply))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None  # what the session's loop knows how to handle (EtcdUnavailable)


DRAINED_BY_STOP = b"stopping"


async def _drain_away(agent: HostAgent, timeout: float) -> None:
    """Mark this host draining and wait until the leader moved its worlds off and it released them."""
    assert agent.etcd is not None
    etcd = agent.etcd
    await etcd.put(etcd.keys.drain(agent.host_id), DRAINED_BY_STOP)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        entries, _ = await etcd.get_prefix(etcd.keys.slots)
        mine = [p for e in entries for p in slot_from(e.value).values()
                if p.host == agent.host_id or p.previous == agent.host_id]
        if not mine:
            log.info("event=drained host=%s", agent.host_id)
            return
        await asyncio.sleep(0.1)
    log.warning("event=drain_timeout host=%s seconds=%g", agent.host_id, timeout)


def view_items_moved_away(view: ClusterView, host_id: str) -> list[tuple[str, Placement]]:
    return [(p.key, p) for p in view.placements() if p.previous == host_id and p.host != host_id]


def _slot_key_of(view: ClusterView, placement: Placement) -> bytes:
    for slot, entries in view.slots.items():
        if placement.key in entries:
            return view.keys.slot(slot)
    from aos.kernel.scheduler.layout import DEFAULT_SLOTS, slot_of

    return view.keys.slot(slot_of(placement.universe, placement.world, DEFAULT_SLOTS))


def _advertise(server: KernelServer) -> str:
    addresses = [str(a) for a in server.addresses]
    tcp = [a for a in addresses if a.startswith("tcp:")]
    if tcp and server.config.tls_cert:
        return "tls:" + tcp[0][len("tcp:"):]
    return (tcp or addresses)[0]

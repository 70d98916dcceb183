"""Worlds moving between kernels on shared storage: claim, release, acquire, and where a world went.

How it works (the storage side is ``kernel/storage/hosting.py``):

- **Create** claims the world's head first (owner = this host), so two
  kernels can never both create one world id.
- **Release** stops the world here (``WorldHost.detach``: no new inputs,
  commits finished, running effects stopped with their intents left open),
  then has storage flush everything the world committed and write its head
  released, and drop its local state, all between two turns. What is left
  is a *tombstone* (``storage.moved`` in ``meta``): the world's last entry,
  so ``Worlds.list`` shows it released and every call on it gets
  ``WorldMoved`` instead of ``UnknownWorld``.
- **Acquire** writes the world's whole state (journal, registry entry,
  inbox, accepted mail ids, timers) into RocksDB before its head names this
  host, then lets the stores see it and wakes it: open intents restart with
  their idempotency keys, pending timers fire here, waiting mail is read.
- **An event for a world not here** (``World.send``, portal mail) acquires
  it when it is released and this kernel did not release it itself; a
  world held by another kernel is only taken by an explicit acquire, since
  that fences the other kernel's whole log.
- **At start** every local world is checked against its head: still ours
  (re-acquired: a new log generation), or gone (released before a crash,
  or taken over while we were down), which leaves a tombstone.
- **Lost while here**: a world the scheduler placed on another host whose
  head no longer names this one (owned again at a restart during our own
  failover, then taken over) is dropped locally with a tombstone
  (``drop_lost``), writing nothing to shared storage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aos.errors import InvalidArgument, OwnershipLost, UnknownWorld, WorldMoved
from aos.kernel.host.effects import inbox
from aos.kernel.host.registry import WorldMeta, journal_universe
from aos.kernel.names import key
from aos.kernel.store import Op
from aos.kernel.storage.classify import timer_target
from aos.kernel.storage.contract import WorldHead
from aos.kernel.storage.hosting import ACQUIRING, MOVED, HostStorage
from aos.kernel.world.errors import WorldQuarantined

if TYPE_CHECKING:
    from aos.kernel.host.host import WorldHost

log = logging.getLogger("aos.kernel.world")

SNAPSHOT_AFTER = 256  # a release snapshots a world first when its replay would be longer than this


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A world this kernel released or lost: its entry as of then, and why it is gone."""

    meta: WorldMeta
    reason: str  # "released" or "taken over by host X"
    at_ms: int
    journal_height: int

    def op(self) -> Op:
        value = {"meta": json.loads(self.meta.to_json()), "reason": self.reason, "at_ms": self.at_ms,
                 "journal_height": self.journal_height}
        return Op("meta", MOVED + key(self.meta.universe, self.meta.world_id), json.dumps(value).encode())

    @classmethod
    def from_json(cls, raw: bytes) -> Tombstone:
        value = json.loads(raw)
        return cls(WorldMeta.from_json(json.dumps(value["meta"]).encode()), value["reason"], value["at_ms"],
                   value["journal_height"])


def placement(head: WorldHead | None, previous: str | None = None) -> dict[str, Any]:
    """A head as the wire's ``WorldLocation``."""
    if head is None:
        return {"host": "", "address": "", "epoch": 0, "previous": previous or "", "journalHeight": 0}
    return {"host": head.owner or "", "address": head.address or "", "epoch": head.epoch,
            "previous": previous or "", "journalHeight": head.flushed}


class HandOver:
    """The shared-storage half of a ``WorldHost`` (only on a kernel started with ``--storage``)."""

    def __init__(self, host: WorldHost, storage: HostStorage) -> None:
        self.host = host
        self.storage = storage
        self.moved: dict[tuple[str, str], Tombstone] = {}
        for raw_key, raw in host.services.store.scan("meta", MOVED):
            tomb = Tombstone.from_json(raw)
            self.moved[(tomb.meta.universe, tomb.meta.world_id)] = tomb
        self.releasing: set[tuple[str, str]] = set()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.acquisitions = self.releases = 0

    def _lock(self, universe: str, world_id: str) -> asyncio.Lock:
        return self._locks.setdefault((universe, world_id), asyncio.Lock())

    # --- start ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Own again every local world whose head still names this host; tombstone the others."""
        services = self.host.services
        acquiring = {tuple(k[len(ACQUIRING):].split(b"\x00")[:2]) for k, _ in services.store.scan("meta", ACQUIRING)}
        for meta in self.host.registry.all():
            world = (meta.universe, meta.world_id)
            marker = (meta.universe.encode(), meta.world_id.encode()) in acquiring
            head = await self.storage.head(*world)
            if head is not None and head.owner == self.storage.host_id:
                try:
                    await self.storage.reacquire(*world)
                except OwnershipLost:
                    head = await self.storage.head(*world)  # taken over since we read it: gone, as below
                else:
                    if marker:
                        services.store.write([Op("meta", ACQUIRING + key(*world), None)])
                    continue
            if head is None:
                # we wrote its head before anything else of it: shared storage lost it (or was wiped)
                await self.host._quarantine(meta, f"its head is missing from {self.storage.url}")
                continue
            extra: list[Op] = []
            if not marker:  # an acquire that never finished leaves no tombstone: we never held it
                holder = f"taken over by host {head.owner}" if head.owner else "released"
                tomb = Tombstone(meta, holder, _now_ms(), services.journal.head(journal_universe(meta.universe),
                                                                                   meta.world_id).durable)
                extra.append(tomb.op())
                self.moved[world] = tomb
            await self.storage._in_pool(self.storage.drop_local, meta.universe, meta.world_id, extra)
            self._forget_caches(*world)
            log.warning("event=world_gone universe=%s world=%s owner=%s", meta.universe, meta.world_id, head.owner)
        for universe, world_id in acquiring:
            if self.host.registry.get(universe.decode(), world_id.decode()) is None:
                services.store.write([Op("meta", ACQUIRING + key(universe.decode(), world_id.decode()), None)])

    # --- creating and finding ---------------------------------------------------------------------

    async def claim(self, universe: str, world_id: str) -> None:
        """Make this host the owner of a new world's head (``InvalidArgument`` if the id was ever used)."""
        if (universe, world_id) in self.moved:
            raise InvalidArgument(f"world id {world_id!r} is taken (this kernel released that world)")
        await self.storage.create(universe, world_id)

    def check(self, universe: str, world_id: str) -> None:
        """Raise ``WorldMoved`` for a world this kernel is releasing or released (from what it knows)."""
        world = (universe, world_id)
        if world in self.releasing:
            raise WorldMoved(f"world {world_id} is being released by this kernel (host {self.storage.host_id}); "
                             "call the kernel that acquires it")
        tomb = self.moved.get(world)
        if tomb is not None:
            raise WorldMoved(self._gone(world_id, tomb, None))

    def _gone(self, world_id: str, tomb: Tombstone | None, head: WorldHead | None) -> str:
        me = f"host {self.storage.host_id}"
        if head is not None and head.owner is not None and head.owner != self.storage.host_id:
            where = f" at {head.address}" if head.address else ""
            return (f"world {world_id} is held by host {head.owner}{where}, not by this kernel ({me}): "
                    f"call that kernel (taking it over here, aos world acquire --take-over {world_id}, fences it)")
        if tomb is not None and tomb.reason != "released":
            return f"world {world_id} was {tomb.reason}; this kernel ({me}) can no longer write it"
        return (f"world {world_id} was released by this kernel ({me}) and is in {self.storage.url}: the kernel "
                f"that gets its next event, or `aos world acquire {world_id}`, holds it next")

    async def locate(self, universe: str, world_id: str, on_released: str) -> None:
        """Make sure a call can go ahead here, or raise where the world is.

        ``on_released``: what a released world this kernel did not release
        itself means: ``"acquire"`` it (an event), ``"allow"`` (opening a
        capability; its first event acquires it) or ``"refuse"``.
        """
        if self.host.registry.get(universe, world_id) is not None:
            return
        world = (universe, world_id)
        if world in self.releasing:
            self.check(universe, world_id)
        head = await self.storage.head(universe, world_id)
        tomb = self.moved.get(world)
        if head is None:
            if tomb is not None:
                raise WorldMoved(self._gone(world_id, tomb, None))
            raise UnknownWorld(f"no world {world_id!r} in universe {universe}")
        if head.owner is None and tomb is None:
            if on_released == "acquire":
                await self.acquire(universe, world_id)  # WorldMoved if another kernel got there first
                return
            if on_released == "allow":
                return
            raise WorldMoved(f"world {world_id} is released and no kernel holds it: send it an event, or "
                             f"`aos world acquire {world_id}`, to wake it here")
        if head.owner == self.storage.host_id:
            async with self._lock(universe, world_id):  # an acquire of ours is finishing: wait for it
                pass
            if self.host.registry.get(universe, world_id) is not None:
                return
        raise WorldMoved(self._gone(world_id, tomb, head))

    # --- moving ----------------------------------------------------------------------------------

    async def release(self, universe: str, world_id: str) -> dict[str, Any]:
        """Hand the world over: drained, flushed, head released, dropped here (see the module doc)."""
        host = self.host
        async with self._lock(universe, world_id):
            meta = host.meta(universe, world_id)
            world = (universe, world_id)
            awake = host.awake(universe, world_id)
            if awake is not None and not meta.quarantined and awake.next_seq - meta.snapshot_seq > SNAPSHOT_AFTER:
                # the next owner wakes from this snapshot, not from a long replay
                await host.snapshot(universe, world_id)
                meta = host.meta(universe, world_id)
            self.releasing.add(world)
            try:
                meta = await host.detach(universe, world_id)
                height = host.services.journal.head(journal_universe(universe), world_id).durable
                tomb = Tombstone(meta, "released", _now_ms(), height)
                head = await self.storage.release(universe, world_id, [tomb.op()])
            except BaseException:
                host.registry.remember(meta)
                self.releasing.discard(world)
                host.wake_later(universe, world_id)  # its open intents must run again here
                raise
            self.releasing.discard(world)
            self.moved[world] = tomb
            self._forget_caches(universe, world_id)
        self.releases += 1
        log.info("event=world_released universe=%s world=%s height=%d", universe, world_id, height)
        return placement(head)

    async def drop_lost(self, universe: str, world_id: str, placed_on: str) -> bool:
        """Forget a world the scheduler gave another host (``placed_on``) that no longer names this one
        in its head: stopped and dropped here, local only, leaving a tombstone, so calls on it get
        ``WorldMoved``. False (kept) if it is not here, or its head still names this host: then the
        host given it takes it over by fencing this one's log, which holds all it acknowledged here.

        A host restarted during its own failover owns again at start a world the leader then hands
        to another host; its copy goes stale once that host takes it over and writes, and must not
        answer reads (nor make its agent think it holds the world when it is assigned back)."""
        host = self.host
        async with self._lock(universe, world_id):
            if host.registry.get(universe, world_id) is None:
                return False
            head = await self.storage.head(universe, world_id)
            if head is None or head.owner == self.storage.host_id:
                return False
            world = (universe, world_id)
            self.releasing.add(world)  # calls meanwhile: WorldMoved
            try:
                meta = await host.detach(universe, world_id)
                height = host.services.journal.head(journal_universe(universe), world_id).durable
                holder = f"taken over by host {head.owner}" if head.owner else "released"
                tomb = Tombstone(meta, f"{holder} (placed on host {placed_on})", _now_ms(), height)
                await self.storage.forget_local(universe, world_id, [tomb.op()])
            except BaseException:
                if host.registry.get(universe, world_id) is None and self.storage.store.get(
                        "worlds", key(universe, world_id)) is not None:
                    host.registry.load(universe, world_id)  # still here: the agent's next look tries again
                raise
            finally:
                self.releasing.discard(world)
            self.moved[world] = tomb
            self._forget_caches(universe, world_id)
        log.warning("event=world_dropped world=%s/%s holder=%s placed_on=%s height=%d", universe, world_id,
                    head.owner or "-", placed_on, height)
        return True

    async def acquire(self, universe: str, world_id: str, takeover: bool = False,
                      explicit: bool = False) -> tuple[WorldMeta, dict[str, Any]]:
        """Take the world here (released, or with ``takeover`` from its owner, fencing it) and wake it.

        ``WorldMoved`` when another kernel holds it and not ``takeover``. Only
        an ``explicit`` acquire (an operator's, a scheduler's) takes a world
        this kernel released itself."""
        host = self.host
        async with self._lock(universe, world_id):
            meta = host.registry.get(universe, world_id)
            if meta is not None:
                own = self.storage.heads.owned(universe, world_id) if self.storage.heads else None
                return meta, placement(own.head if own is not None else None, self.storage.host_id)  # here already
            if not explicit and (universe, world_id) in self.moved:
                raise WorldMoved(self._gone(world_id, self.moved[(universe, world_id)], None))
            try:
                acquired = await self.storage.acquire(universe, world_id, takeover)
            except OwnershipLost:  # held by another kernel (perhaps it just won the race)
                head = await self.storage.head(universe, world_id)
                raise WorldMoved(self._gone(world_id, None, head)) from None
            services = host.services
            self._forget_caches(universe, world_id)
            meta = host.registry.load(universe, world_id)
            assert meta is not None  # storage refuses a world without a registry entry
            services.timers.adopt(universe, [k.split(b"\x00")[1].decode() for k, v in services.store.scan(
                "timers", key(universe)) if timer_target(v) == inbox(world_id)])
            if (universe, world_id) in self.moved:
                services.store.write([Op("meta", MOVED + key(universe, world_id), None)])
                del self.moved[(universe, world_id)]
        self.acquisitions += 1
        log.info("event=world_acquired universe=%s world=%s from=%s takeover=%s epoch=%d", universe, world_id,
                 acquired.previous or "-", acquired.took_over, acquired.head.epoch)
        await self._prefetch(meta)
        try:
            await host.driver(universe, world_id)  # replay; open intents restart with their keys
        except WorldQuarantined:
            pass  # logged; its mail waits for an operator
        host.mail_arrived(universe, world_id)
        return host.meta(universe, world_id), placement(acquired.head, acquired.previous)

    async def checkpoint(self, universe: str, world_id: str) -> None:
        try:
            await self.storage.checkpoint(universe, world_id)
        except Exception as exc:  # noqa: BLE001 -- the log holds it all; the next checkpoint tries again
            log.warning("event=checkpoint_failed world=%s error=%r", world_id, str(exc)[:200])

    async def _prefetch(self, meta: WorldMeta) -> None:
        """Fetch the blobs a wake reads (manifest, snapshot) in a storage thread, not on the event loop."""
        cas = self.host.services.cas

        def fetch() -> None:
            for address in (meta.manifest, meta.snapshot):
                if address:
                    try:
                        cas.get(meta.universe, address)
                    except Exception:  # noqa: BLE001 -- the wake reports it (and quarantines)
                        pass

        await asyncio.get_running_loop().run_in_executor(self.storage.executor, fetch)

    def _forget_caches(self, universe: str, world_id: str) -> None:
        services = self.host.services
        services.journal.forget(journal_universe(universe), world_id)
        services.mailboxes.forget(universe, inbox(world_id))
        self.host.registry.forget(universe, world_id)

    # --- listing ----------------------------------------------------------------------------------

    def tombstones(self, universe: str) -> list[Tombstone]:
        return sorted((t for (u, _), t in self.moved.items() if u == universe), key=lambda t: t.meta.world_id)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

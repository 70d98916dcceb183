"""Many worlds in one kernel: create, wake, hibernate, snapshot, fork, and the world inboxes.

How it works: ``WorldRegistry`` knows every world; a ``WorldDriver`` exists
only for awake ones. ``driver()`` wakes a world by restoring its latest
snapshot from CAS and replaying the journal from that snapshot's marker
(which also checks the snapshot), appending any derived records a crash cut
off, and restarting its open intents with their original idempotency keys.
A reaper hibernates worlds that were quiescent for ``idle_seconds``: snapshot
to CAS, a marker in the journal, and the driver is dropped. Timer firings and
portal messages arrive in a world's inbox mailbox and wake it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from aos.adapters.base import Receipt
from aos.errors import InvalidArgument, KernelError, PermissionDenied, UnknownWorld, WorldMoved
from aos.kernel.host.driver import EPOCH, WorldDriver
from aos.kernel.host.effects import EffectDispatcher, effect_kind, inbox, world_of_inbox
from aos.kernel.host.governance import current_address, manifest_loader
from aos.kernel.host.registry import WorldMeta, WorldRegistry, journal_universe
from aos.kernel.names import check_name
from aos.kernel.world import cbor
from aos.kernel.world.errors import CborError, WorldError, WorldQuarantined
from aos.kernel.world.loader import load_runtimes
from aos.kernel.world.manifest import GrantDef, Manifest, parse_manifest
from aos.kernel.world.python_runtime import DEFAULT_STEP_SECONDS, PythonAllowList
from aos.kernel.world.records import ControlRecord, Stamp, decode_record
from aos.kernel.world.replay import Replayer
from aos.kernel.world.runtime import WasmModuleCache, WorkflowRuntime
from aos.kernel.world.stepper import World

if TYPE_CHECKING:
    from aos.kernel.host.handover import HandOver
    from aos.kernel.scheduler.portal import PortalRoutes
    from aos.kernel.services import KernelServices

log = logging.getLogger("aos.kernel.world")

QUEUED = -1  # send's answer for a paused world: the event waits in the world's inbox mailbox



@dataclass(frozen=True, slots=True)
class WorldStatus:
    meta: WorldMeta
    awake: bool
    journal_height: int
    last_input_ms: int
    traps: int
    released: bool = False  # handed over to (or taken by) another kernel on shared storage: nothing is here

    @property
    def state(self) -> str:
        if self.released:
            return "released"
        return "quarantined" if self.meta.quarantined else "awake" if self.awake else "hibernated"


class WorldHost:
    def __init__(self, services: KernelServices, idle_seconds: float = 30.0, host_roots: tuple[str, ...] = (),
                 python: PythonAllowList | None = None, python_step_seconds: float = DEFAULT_STEP_SECONDS) -> None:
        self.services = services
        self.python = python or PythonAllowList()
        self.python_step_seconds = python_step_seconds
        self.idle_seconds = idle_seconds
        self.host_roots = tuple(os.path.realpath(r) for r in host_roots)
        self.registry = WorldRegistry(services.store)
        self.dispatcher = EffectDispatcher(services)
        self.wasm_cache = WasmModuleCache()
        self._definitions: dict[tuple[str, str], tuple[Manifest, dict[str, WorkflowRuntime]]] = {}
        self._drivers: dict[tuple[str, str], WorldDriver] = {}
        self._waking: dict[tuple[str, str], asyncio.Future[WorldDriver]] = {}
        self._drains: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._redrain: set[tuple[str, str]] = set()
        self._reaper: asyncio.Task[None] | None = None
        # stream frames are not journaled; watchers register per world, awake or not
        self._frame_listeners: dict[tuple[str, str], list[Callable[[str, Any], None]]] = {}
        self.wakes = 0
        self.hibernations = 0
        # on shared storage (aos-kernel --storage): ownership, release and acquire (kernel/host/handover.py)
        self.handover: HandOver | None = None
        if services.storage is not None:
            from aos.kernel.host.handover import HandOver

            self.handover = HandOver(self, services.storage)
        # in a cluster (aos-kernel --scheduler): where worlds are placed, for portal mail to other hosts
        # (kernel/scheduler/portal.py; set by the host agent)
        self.cluster: PortalRoutes | None = None
        # events and receipts journaled per universe since start (kernel/metrics.py, Kernel.universes)
        self.events: Counter[str] = Counter()
        self.receipts: Counter[str] = Counter()

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.handover is not None:
            await self.handover.start()  # before any wake: only worlds whose heads still name us stay
        self.services.mailboxes.arrival_listeners.append(self._on_mail)
        # worlds whose journal runs past their last snapshot were active at the last stop
        # (or crash): wake them so open intents restart and missing derived records are written
        for meta in self.registry.all():
            if meta.quarantined:
                continue
            if self.services.journal.exists(journal_universe(meta.universe), meta.world_id):
                head = self.services.journal.head(journal_universe(meta.universe), meta.world_id)
                if head.durable > meta.snapshot_seq + 1:
                    try:
                        await self.driver(meta.universe, meta.world_id)
                    except WorldQuarantined:
                        continue  # logged; the kernel serves every other world
            if self.services.mailboxes.count(meta.universe, inbox(meta.world_id)):
                self._on_mail(meta.universe, inbox(meta.world_id))
        self._reaper = asyncio.get_running_loop().create_task(self._reap(), name="world-reaper")

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for task in list(self._drains.values()):
            task.cancel()
        for driver in list(self._drivers.values()):
            await driver.drain()
            await driver.stop()
        self._drivers.clear()
        await self.dispatcher.close()

    # --- creating ------------------------------------------------------------------------------

    async def create(self, universe: str, doc: Mapping[str, Any], wasm: Mapping[str, bytes],
                     world_id: str = "", name: str = "") -> WorldMeta:
        world_id = world_id or "w-" + secrets.token_hex(5)
        check_name(world_id, "world id")
        if len(world_id) > 100 or (world_id and self.registry.get(universe, world_id) is not None):
            raise InvalidArgument(f"world id {world_id!r} is taken or too long (max 100)")
        manifest = parse_manifest(dict(doc))
        self._check_host_grants(manifest)
        cas = self.services.cas
        for module in manifest.modules.values():
            if module.runtime == "wasm":
                data = wasm.get(module.artifact_hash or "")
                if data is not None:
                    if await cas.put(universe, data) != module.artifact_hash:
                        raise InvalidArgument(f"module bytes do not hash to {module.artifact_hash}")
                elif not cas.has(universe, module.artifact_hash or ""):
                    raise InvalidArgument(f"module {module.artifact_hash} is neither uploaded nor in CAS")
        # every definition under the SHA-256 of its canonical CBOR, so the manifest's
        # canonical form (which names definitions by those hashes) resolves in CAS
        for defs in (manifest.schemas, manifest.modules, manifest.workflows, manifest.effects, manifest.grants):
            for definition in defs.values():
                await cas.put(universe, cbor.encode(definition.canonical()))
        if await cas.put(universe, cbor.encode(manifest.canonical())) != manifest.hash:
            raise InvalidArgument("manifest hash mismatch")  # the encoder and the hash disagree: a bug
        manifest_address = await cas.put(universe, cbor.encode(_plain(doc)))
        runtimes = self._runtimes(universe, manifest_address, manifest)
        world = World(manifest, runtimes, world_id)
        title = doc.get("name") if isinstance(doc.get("name"), str) else ""
        meta = WorldMeta(universe, world_id, name or title or world_id, manifest_address, manifest.hash,
                         time.time_ns() // 1_000_000)
        return await self._genesis(meta, world)

    async def _genesis(self, meta: WorldMeta, world: World) -> WorldMeta:
        """Store the starting snapshot and journal its marker as record 0."""
        if self.handover is not None:
            await self.handover.claim(meta.universe, meta.world_id)  # its head first: one creator per world id
        snapshot = world.snapshot()
        address = await self.services.cas.put(meta.universe, snapshot)
        meta = meta.with_snapshot(address, 0)
        first, ops = self.services.journal.prepare_append(journal_universe(meta.universe), meta.world_id, 0, EPOCH,
                                                          [world.snapshot_record().encode()])
        await self.services.committer.commit(ops + [self.registry.put_op(meta)])
        self.services.journal.finish_append(journal_universe(meta.universe), meta.world_id, first, 1)
        self.registry.remember(meta)
        log.info("event=world_created universe=%s world=%s manifest=%s", meta.universe, meta.world_id, meta.manifest_hash)
        return meta

    def covers_host_grant(self, grant: GrantDef) -> bool:
        """Whether this kernel's operator grants the directory a host.fs/host.exec grant names."""
        path = grant.params.get("root") if grant.cap == "host.fs" else grant.params.get("cwd")
        real = os.path.realpath(str(path))
        return any(real == root or real.startswith(root + os.sep) for root in self.host_roots)

    def _check_host_grants(self, manifest: Manifest) -> None:
        """A laptop kernel grants host.fs/host.exec only under the roots its operator named.

        Checked at create, and again by the dispatcher for every effect, since a
        kernel may restart with fewer ``--grant-host`` directories."""
        for grant in manifest.grants.values():
            if grant.cap in ("host.fs", "host.exec") and not self.covers_host_grant(grant):
                path = grant.params.get("root") or grant.params.get("cwd")
                raise PermissionDenied(
                    f"grant {grant.name}: {path} is not under a directory this kernel grants (aos-kernel --grant-host DIR)"
                )

    def _runtimes(self, universe: str, manifest_address: str, manifest: Manifest) -> dict[str, WorkflowRuntime]:
        cached = self._definitions.get((universe, manifest_address))
        if cached is not None:
            return cached[1]
        wasm = {
            m.artifact_hash: self.services.cas.get(universe, m.artifact_hash)
            for m in manifest.modules.values()
            if m.runtime == "wasm" and m.artifact_hash
        }
        runtimes = load_runtimes(manifest, wasm, self.wasm_cache, python=self.python,
                                 python_step_seconds=self.python_step_seconds)
        self._definitions[(universe, manifest_address)] = (manifest, runtimes)
        return runtimes

    def _manifest(self, meta: WorldMeta) -> tuple[Manifest, dict[str, WorkflowRuntime]]:
        cached = self._definitions.get((meta.universe, meta.manifest))
        if cached is None:
            doc = cbor.decode(self.services.cas.get(meta.universe, meta.manifest))
            manifest = parse_manifest(doc)
            self._runtimes(meta.universe, meta.manifest, manifest)
            cached = self._definitions[(meta.universe, meta.manifest)]
        return cached

    # --- waking --------------------------------------------------------------------------------

    def meta(self, universe: str, world_id: str) -> WorldMeta:
        meta = self.registry.get(universe, world_id)
        if meta is None:
            if self.handover is not None:
                self.handover.check(universe, world_id)  # WorldMoved for one this kernel released
            raise UnknownWorld(f"no world {world_id!r} in universe {universe}")
        return meta

    def awake(self, universe: str, world_id: str) -> WorldDriver | None:
        return self._drivers.get((universe, world_id))

    def drivers(self) -> list[WorldDriver]:
        """The awake worlds' drivers (for metrics)."""
        return list(self._drivers.values())

    async def driver(self, universe: str, world_id: str) -> WorldDriver:
        """The awake driver of a world, waking it if it hibernates."""
        found = self._drivers.get((universe, world_id))
        if found is not None:
            found.last_active = time.monotonic()
            return found
        waking = self._waking.get((universe, world_id))
        if waking is not None:
            return await asyncio.shield(waking)
        if self.handover is not None:
            await self.handover.locate(universe, world_id, "refuse")  # where it is, if not here
        meta = self.meta(universe, world_id)
        if meta.quarantined:
            raise WorldQuarantined(f"world {world_id} is quarantined: {meta.quarantined}")
        future: asyncio.Future[WorldDriver] = asyncio.get_running_loop().create_future()
        self._waking[(universe, world_id)] = future
        try:
            try:
                driver = await self._wake(meta)
            except (asyncio.CancelledError, KernelError):
                raise  # the kernel's own storage, not the world: nothing to blame it for
            except Exception as exc:  # noqa: BLE001 -- whatever a world's bytes make the wake raise
                # replay is deterministic, so trying again would fail again: stop waking it
                raise await self._quarantine(meta, f"{type(exc).__name__}: {exc}") from None
            self._drivers[(universe, world_id)] = driver
            future.set_result(driver)
            return driver
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._waking[(universe, world_id)]

    async def _quarantine(self, meta: WorldMeta, reason: str) -> WorldQuarantined:
        reason = reason[:500]
        log.error("event=world_quarantined universe=%s world=%s reason=%r", meta.universe, meta.world_id, reason)
        current = self.registry.get(meta.universe, meta.world_id) or meta
        quarantined = replace(current, quarantined=reason)
        await self.services.committer.commit([self.registry.put_op(quarantined)])
        self.registry.remember(quarantined)
        return WorldQuarantined(f"world {meta.world_id} is quarantined: {reason}")

    async def unquarantine(self, universe: str, world_id: str) -> WorldMeta:
        """Let a quarantined world wake again, and wake it now: the operator fixed
        what stopped it (allowed its module, restored a blob). If the wake fails
        again it is quarantined again and that error is raised."""
        meta = self.meta(universe, world_id)
        if meta.quarantined:
            released = replace(meta, quarantined="")
            await self.services.committer.commit([self.registry.put_op(released)])
            self.registry.remember(released)
            log.info("event=world_unquarantined universe=%s world=%s", universe, world_id)
        await self.driver(universe, world_id)
        self._on_mail(universe, inbox(world_id))  # mail that waited
        return self.meta(universe, world_id)

    async def _wake(self, meta: WorldMeta) -> WorldDriver:
        manifest, runtimes = self._manifest(meta)
        snapshot = self.services.cas.get(meta.universe, meta.snapshot)
        world = World.restore(manifest, runtimes, meta.world_id, snapshot)
        world.manifests = manifest_loader(self, meta.universe)  # governance switches, live and in this replay
        journal = self.services.journal
        replayer = Replayer(world)
        seq = meta.snapshot_seq
        while True:
            records, durable = journal.read(journal_universe(meta.universe), meta.world_id, seq, 4096)
            for raw in records:
                replayer.feed(decode_record(raw))
            seq += len(records)
            if seq >= durable:
                break
        missing = replayer.finish()
        if missing:  # a crash cut off the derived records of the last input
            await journal.append(journal_universe(meta.universe), meta.world_id, seq, EPOCH, [r.encode() for r in missing])
            seq += len(missing)
        driver = WorldDriver(self, meta, world, seq)
        driver.start()
        for intent in world.open_intents():
            driver.start_effect(intent)
        self.wakes += 1
        return driver

    # --- using ---------------------------------------------------------------------------------

    async def send(self, universe: str, world_id: str, schema: str, value: Any) -> int:
        """The event's journal seq, or ``QUEUED`` when the world is paused (it waits in the inbox mailbox)."""
        if self.handover is not None:
            await self.handover.locate(universe, world_id, "acquire")  # an event brings a released world here
        driver = await self.driver(universe, world_id)
        if driver.world.paused:
            await self._queue(driver, [(schema, value)])
            return QUEUED
        return await driver.send_event(schema, value)

    async def _queue(self, driver: WorldDriver, events: list[tuple[str, Any]]) -> None:
        """Door-check events for a paused world and put them in its inbox mailbox (durable, in order), where
        portal messages and timer firings wait too; its resume drains them."""
        for i, (schema, value) in enumerate(events):
            bad = driver.world.check_event(schema, value)
            if bad is not None:
                raise type(bad)(f"events[{i}]{bad.path[1:]}", bad.message) if len(events) > 1 else bad
        for schema, value in events:
            payload = cbor.encode({"kind": "event", "schema": schema, "value": value})
            await self.services.mailboxes.send(driver.universe, inbox(driver.world_id), "queued-" + secrets.token_hex(12),
                                               payload)

    async def set_paused(self, universe: str, world_id: str, paused: bool) -> tuple[int, bool]:
        """Pause (or resume) a world: ``(seq of the journaled control record, whether it changed)``.

        A paused world applies no event, receipt, timer firing or portal message: what comes by mail (and
        events sent to it) waits in its inbox mailbox, receipts of the effects still running wait in its
        driver (after a restart those effects run again, with their idempotency keys). The control record
        is journaled (replay pauses at the same place) with the registry's flag in the same write, so a
        paused world stays paused across restarts and its mail does not wake it."""
        if self.handover is not None:
            await self.handover.locate(universe, world_id, "refuse")
        driver = await self.driver(universe, world_id)
        if driver.world.paused == paused:
            return self.services.journal.head(journal_universe(universe), world_id).durable, False
        meta = replace(self.meta(universe, world_id), paused=paused)
        record = ControlRecord("pause" if paused else "resume", Stamp(time.time_ns(), b""))
        seq = await driver.submit(record, [self.registry.put_op(meta)])
        self.registry.remember(meta)
        driver.meta = replace(driver.meta, paused=paused)
        log.info("event=world_%s universe=%s world=%s seq=%d", record.op, universe, world_id, seq)
        if not paused:
            self._on_mail(universe, inbox(world_id))  # what waited, in the order it came
        return seq, True

    def queued(self, universe: str, world_id: str) -> int:
        """Inputs waiting for the world: its inbox mail, and receipts its driver holds while it is paused."""
        driver = self._drivers.get((universe, world_id))
        return self.services.mailboxes.count(universe, inbox(world_id)) + (driver.held() if driver else 0)

    async def send_batch(self, universe: str, world_id: str, events: list[tuple[str, Any]]) -> list[int]:
        """Door-check all, then submit all at once so they share journal batches."""
        if self.handover is not None:
            await self.handover.locate(universe, world_id, "acquire")
        driver = await self.driver(universe, world_id)
        if driver.world.paused:
            await self._queue(driver, events)
            return []
        for i, (schema, value) in enumerate(events):
            bad = driver.world.check_event(schema, value)
            if bad is not None:
                raise type(bad)(f"events[{i}]{bad.path[1:]}", bad.message)
        # checked just now, with no await since: submit without a second check or a task per event
        return list(await asyncio.gather(*[driver.submit_event(s, v) for s, v in events]))

    async def snapshot(self, universe: str, world_id: str) -> tuple[str, int]:
        """Store the world's state in CAS and journal the marker; returns (address, marker seq)."""
        driver = await self.driver(universe, world_id)
        await driver.drain()
        snapshot = driver.world.snapshot()
        # the marker is queued now, right behind the state it describes: inputs that arrive while the
        # blob is stored go after it (they would otherwise be journaled before it but missing from it)
        marker = driver.submit(driver.world.snapshot_record())
        address = await self.services.cas.put(universe, snapshot)
        seq = await marker
        current = self.meta(universe, world_id)  # grants may have changed since the driver woke
        meta = replace(driver.meta.with_snapshot(address, seq), revoked_grants=current.revoked_grants,
                       last_event_ms=driver.stats.last_input_ms or driver.meta.last_event_ms,
                       # the manifest of this snapshot (governance may have switched it since the wake)
                       manifest=current_address(driver), manifest_hash=driver.world.manifest_hash,
                       paused=driver.world.paused)
        await self.services.committer.commit([self.registry.put_op(meta)])
        self.registry.remember(meta)
        driver.meta = meta
        return address, seq

    async def hibernate(self, universe: str, world_id: str) -> bool:
        driver = self._drivers.get((universe, world_id))
        if driver is None or not driver.quiescent():
            return False
        await self.snapshot(universe, world_id)
        if not driver.quiescent():
            return False  # something arrived while snapshotting; stay awake
        del self._drivers[(universe, world_id)]
        await driver.stop()
        self.hibernations += 1
        if self.handover is not None:
            await self.handover.checkpoint(universe, world_id)  # a sleeping world's tail leaves the log
        return True

    async def fork(self, universe: str, world_id: str, new_id: str = "", name: str = "") -> WorldMeta:
        """A new world starting from this one's current state (a fresh snapshot)."""
        await self.snapshot(universe, world_id)
        source = self.meta(universe, world_id)  # after the snapshot: it names the manifest the world runs now
        driver = await self.driver(universe, world_id)
        new_id = new_id or "w-" + secrets.token_hex(5)
        check_name(new_id, "world id")
        if self.registry.get(universe, new_id) is not None:
            raise InvalidArgument(f"world id {new_id!r} is taken")
        value = driver.world.snapshot_value()
        value["world"] = new_id
        manifest, runtimes = self._manifest(source)
        world = World.restore(manifest, runtimes, new_id, cbor.encode(value))
        meta = WorldMeta(universe, new_id, name or f"{source.name} (fork)", source.manifest, source.manifest_hash,
                         time.time_ns() // 1_000_000, forked_from=world_id)
        meta = await self._genesis(meta, world)
        # a fork carries its source's open intents and issues them itself
        await self.driver(universe, new_id)
        return meta

    async def set_grant(self, universe: str, world_id: str, name: str, active: bool) -> WorldMeta:
        """Switch one of the world's manifest grants off (revoke) or back on.

        A revoked grant still admits effects (admission is replayed and must not
        depend on this), but the dispatcher settles them with an error receipt
        ``revoked`` instead of running them; the receipt is journaled like any other.
        """
        meta = self.meta(universe, world_id)
        manifest, _ = self._manifest(meta)
        if name not in manifest.grants:
            raise InvalidArgument(f"world {world_id} has no grant {name!r}; its grants: {sorted(manifest.grants)}")
        revoked = set(meta.revoked_grants) - {name} if active else set(meta.revoked_grants) | {name}
        meta = replace(meta, revoked_grants=tuple(sorted(revoked)))
        await self.services.committer.commit([self.registry.put_op(meta)])
        self.registry.remember(meta)
        driver = self._drivers.get((universe, world_id))
        if driver is not None:
            driver.meta = replace(driver.meta, revoked_grants=meta.revoked_grants)
        log.info("event=world_grant world=%s grant=%s active=%s", world_id, name, active)
        return meta

    def grants(self, universe: str, world_id: str) -> list[tuple[str, str, Any, bool]]:
        """(name, cap, params, active) for each of the world's grants."""
        meta = self.meta(universe, world_id)
        driver = self._drivers.get((universe, world_id))
        manifest = driver.world.manifest if driver is not None else self._manifest(meta)[0]
        return [(g.name, g.cap, g.params, g.name not in meta.revoked_grants)
                for g in sorted(manifest.grants.values(), key=lambda g: g.name)]

    def status(self, universe: str) -> list[WorldStatus]:
        held = [self.status_of(meta) for meta in self.registry.all(universe)]
        if self.handover is None:
            return held
        gone = [WorldStatus(t.meta, False, t.journal_height, t.meta.last_event_ms, 0, released=True)
                for t in self.handover.tombstones(universe)]
        return sorted(held + gone, key=lambda s: s.meta.world_id)

    # --- shared storage: hand-over (kernel/host/handover.py) ------------------------------------

    def _handover(self) -> HandOver:
        if self.handover is None:
            raise InvalidArgument("this kernel runs without shared storage (aos-kernel --storage s3://BUCKET/PREFIX): "
                                  "its worlds cannot move")
        return self.handover

    async def release(self, universe: str, world_id: str) -> dict[str, Any]:
        """Hand a world over to shared storage; afterwards its calls here fail with ``WorldMoved``."""
        return await self._handover().release(universe, world_id)

    async def acquire(self, universe: str, world_id: str, take_over: bool = False) -> tuple[WorldMeta, dict[str, Any]]:
        """Take a world from shared storage (released, or with ``take_over`` from its holder, fencing it)
        and wake it here."""
        return await self._handover().acquire(universe, world_id, take_over, explicit=True)

    async def drop_lost(self, universe: str, world_id: str, placed_on: str) -> bool:
        """Forget, locally, a world the scheduler placed on another host that took it (``HandOver.drop_lost``)."""
        return await self._handover().drop_lost(universe, world_id, placed_on)

    async def locate(self, universe: str, world_id: str, on_released: str = "allow") -> None:
        """Raise ``UnknownWorld``/``WorldMoved`` unless calls on the world can go ahead here."""
        if self.handover is None:
            self.meta(universe, world_id)
        else:
            await self.handover.locate(universe, world_id, on_released)

    async def detach(self, universe: str, world_id: str) -> WorldMeta:
        """Stop a world here for a hand-over: no new inputs or mail, running effects stopped (their
        intents stay open), every commit finished. Returns its entry, now forgotten by the registry."""
        world = (universe, world_id)
        waking = self._waking.get(world)
        if waking is not None:
            await asyncio.gather(asyncio.shield(waking), return_exceptions=True)
        meta = self.registry.forget(universe, world_id) or self.meta(universe, world_id)
        driver = self._drivers.pop(world, None)
        drain = self._drains.get(world)
        if driver is not None:
            await driver.cancel_effects()
            await driver.drain()
            await driver.stop()
        if drain is not None:
            await asyncio.gather(drain, return_exceptions=True)  # it ends at its next driver() (WorldMoved)
        return meta

    def wake_later(self, universe: str, world_id: str) -> None:
        """Wake a world in the background (a hand-over that failed: its open intents must run)."""
        async def wake() -> None:
            try:
                await self.driver(universe, world_id)
            except Exception as exc:  # noqa: BLE001 -- logged; the next call wakes it or says why
                log.warning("event=wake_failed world=%s error=%r", world_id, str(exc)[:200])
            self._on_mail(universe, inbox(world_id))

        asyncio.get_running_loop().create_task(wake())

    def mail_arrived(self, universe: str, world_id: str) -> None:
        """Deliver a world's waiting mail (it arrived with the world)."""
        self._on_mail(universe, inbox(world_id))

    async def portal_refusal(self, universe: str, world_id: str) -> tuple[str, str] | None:
        """Why portal mail cannot go to a world here (code, message), or None: it is here (acquired now if
        it was released and this kernel did not release it)."""
        if self.registry.get(universe, world_id) is not None:
            return None
        if self.handover is None:
            return "unknown_world", f"no world {world_id!r} in universe {universe}"
        if self.cluster is not None and not self.cluster.placed_here(universe, world_id):
            # the scheduler runs it elsewhere: acquiring it here would take it from the host it is given to
            return "world_moved", f"world {universe}/{world_id} is not placed on this host"
        try:
            await self.handover.locate(universe, world_id, "acquire")
        except WorldMoved as exc:
            return "world_moved", str(exc)  # cross-kernel mail is the scheduler's (later issue)
        except UnknownWorld as exc:
            return "unknown_world", str(exc)
        return None

    async def receive_portal(self, universe: str, world_id: str, message_id: str, payload: bytes) -> bool:
        """Put portal mail into a world's inbox here (False: that message id came before). Raises
        ``WorldMoved``/``UnknownWorld`` when the world is not here."""
        refusal = await self.portal_refusal(universe, world_id)  # may acquire it (shared storage)
        if refusal is not None:
            code, message = refusal
            raise (WorldMoved if code == "world_moved" else UnknownWorld)(message)
        driver = self._taking_mail_now(universe, world_id)
        if driver is not None:
            return await self._journal_portal_now(driver, message_id, payload)
        return await self.services.mailboxes.send(universe, inbox(world_id), message_id, payload)

    def _taking_mail_now(self, universe: str, world_id: str) -> WorldDriver | None:
        """The world's driver when portal mail can skip its inbox: awake, taking inputs, and nothing older
        waiting in the inbox or being drained from it (mail keeps its order)."""
        driver = self._drivers.get((universe, world_id))
        meta = self.registry.get(universe, world_id)
        if driver is None or meta is None or meta.quarantined or getattr(driver.world, "paused", False):
            return None
        if (universe, world_id) in self._drains or self.services.mailboxes.count(universe, inbox(world_id)):
            return None
        return driver

    async def _journal_portal_now(self, driver: WorldDriver, message_id: str, payload: bytes) -> bool:
        """Journal a portal event with its message id marked seen, in one write (one commit instead of the
        inbox's and then the event's). False if the id came before."""
        mailboxes, box = self.services.mailboxes, inbox(driver.world_id)
        message = cbor.decode(payload)
        claim = mailboxes.claim_ops(driver.universe, box, message_id)
        if claim is None:
            return False
        try:
            bad = driver.world.check_event(message["schema"], message["value"])
            if bad is None:  # no await since the check: submit as door-checked
                await driver.submit_event(message["schema"], message["value"], claim)
            else:  # what the inbox would do with it: consume it, change nothing
                log.info("event=portal_event_refused world=%s error=%r", driver.world_id, str(bad)[:200])
                await self.services.committer.commit(claim)
        finally:
            mailboxes.claimed(driver.universe, box, message_id)
        return True

    def status_of(self, meta: WorldMeta) -> WorldStatus:
        driver = self._drivers.get((meta.universe, meta.world_id))
        height = self.services.journal.head(journal_universe(meta.universe), meta.world_id).durable
        last = (driver.stats.last_input_ms if driver else 0) or meta.last_event_ms
        return WorldStatus(meta, driver is not None, height, last, driver.stats.traps if driver else 0)

    # --- stream frames --------------------------------------------------------------------------

    def watch_frames(self, universe: str, world_id: str, listener: Callable[[str, Any], None]) -> Callable[[], None]:
        """Call ``listener(intent_hash, frame)`` for every frame of the world; returns an unsubscribe."""
        listeners = self._frame_listeners.setdefault((universe, world_id), [])
        listeners.append(listener)

        def unsubscribe() -> None:
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._frame_listeners.pop((universe, world_id), None)

        return unsubscribe

    def frames_watched(self, universe: str, world_id: str) -> bool:
        """Whether anyone takes the world's stream frames now (an effect need not stream for no one)."""
        return bool(self._frame_listeners.get((universe, world_id)))

    def publish_frame(self, universe: str, world_id: str, intent_hash: str, frame: Any) -> None:
        for listener in list(self._frame_listeners.get((universe, world_id), ())):
            listener(intent_hash, frame)

    # --- inboxes: timers and portal messages -----------------------------------------------------

    def _on_mail(self, universe: str, mailbox: str) -> None:
        world_id = world_of_inbox(mailbox)
        if world_id is None:
            return
        world = (universe, world_id)
        meta = self.registry.get(*world)
        if meta is None or meta.quarantined or meta.paused:
            return  # a quarantined or paused world's mail waits for it
        if world in self._drains:
            self._redrain.add(world)
            return
        task = asyncio.get_running_loop().create_task(self._drain(*world))
        self._drains[world] = task
        task.add_done_callback(lambda _: self._drain_done(world))

    def _drain_done(self, world: tuple[str, str]) -> None:
        self._drains.pop(world, None)
        if world in self._redrain:
            self._redrain.discard(world)
            self._on_mail(world[0], inbox(world[1]))

    async def _drain(self, universe: str, world_id: str) -> None:
        mailboxes = self.services.mailboxes
        while True:
            messages = mailboxes.queued(universe, inbox(world_id), 256)
            if not messages:
                return
            try:
                driver = await self.driver(universe, world_id)
            except WorldQuarantined:
                return  # the mail stays queued until an operator releases the world
            except UnknownWorld:
                return  # being handed over (WorldMoved): the mail goes with the world
            if driver.world.paused:
                return  # its resume drains the inbox
            pending = []
            for message in messages:
                ack = mailboxes.ack_ops(universe, inbox(world_id), [message.seq])
                pending.append(self._consume(driver, message.payload, ack))
            results = await asyncio.gather(*pending, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    log.warning("event=inbox_message_failed world=%s error=%r", world_id, str(result)[:200])

    async def _consume(self, driver: WorldDriver, payload: bytes, ack: list[Any]) -> None:
        try:
            message = cbor.decode(payload)
        except CborError:
            message = None
        if isinstance(message, dict) and message.get("kind") == "timer":
            if not _open_timer(driver, message.get("intent_hash")):
                # settled already (cancelled) or never a timer of this world: nothing to deliver
                await self.services.committer.commit(ack)
                return
            receipt = Receipt.ok(delivered_at_ns=message["delivered_at_ns"], key=message.get("key"))
            await driver.deliver_receipt(message["intent_hash"], receipt, ack)
            return
        if isinstance(message, dict) and message.get("kind") == "event":
            try:
                await driver.send_event(message["schema"], message["value"], ack)
                return
            except WorldError as exc:
                log.info("event=portal_event_refused world=%s error=%r", driver.world_id, str(exc)[:200])
        await self.services.committer.commit(ack)  # unusable mail: consume it

    # --- hibernation -------------------------------------------------------------------------------

    async def _reap(self) -> None:
        interval = max(0.05, min(self.idle_seconds / 2, 5.0))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for (universe, world_id), driver in list(self._drivers.items()):
                if now - driver.last_active >= self.idle_seconds and driver.quiescent():
                    try:
                        await self.hibernate(universe, world_id)
                    except Exception:
                        log.exception("event=hibernate_failed world=%s", world_id)


def _open_timer(driver: WorldDriver, intent_hash: Any) -> bool:
    return any(i.intent_hash == intent_hash and effect_kind(i.effect) == "timer.set" for i in driver.world.open_intents())


def _plain(doc: Mapping[str, Any]) -> Any:
    """JSON-shaped manifest documents as plain dicts/lists (for canonical CBOR)."""
    if isinstance(doc, Mapping):
        return {str(k): _plain(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [_plain(v) for v in doc]
    return doc

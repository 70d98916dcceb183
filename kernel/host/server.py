"""``Worlds`` and ``World`` over Cap'n Proto: conversion and scope checks only."""

from __future__ import annotations

import asyncio
from typing import Any

import capnp

from aos.caps.gateway import HandleImpl
from aos.caps.grants import Scope
from aos.caps.held import HeldImpl
from aos.errors import InvalidArgument, PermissionDenied, UnknownWorld
from aos.kernel.host import jsonvalue
from aos.kernel.host.host import QUEUED, WorldHost, WorldStatus
from aos.kernel.host.registry import journal_universe
from aos.kernel.names import key as name_key
from aos.kernel.rpc import remote
from aos.kernel.world import cbor
from aos.kernel.world.records import (DomainEventRecord, EffectIntentRecord, EffectRejectedRecord, TrapRecord,
                                       decode_record)
from aos.kernel.host.governance import DEFAULT_SAMPLE
from aos.kernel.world.governance import MAX_PATCH_BYTES, PatchRejected
from aos.schemas import world_capnp


def world_info(status: WorldStatus) -> dict[str, Any]:
    meta = status.meta
    return {
        "worldId": meta.world_id,
        "name": meta.name,
        "manifestHash": meta.manifest_hash,
        "awake": status.awake,
        "journalHeight": status.journal_height,
        "lastEventMs": status.last_input_ms,
        "snapshot": meta.snapshot,
        "forkedFrom": meta.forked_from,
        "quarantined": meta.quarantined,
        "released": status.released,
        "paused": meta.paused,
    }


def record_value(raw: bytes) -> dict[str, Any]:
    """A journal record's value, ``{kind, ...fields}`` (JSON sorts the keys, so no record object is built)."""
    value = cbor.decode(raw)
    if not isinstance(value, dict) or "kind" not in value:
        value = decode_record(raw).to_value()  # raises the RecordError that says what is wrong
    return value


def record_json(seq: int, raw: bytes) -> str:
    """A journal record as JSON, with its journal position under ``"at"`` (some
    records have a ``seq`` field of their own: the world's input counter)."""
    value = record_value(raw)
    value["at"] = seq
    return jsonvalue.dumps(value)


class WorldsImpl(HeldImpl, world_capnp.Worlds.Server):  # type: ignore[misc,name-defined]
    @property
    def host(self) -> WorldHost:
        return self.services.worlds

    def _world_cap(self, world_id: str, located: bool = False) -> Any:
        if not located:
            self.host.meta(self.grant.scope.universe, world_id)  # UnknownWorld early
        scope = Scope("world", self.grant.scope.universe, read_only=self.grant.scope.read_only, world=world_id)
        return self.services.cap_for(self.services.grants.derive(self.grant, scope))

    def _writable(self, what: str) -> None:
        _check_writable(self.grant, what)

    def _status(self, world_id: str) -> WorldStatus:
        return self.host.status_of(self.host.meta(self.grant.scope.universe, world_id))

    @remote()
    async def create(self, manifest: str, modules: Any, worldId: str, name: str, _context: Any, **kwargs: Any) -> Any:
        self._writable("create worlds")
        doc = jsonvalue.loads(manifest, "manifest")
        if not isinstance(doc, dict):
            raise InvalidArgument("the manifest must be a JSON object")
        wasm = {m.hash: bytes(m.wasm) for m in modules}
        meta = await self.host.create(self.grant.scope.universe, doc, wasm, worldId, name)
        return self._world_cap(meta.world_id), world_info(self._status(meta.world_id))

    @remote()
    async def open(self, worldId: str, _context: Any, **kwargs: Any) -> Any:
        # on shared storage a released world opens too: its first event acquires it here
        await self.host.locate(self.grant.scope.universe, worldId, "allow")
        return self._world_cap(worldId, located=True)

    @remote()
    async def list(self, _context: Any, **kwargs: Any) -> Any:
        return [world_info(s) for s in self.host.status(self.grant.scope.universe)]

    @remote()
    async def fork(self, worldId: str, newId: str, name: str, _context: Any, **kwargs: Any) -> Any:
        self._writable("fork worlds")
        meta = await self.host.fork(self.grant.scope.universe, worldId, newId, name)
        return self._world_cap(meta.world_id), world_info(self._status(meta.world_id))

    @remote()
    async def unquarantine(self, worldId: str, _context: Any, **kwargs: Any) -> Any:
        if self.grant.scope.read_only:
            raise PermissionDenied("a read-only worlds capability cannot release a quarantined world")
        meta = await self.host.unquarantine(self.grant.scope.universe, worldId)
        return world_info(self.host.status_of(meta))

    @remote()
    async def hibernate(self, worldId: str, _context: Any, **kwargs: Any) -> bool:
        self._writable("hibernate worlds")
        return await self.host.hibernate(self.grant.scope.universe, self.host.meta(self.grant.scope.universe,
                                                                                    worldId).world_id)

    @remote()
    async def readOnly(self, _context: Any, **kwargs: Any) -> Any:
        return self.services.attenuate(self.grant, read_only=True)

    @remote()
    async def release(self, worldId: str, _context: Any, **kwargs: Any) -> Any:
        self._writable("release worlds")
        return await self.host.release(self.grant.scope.universe, worldId)

    @remote()
    async def acquire(self, worldId: str, takeOver: bool, _context: Any, **kwargs: Any) -> Any:
        self._writable("acquire worlds")
        meta, placement = await self.host.acquire(self.grant.scope.universe, worldId, takeOver)
        return world_info(self.host.status_of(meta)), placement


def _check_writable(grant: Any, what: str) -> None:
    if grant.scope.read_only:
        raise PermissionDenied(f"a read-only {grant.scope.kind} capability cannot {what}")


class WorldImpl(HeldImpl, world_capnp.World.Server):  # type: ignore[misc,name-defined]
    @property
    def host(self) -> WorldHost:
        return self.services.worlds

    @property
    def universe(self) -> str:
        return self.grant.scope.universe

    @property
    def world_id(self) -> str:
        return self.grant.scope.world

    @remote()
    async def send(self, eventSchema: str, value: str, _context: Any, **kwargs: Any) -> Any:
        _check_writable(self.grant, "send events")
        # (a field named "schema" would be shadowed by pycapnp's reader attribute)
        seq = await self.host.send(self.universe, self.world_id, eventSchema, jsonvalue.loads(value))
        if seq == QUEUED:
            return 0, {"steps": 0, "traps": [], "intents": 0, "rejected": 0, "queued": True}
        try:
            return seq, await self._outcome(eventSchema, seq)
        except UnknownWorld:  # handed over right after the event was durable: it is, so the send succeeded
            return seq, {"steps": 0, "traps": [], "intents": 0, "rejected": 0}

    async def _outcome(self, schema: str, seq: int) -> dict[str, Any]:
        """What the event at ``seq`` caused. Its derived records follow it in the
        journal up to the next input record (they are appended with it, in one
        write), so they tell which steps ran and which trapped; counting steps
        from the routes lets a caller see that *every* step trapped."""
        manifest = (await self.host.driver(self.universe, self.world_id)).world.manifest
        out: dict[str, Any] = {"steps": len(manifest.routes_for(schema)), "traps": [], "intents": 0, "rejected": 0}
        at, end, chunk = seq + 1, seq + 2, 4  # most events derive a record or two; later events' records follow
        while at < end:
            raws, end = self.services.journal.read(journal_universe(self.universe), self.world_id, at, chunk)
            chunk = 256
            for record in map(decode_record, raws):
                if record.input:
                    return out
                if isinstance(record, TrapRecord):
                    key = "" if record.origin.key is None else jsonvalue.dumps(record.origin.key)
                    out["traps"].append({"workflow": record.origin.workflow, "key": key, "code": record.code,
                                         "message": record.message})
                elif isinstance(record, DomainEventRecord):
                    out["steps"] += len(manifest.routes_for(record.schema))
                elif isinstance(record, EffectRejectedRecord):  # the refusal goes back to the cell as a receipt
                    out["steps"] += 1
                    out["rejected"] += 1
                elif isinstance(record, EffectIntentRecord):
                    out["intents"] += 1
            at += len(raws)
            if not raws:
                break
        return out

    @remote()
    async def sendBatch(self, events: Any, _context: Any, **kwargs: Any) -> Any:
        _check_writable(self.grant, "send events")
        batch = [(e.eventSchema, jsonvalue.loads(e.value, f"events[{i}].value")) for i, e in enumerate(events)]
        return await self.host.send_batch(self.universe, self.world_id, batch)

    @remote()
    async def grants(self, _context: Any, **kwargs: Any) -> Any:
        return [{"name": n, "cap": c, "params": jsonvalue.dumps(p), "active": a}
                for n, c, p, a in self.host.grants(self.universe, self.world_id)]

    @remote()
    async def setGrant(self, name: str, active: bool, _context: Any, **kwargs: Any) -> None:
        _check_writable(self.grant, "change grants")
        await self.host.set_grant(self.universe, self.world_id, name, active)

    @remote()
    async def state(self, workflow: str, key: str, _context: Any, **kwargs: Any) -> Any:
        driver = await self.host.driver(self.universe, self.world_id)
        if workflow not in driver.world.manifest.workflows:
            raise InvalidArgument(f"no workflow {workflow!r} in this world")
        value = driver.world.state(workflow, jsonvalue.loads(key, "key") if key else None)
        return value is not None, jsonvalue.dumps(value)

    @remote()
    async def cells(self, workflow: str, _context: Any, **kwargs: Any) -> str:
        driver = await self.host.driver(self.universe, self.world_id)
        if workflow not in driver.world.manifest.workflows:
            raise InvalidArgument(f"no workflow {workflow!r} in this world")
        return jsonvalue.dumps(driver.world.cell_keys(workflow))

    @remote()
    async def journal(self, fromSeq: int, limit: int, _context: Any, **kwargs: Any) -> Any:
        await self.host.locate(self.universe, self.world_id, "refuse")  # WorldMoved when it left
        limit = min(limit or 1000, 4096)
        records, next_seq = self.services.journal.read(journal_universe(self.universe), self.world_id, fromSeq, limit)
        return [record_json(fromSeq + i, raw) for i, raw in enumerate(records)], next_seq

    @remote()
    async def readRaw(self, fromSeq: int, limit: int, _context: Any, **kwargs: Any) -> Any:
        await self.host.locate(self.universe, self.world_id, "refuse")
        limit = min(limit or 1000, 4096)
        return self.services.journal.read(journal_universe(self.universe), self.world_id, fromSeq, limit)

    @remote()
    async def tail(self, fromSeq: int, watcher: Any, _context: Any, frames: bool = True, **kwargs: Any) -> Any:
        self.host.meta(self.universe, self.world_id)
        task = self.services.subscribe(self.grant, _watch(self, fromSeq, watcher, frames))
        return HandleImpl(task)

    @remote()
    async def snapshot(self, _context: Any, **kwargs: Any) -> Any:
        _check_writable(self.grant, "take snapshots")
        return await self.host.snapshot(self.universe, self.world_id)

    @remote()
    async def describe(self, _context: Any, **kwargs: Any) -> Any:
        driver = await self.host.driver(self.universe, self.world_id)
        status = self.host.status_of(self.host.meta(self.universe, self.world_id))
        workflows = [{"name": name, "keyed": wf.key is not None}
                     for name, wf in sorted(driver.world.manifest.workflows.items())]
        info = {**world_info(status), "paused": driver.world.paused,
                "queued": self.host.queued(self.universe, self.world_id)}
        return info, list(driver.stats.recent_traps), workflows

    @remote()
    async def pause(self, _context: Any, **kwargs: Any) -> Any:
        _check_writable(self.grant, "pause worlds")
        return await self.host.set_paused(self.universe, self.world_id, True)

    @remote()
    async def resume(self, _context: Any, **kwargs: Any) -> Any:
        _check_writable(self.grant, "resume worlds")
        return await self.host.set_paused(self.universe, self.world_id, False)

    @remote()
    async def effects(self, _context: Any, **kwargs: Any) -> Any:
        driver = await self.host.driver(self.universe, self.world_id)
        running = driver.running_effects()
        return [{"intentHash": i.intent_hash, "effect": i.effect, "grant": i.grant, "workflow": i.origin.workflow,
                 "key": "" if i.origin.key is None else jsonvalue.dumps(i.origin.key),
                 "running": i.intent_hash in running, "startedAtMs": running.get(i.intent_hash, 0)}
                for i in driver.world.open_intents()]

    # --- governance (kernel/host/governance.py): conversion and the read-only check only ----------

    @property
    def _governance(self) -> Any:
        from aos.kernel.host.governance import governance_of

        return governance_of(self.host)

    @remote()
    async def propose(self, patch: str, reason: str, _context: Any, **kwargs: Any) -> str:
        _check_writable(self.grant, "propose manifest changes")
        if len(patch) > 2 * MAX_PATCH_BYTES:  # the parsed patch is measured again in canonical CBOR
            raise PatchRejected(f"the patch is {len(patch)} characters of JSON; the limit is {MAX_PATCH_BYTES} bytes")
        try:
            value = jsonvalue.loads(patch, "patch")
        except RecursionError:
            raise PatchRejected("the patch is nested too deeply") from None
        result = await self._governance.propose(self.universe, self.world_id, value, "client", reason)
        return jsonvalue.dumps(result)

    @remote()
    async def shadow(self, proposal: str, events: Any, sample: int, _context: Any, **kwargs: Any) -> str:
        _check_writable(self.grant, "shadow manifest changes")
        given = [(e.eventSchema, jsonvalue.loads(e.value, f"events[{i}].value")) for i, e in enumerate(events)]
        report = await self._governance.shadow(self.universe, self.world_id, proposal, given or None,
                                               sample or DEFAULT_SAMPLE)
        return jsonvalue.dumps(report)

    @remote()
    async def approve(self, proposal: str, reason: str, _context: Any, **kwargs: Any) -> str:
        _check_writable(self.grant, "approve manifest changes")
        return jsonvalue.dumps(await self._governance.decide(self.universe, self.world_id, proposal, True,
                                                              "client", reason))

    @remote()
    async def reject(self, proposal: str, reason: str, _context: Any, **kwargs: Any) -> str:
        _check_writable(self.grant, "reject manifest changes")
        return jsonvalue.dumps(await self._governance.decide(self.universe, self.world_id, proposal, False,
                                                              "client", reason))

    @remote()
    async def apply(self, proposal: str, _context: Any, **kwargs: Any) -> str:
        _check_writable(self.grant, "apply manifest changes")
        return jsonvalue.dumps(await self._governance.apply(self.universe, self.world_id, proposal, "client"))

    @remote()
    async def rollback(self, manifest: str, reason: str, _context: Any, **kwargs: Any) -> str:
        _check_writable(self.grant, "roll back the manifest")
        return jsonvalue.dumps(await self._governance.rollback(self.universe, self.world_id, manifest or "previous",
                                                                "client", reason))

    @remote()
    async def governance(self, _context: Any, **kwargs: Any) -> str:
        return jsonvalue.dumps(await self._governance.history(self.universe, self.world_id))

    @remote()
    async def manifest(self, _context: Any, **kwargs: Any) -> str:
        return jsonvalue.dumps(await self._governance.manifest(self.universe, self.world_id))


async def _watch(cap: WorldImpl, from_seq: int, watcher: Any, with_frames: bool = True) -> None:
    journal = cap.services.journal
    universe, world_id = journal_universe(cap.universe), cap.world_id
    frames: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=1024)

    def on_frame(intent_hash: str, frame: Any) -> None:
        if not frames.full():  # a slow watcher loses frames, never journal records
            frames.put_nowait((intent_hash, frame))

    # a watcher that takes no frames is not sent any (each would be a JSON text and a call)
    unsubscribe = cap.host.watch_frames(cap.universe, world_id, on_frame) if with_frames else (lambda: None)
    seq = from_seq
    world_key = name_key(universe, world_id)
    batches: bool | None = None  # whether the watcher takes `records` (asked with the first batch)
    try:
        while True:
            cap.grant.check()
            arrived = journal.committed.wait(world_key)
            records, _ = journal.read(universe, world_id, seq, 256)
            queued = []  # every frame published so far: each effect's come before the receipt read now
            while not frames.empty():
                queued.append(frames.get_nowait())
            pushes = []
            for item in _in_order(seq, records, queued):
                if isinstance(item[0], str):  # a frame
                    pushes.append(watcher.frame(item[0], item[1]))
                    continue
                first, jsons = item
                if batches is None and len(jsons) > 1:
                    batches = await _takes_batches(watcher, first, jsons)
                    if batches:
                        continue
                # pushed without waiting for each answer (Cap'n Proto delivers calls on one capability in
                # order; the client's watcher runs them in that order): one round trip per run, not per record
                if batches and len(jsons) > 1:
                    pushes.append(watcher.records(first, jsons))
                else:
                    pushes.extend(watcher.record(first + i, text) for i, text in enumerate(jsons))
            seq += len(records)
            for push in pushes:
                await push
            if not records:
                frame_wait = asyncio.ensure_future(frames.get())
                done, _ = await asyncio.wait({arrived, frame_wait}, return_when=asyncio.FIRST_COMPLETED)
                if frame_wait in done:
                    intent_hash, frame = frame_wait.result()
                    await watcher.frame(intent_hash, jsonvalue.dumps(frame))
                else:
                    frame_wait.cancel()
    finally:
        unsubscribe()


def _in_order(seq: int, records: list[bytes], queued: list[tuple[str, Any]]
              ) -> list[tuple[int, list[str]] | tuple[str, str]]:
    """Records from ``seq`` as runs of JSON texts, ``(first seq, texts)``, with the queued frames as
    ``(intent hash, text)`` between them: an effect's frames go just before the receipt that settles it,
    the others after the records (their intents were durable before the effect ran, so they are among
    these records or earlier). A watcher sees intent, frames, receipt, as they happened."""
    waiting: dict[str, list[int]] = {}
    for i, (intent_hash, _) in enumerate(queued):
        waiting.setdefault(intent_hash, []).append(i)
    sent: set[int] = set()
    out: list[tuple[int, list[str]] | tuple[str, str]] = []
    run: list[str] = []
    for i, raw in enumerate(records):
        value = record_value(raw)
        settles = value.get("intent_hash") if value.get("kind") == "receipt" else None
        if settles in waiting:
            if run:
                out.append((seq + i - len(run), run))
                run = []
            for at in waiting.pop(settles):
                out.append((settles, jsonvalue.dumps(queued[at][1])))
                sent.add(at)
        value["at"] = seq + i
        run.append(jsonvalue.dumps(value))
    if run:
        out.append((seq + len(records) - len(run), run))
    out.extend((h, jsonvalue.dumps(frame)) for at, (h, frame) in enumerate(queued) if at not in sent)
    return out


async def _takes_batches(watcher: Any, seq: int, jsons: list[str]) -> bool:
    """Send ``jsons`` as one ``records`` call; False (nothing delivered) if the watcher does not implement it."""
    try:
        await watcher.records(seq, jsons)
    except capnp.KjException as exc:
        # a pycapnp server without the method fails with its AttributeError instead of UNIMPLEMENTED
        if exc.type == "UNIMPLEMENTED" or "has no attribute 'records'" in (exc.description or ""):
            return False
        raise
    return True

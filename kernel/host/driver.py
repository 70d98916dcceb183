"""One awake world: the I/O shell around ``World``.

How it works: inputs (events, receipts, snapshot markers) queue in the
driver's inbox. The run loop takes a batch, applies each input to the
sans-IO ``World`` in order, and appends the inputs with their derived records
to the world's journal as one append, reserving the sequence numbers at once
and queueing the write on the group committer *without waiting for it*: the
next batch is stepped while this one syncs (at most ``MAX_COMMITS_IN_FLIGHT``
deep). Only when a batch is durable are its senders answered and its effect
intents started (the output gate), so nothing that was not journaled is ever
acted on or acknowledged. Mail that produced an input (timer firings, portal
messages) is acknowledged in the same atomic write as the journal append, so
each is consumed exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aos.adapters.base import Receipt
from aos.errors import AosError
from aos.kernel.host.registry import journal_universe
from aos.kernel.store import Op
from aos.kernel.world.errors import WorldError
from aos.kernel.world.records import (ControlRecord, EffectIntentRecord, EventRecord, GovernanceRecord, ReceiptRecord,
                                     Record, SnapshotRecord, Stamp)
from aos.kernel.world.stepper import World

if TYPE_CHECKING:
    from aos.kernel.host.host import WorldHost
    from aos.kernel.host.registry import WorldMeta

log = logging.getLogger("aos.kernel.world")

BATCH = 256
MAX_COMMITS_IN_FLIGHT = 8
_NOT_JOURNALED = -1  # an answer's offset for an input consumed without a journal record
EPOCH = 1  # single-host kernel; the scheduler issue brings real epochs


@dataclass(slots=True)
class _Input:
    record: EventRecord | ReceiptRecord | SnapshotRecord | GovernanceRecord | ControlRecord
    extra_ops: list[Op]
    future: asyncio.Future[int] | None
    door_checked: bool = False
    checked_against: str = ""  # the manifest the door check ran on (a governance switch may come first)


@dataclass
class DriverStats:
    inputs: int = 0
    last_input_ms: int = 0
    traps: int = 0
    rejected_effects: int = 0
    frames: int = 0
    recent_traps: deque[str] = field(default_factory=lambda: deque(maxlen=16))


class WorldDriver:
    def __init__(self, host: WorldHost, meta: WorldMeta, world: World, next_seq: int) -> None:
        self.host = host
        self.meta = meta
        self.world = world
        self.universe = meta.universe
        self.journal_universe = journal_universe(meta.universe)
        self.world_id = meta.world_id
        self.next_seq = next_seq
        self.stats = DriverStats()
        self.last_active = time.monotonic()
        self._inbox: deque[_Input] = deque()
        # events and receipts that reached the driver while the world is paused (World.pause), in order:
        # a resume puts them back first; what comes by mail meanwhile waits in the inbox mailbox
        self._held: deque[_Input] = deque()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_COMMITS_IN_FLIGHT)
        self._commits: set[asyncio.Task[None]] = set()
        self._effects: dict[str, asyncio.Task[None]] = {}
        self._effect_started: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.failed: BaseException | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"world {self.world_id}")

    def quiescent(self) -> bool:
        """Nothing queued, syncing or running: safe to snapshot and hibernate."""
        return not self._inbox and not self._commits and not self._effects and not self._held

    def held(self) -> int:
        """Events and receipts held while the world is paused."""
        return len(self._held)

    async def drain(self) -> None:
        """Wait until everything submitted so far is durable."""
        while self._inbox or self._commits:
            if self._commits:
                await asyncio.wait(set(self._commits))
            else:
                await asyncio.sleep(0)  # the run loop turns the inbox into commits on its next turn

    async def stop(self) -> None:
        for task in [self._task, *self._effects.values()]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in [self._task, *self._effects.values(), *self._commits] if t], return_exceptions=True)
        # what the world holds open outside the kernel (browser contexts) goes with its driver
        await self.host.dispatcher.world_stopped(self.universe, self.world_id)

    # --- inputs --------------------------------------------------------------------------------

    async def send_event(self, schema: str, value: Any, extra_ops: list[Op] | None = None) -> int:
        """Check at the door, then journal and apply an event; returns the input's journal seq."""
        bad = self.world.check_event(schema, value)
        if bad is not None:
            raise bad
        return await self.submit_event(schema, value, extra_ops)

    def submit_event(self, schema: str, value: Any, extra_ops: list[Op] | None = None) -> asyncio.Future[int]:
        """Journal and apply an event the caller has just door-checked against this world (no await between)."""
        record = EventRecord(schema, value, Stamp(time.time_ns(), os.urandom(16)))
        return self.submit(record, extra_ops, door_checked=True)

    async def deliver_receipt(self, intent_hash: str, receipt: Receipt, extra_ops: list[Op] | None = None) -> None:
        payload: Any = dict(receipt.payload)
        if receipt.status != "ok":
            payload = {"error": receipt.error or receipt.status, "message": receipt.message, **payload}
        status = receipt.status
        bad = self.world.check_receipt(intent_hash, status, payload)
        if bad is not None and bad.path == "$.intent_hash":
            # a duplicate (the intent was already settled): consume the mail, change nothing
            if extra_ops:
                await self.host.services.committer.commit(extra_ops)
            return
        if bad is not None:
            status, payload = "error", {"error": "bad_receipt", "message": str(bad)}
        await self.submit(ReceiptRecord(intent_hash, status, payload, Stamp(time.time_ns(), b"")), extra_ops)

    def submit(self, record: EventRecord | ReceiptRecord | SnapshotRecord | GovernanceRecord | ControlRecord,
               extra_ops: list[Op] | None = None, door_checked: bool = False) -> asyncio.Future[int]:
        if self.failed is not None:
            raise WorldError(f"world {self.world_id} is stopped after a storage failure")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._inbox.append(_Input(record, extra_ops or [], future, door_checked, self.world.manifest_hash))
        self._wake.set()
        return future

    # --- the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        journal = self.host.services.journal
        committer = self.host.services.committer
        while True:
            if not self._inbox:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._slots.acquire()
            batch = [self._inbox.popleft() for _ in range(min(BATCH, len(self._inbox)))]
            blobs: list[bytes] = []
            ops: list[Op] = []
            intents: list[EffectIntentRecord] = []
            answers: list[tuple[_Input, int, str]] = []
            for i, item in enumerate(batch):
                if self.world.paused and isinstance(item.record, (EventRecord, ReceiptRecord)):
                    self._held.append(item)  # its sender waits; a resume applies it
                    continue
                if isinstance(item.record, ReceiptRecord) and self._settled(item.record):
                    # a second copy of a receipt (two inbox copies of one timer firing, say) passed the check
                    # in deliver_receipt before the first was applied: consume its mail, journal nothing
                    ops.extend(item.extra_ops)
                    answers.append((item, _NOT_JOURNALED, ""))
                    continue
                resumes = isinstance(item.record, ControlRecord) and item.record.op == "resume" and self.world.paused
                if resumes:  # what was held goes before whatever came after the resume in this batch
                    self._inbox.extendleft(reversed([*self._held, *batch[i + 1:]]))
                    self._held.clear()
                result = self.world.apply(item.record, item.door_checked
                                          and item.checked_against == self.world.manifest_hash)
                answers.append((item, len(blobs), result.error.message if result.status == "rejected" and result.error else ""))
                blobs.append(item.record.encode())
                blobs.extend(r.encode() for r in result.records)
                self._note(result.records)
                ops.extend(item.extra_ops)
                intents.extend(result.intents)
                if resumes:
                    break
            if not blobs:  # everything in it was held, or duplicate receipts whose mail is consumed
                if ops:
                    durable = committer.enqueue(ops)
                    task = asyncio.get_running_loop().create_task(self._finish(durable, self.next_seq, 0, answers, []))
                    self._commits.add(task)
                    task.add_done_callback(self._commits.discard)
                else:
                    self._slots.release()
                continue
            first, journal_ops = journal.prepare_append(self.journal_universe, self.world_id, self.next_seq, EPOCH, blobs)
            self.next_seq += len(blobs)
            durable = committer.enqueue(journal_ops + ops)
            task = asyncio.get_running_loop().create_task(self._finish(durable, first, len(blobs), answers, intents))
            self._commits.add(task)
            task.add_done_callback(self._commits.discard)

    async def _finish(self, durable: asyncio.Future[None], first: int, count: int,
                      answers: list[tuple[_Input, int, str]], intents: list[EffectIntentRecord]) -> None:
        try:
            await durable
        except BaseException as exc:
            self.failed = exc
            for item, _, _ in answers:
                if item.future is not None and not item.future.done():
                    item.future.set_exception(AosError("the journal write failed"))
            raise
        finally:
            self._slots.release()
        self.host.services.journal.finish_append(self.journal_universe, self.world_id, first, count)
        self.last_active = time.monotonic()
        # a snapshot marker (hibernation, `world snapshot`) is no input: `world ls` must not show it as one
        inputs = sum(1 for item, offset, _ in answers
                     if not isinstance(item.record, SnapshotRecord) and offset != _NOT_JOURNALED)
        if inputs:
            self.stats.inputs += inputs
            self.stats.last_input_ms = time.time_ns() // 1_000_000
            events = sum(1 for item, _, _ in answers if isinstance(item.record, EventRecord))
            self.host.events[self.universe] += events
            self.host.receipts[self.universe] += inputs - events
        for item, offset, rejected in answers:
            if item.future is None or item.future.done():
                continue
            if rejected:
                item.future.set_exception(WorldError(rejected))
            else:
                item.future.set_result(-1 if offset == _NOT_JOURNALED else first + offset)
        for intent in intents:
            self.start_effect(intent)

    def _settled(self, receipt: ReceiptRecord) -> bool:
        """Is the receipt's intent settled (or unknown) by now, in apply order?"""
        bad = self.world.check_receipt(receipt.intent_hash, receipt.status, receipt.payload)
        return bad is not None and bad.path == "$.intent_hash"

    def _note(self, records: tuple[Record, ...]) -> None:
        for record in records:
            if record.kind == "trap":
                self.stats.traps += 1
                self.stats.recent_traps.append(f"{record.code}: {record.message}")  # type: ignore[union-attr]
                log.warning("event=workflow_trap world=%s code=%s", self.world_id, record.code)  # type: ignore[union-attr]
            elif record.kind == "effect_rejected":
                self.stats.rejected_effects += 1

    # --- effects -------------------------------------------------------------------------------

    def start_effect(self, intent: EffectIntentRecord) -> None:
        """Run an intent's adapter (only ever called for durable intents)."""
        if intent.intent_hash in self._effects:
            return
        task = asyncio.get_running_loop().create_task(self._run_effect(intent))
        self._effects[intent.intent_hash] = task
        self._effect_started[intent.intent_hash] = time.time_ns() // 1_000_000
        task.add_done_callback(lambda _: self._effect_done(intent.intent_hash))

    def _effect_done(self, intent_hash: str) -> None:
        self._effects.pop(intent_hash, None)
        self._effect_started.pop(intent_hash, None)

    def running_effects(self) -> dict[str, int]:
        """Intent hash -> when its adapter started (ms), for the effects running now."""
        return dict(self._effect_started)

    async def _run_effect(self, intent: EffectIntentRecord) -> None:
        with_receipt: list[Op] = []  # writes the adapter made that must be durable with its receipt
        try:
            receipt = await self.host.dispatcher.start(self, intent, with_receipt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an adapter bug becomes an error receipt, not a stuck world
            log.exception("event=adapter_failed world=%s effect=%s", self.world_id, intent.effect)
            receipt = Receipt.fail("adapter_failed", f"{type(exc).__name__} in the {intent.effect} adapter")
        if receipt is not None:
            await self.deliver_receipt(intent.intent_hash, receipt, with_receipt)
        elif with_receipt:
            await self.host.services.committer.commit(with_receipt)

    async def cancel_effects(self) -> None:
        """Stop every running adapter without settling its intent (a hand-over: the intents stay open and
        restart, with the same idempotency keys, wherever the world wakes next)."""
        tasks = list(self._effects.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def cancel_effect(self, intent_hash: str) -> None:
        """Stop a running adapter; the caller settles the intent."""
        task = self._effects.pop(intent_hash, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def publish_frame(self, intent_hash: str, frame: Mapping[str, Any]) -> None:
        self.stats.frames += 1
        self.host.publish_frame(self.universe, self.world_id, intent_hash, frame)

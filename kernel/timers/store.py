"""Durable timers that fire into mailboxes.

How it works: pending timers live in the ``timers`` family (so they survive
restarts) and in an in-memory heap ordered by due time. One task sleeps until
the earliest is due, then, for every due timer, deletes it and enqueues its
message in the same synced write: a timer fires exactly once, even across a
crash. Heap entries go stale when a key is rescheduled or cancelled; the
``generation`` check skips them instead of searching the heap.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import struct
import time
from dataclasses import dataclass

from aos.kernel.mailbox.store import MailboxStore
from aos.kernel.names import is_kernel_name, key
from aos.kernel.store import GroupCommitter, KernelStore, Op

log = logging.getLogger("aos.kernel.timers")

_TIMER = struct.Struct(">qH")  # deliverAtMs, len(target); then target, then payload


@dataclass(frozen=True, slots=True)
class PendingTimer:
    universe: str
    key: str
    deliver_at_ms: int
    target: str
    payload: bytes


def _encode(deliver_at_ms: int, target: str, payload: bytes) -> bytes:
    raw = target.encode()
    return _TIMER.pack(deliver_at_ms, len(raw)) + raw + payload


def _decode(universe: str, timer_key: str, raw: bytes) -> PendingTimer:
    deliver_at_ms, target_len = _TIMER.unpack_from(raw)
    start = _TIMER.size
    return PendingTimer(universe, timer_key, deliver_at_ms, raw[start : start + target_len].decode(), raw[start + target_len :])


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class TimerStore:
    def __init__(self, store: KernelStore, committer: GroupCommitter, mailboxes: MailboxStore) -> None:
        self._store = store
        self._committer = committer
        self._mailboxes = mailboxes
        self._heap: list[tuple[int, int, str, str]] = []  # (due, generation, universe, key)
        self._generation: dict[tuple[str, str], int] = {}
        self._counter = itertools.count()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.fired = 0

    def start(self) -> None:
        for raw_key, raw in self._store.scan("timers", b""):
            universe, timer_key, _ = raw_key.split(b"\x00")
            timer = _decode(universe.decode(), timer_key.decode(), raw)
            self._push(timer.universe, timer.key, timer.deliver_at_ms)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def _push(self, universe: str, timer_key: str, due: int) -> None:
        generation = next(self._counter)
        self._generation[(universe, timer_key)] = generation
        heapq.heappush(self._heap, (due, generation, universe, timer_key))
        self._changed.set()

    def adopt(self, universe: str, timer_keys: list[str]) -> None:
        """Schedule timers written to the store by someone else (a world arriving from another kernel)."""
        for timer_key in timer_keys:
            raw = self._store.get("timers", key(universe, timer_key))
            if raw is not None:
                self._push(universe, timer_key, _decode(universe, timer_key, raw).deliver_at_ms)

    async def schedule(self, universe: str, timer_key: str, deliver_at_ms: int, target: str, payload: bytes) -> None:
        await self._committer.commit([Op("timers", key(universe, timer_key), _encode(deliver_at_ms, target, payload))])
        self._push(universe, timer_key, deliver_at_ms)

    async def cancel(self, universe: str, timer_key: str) -> bool:
        if self._generation.pop((universe, timer_key), None) is None:
            return False
        await self._committer.commit([Op("timers", key(universe, timer_key), None)])
        return True

    def pending(self, universe: str, limit: int, kernel: bool = True) -> list[PendingTimer]:
        """The universe's pending timers by due time; ``kernel=False`` leaves out the
        kernel's own (those behind worlds' ``timer.set``), which no client may see."""
        timers = [
            _decode(universe, raw_key.split(b"\x00")[1].decode(), raw)
            for raw_key, raw in self._store.scan("timers", key(universe))
        ]
        if not kernel:
            timers = [t for t in timers if not is_kernel_name(t.key)]
        timers.sort(key=lambda t: (t.deliver_at_ms, t.key))
        return timers[:limit]

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            while self._heap and self._generation.get((self._heap[0][2], self._heap[0][3])) != self._heap[0][1]:
                heapq.heappop(self._heap)  # stale: rescheduled or cancelled
            if not self._heap:
                await self._changed.wait()
                continue
            delay = (self._heap[0][0] - now_ms()) / 1000
            if delay > 0:
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
                continue
            await self._fire_due()

    async def _fire_due(self) -> None:
        ops: list[Op] = []
        delivered: list[tuple[str, str, str]] = []
        now = now_ms()
        while self._heap and self._heap[0][0] <= now:
            due, generation, universe, timer_key = heapq.heappop(self._heap)
            if self._generation.get((universe, timer_key)) != generation:
                continue
            del self._generation[(universe, timer_key)]
            raw = self._store.get("timers", key(universe, timer_key))
            if raw is None:
                continue
            timer = _decode(universe, timer_key, raw)
            if timer.deliver_at_ms > now:
                continue  # rescheduled later while this entry was due; its new entry will fire
            message_id = f"timer:{timer_key}:{timer.deliver_at_ms}"
            ops.append(Op("timers", key(universe, timer_key), None))
            enqueue = self._mailboxes.enqueue_ops(universe, timer.target, message_id, timer.payload)
            if enqueue is not None:
                ops.extend(enqueue)
                delivered.append((universe, timer.target, message_id))
        if not ops:
            return
        try:
            await self._committer.commit(ops)
        finally:
            for universe, target, message_id in delivered:
                self._mailboxes.committed(universe, target, message_id)
        self.fired += len(delivered)
        log.debug("event=timers_fired count=%d", len(delivered))

"""The kernel's one RocksDB database and the group committer that writes it.

How it works: every durable change in the kernel (journal records, blobs,
grants, tokens, timers, mail) is a list of ``Op`` handed to
``GroupCommitter.commit``. A single writer task takes everything that queued
up since its last write, writes it as one synced ``WriteBatch`` in a worker
thread, and only then resolves the callers' futures. While one batch syncs,
the next one fills, so N concurrent writers cost about one fsync per turn
instead of N: durability for many writers is nearly free, and nothing is
acknowledged before it is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import rocksdict

from aos.errors import DataDirLocked, KernelError
from aos.kernel.metrics import observe_commit

log = logging.getLogger("aos.kernel.store")

COLUMN_FAMILIES = ("cas", "journal", "heads", "grants", "tokens", "timers", "mail", "maildedup", "worlds", "meta")


class Op(NamedTuple):
    """One key write (value) or delete (value is None) in a column family. (A named tuple: a journal
    append makes two, and a frozen dataclass's ``__init__`` costs several times a tuple's.)"""

    family: str
    key: bytes
    value: bytes | None


class KernelStore:
    """Owns the RocksDB instance under ``<data>/db``; the only disk I/O of the kernel."""

    def __init__(self, path: str, read_only: bool = False) -> None:
        """``read_only`` opens beside a running kernel (RocksDB allows that) and never writes."""
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(not read_only)
        options.create_missing_column_families(not read_only)
        families = {name: rocksdict.Options(raw_mode=True) for name in COLUMN_FAMILIES}
        access = rocksdict.AccessType.read_only() if read_only else rocksdict.AccessType.read_write()
        try:
            self._db = rocksdict.Rdict(path, options=options, column_families=families, access_type=access)
        except Exception as exc:  # rocksdict raises a plain Exception for everything
            if "LOCK" in str(exc) or "lock" in str(exc):
                raise DataDirLocked(f"the database at {path} is in use by another process") from None
            raise KernelError(f"cannot open the database at {path}: {exc}") from None
        self._families = {name: self._db.get_column_family(name) for name in COLUMN_FAMILIES}
        self._handles = {name: self._db.get_column_family_handle(name) for name in COLUMN_FAMILIES}
        self._unsynced = rocksdict.WriteOptions()
        self._unsynced.sync = False
        self.path = path

    def family(self, name: str) -> rocksdict.Rdict:
        return self._families[name]

    def get(self, family: str, key: bytes) -> bytes | None:
        value: bytes | None = self._families[family].get(key)
        return value

    def scan(self, family: str, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Keys with ``prefix`` in byte order, from ``start`` (inclusive) if given."""
        it = self._families[family].iter()
        it.seek(start if start is not None else prefix)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                return
            yield key, it.value()
            it.next()

    def write(self, ops: list[Op]) -> None:
        """Write ops atomically and durably (blocking: the committer's writer thread, or its loop thread
        for a lone caller's turn)."""
        batch = rocksdict.WriteBatch(raw_mode=True)
        handles = self._handles
        for op in ops:
            if op.value is None:
                batch.delete(op.key, handles[op.family])
            else:
                batch.put(op.key, op.value, handles[op.family])
        # rocksdict holds the GIL for the whole of a synced write, fsync included, which
        # would freeze the event loop for every turn; flush_wal(sync) releases it. The
        # batch is atomic in the WAL either way, and nothing is acknowledged before
        # flush_wal returns. (Readers of RocksDB may see the batch a moment before it
        # is durable: journal reads are bounded by the durable head; CAS, mail and
        # timers tolerate it, since nothing is acknowledged early.)
        self._db.write(batch, self._unsynced)
        self._db.flush_wal(True)

    def close(self) -> None:
        # column-family views keep the database (and its lock) alive: drop them first
        self._families.clear()
        self._handles.clear()
        self._db.close()


T = TypeVar("T")
LINGER_GAP = 0.002  # a lingering turn stops waiting when no write arrived for this long
LONE_TURNS = 2  # after this many one-caller turns in a row, the next lone one is written on the loop thread
INLINE_MAX_BYTES = 256 << 10  # a bigger turn (a large blob) syncs on the writer thread, the loop free meanwhile


@dataclass(frozen=True, slots=True)
class _Job:
    """A function to run on the writer thread between two turns (``GroupCommitter.call``)."""

    fn: Callable[[], Any]


class GroupCommitter:
    """Batches concurrent ``commit`` calls into one synced write per turn.

    ``writer`` writes one turn (default: ``store.write``); a kernel on shared
    storage passes one that puts the turn in its S3 log first
    (``kernel/storage/hosting.py``). It runs on the one writer thread, in
    turn order, and whatever it raises is fatal.

    ``linger`` (seconds, default 0: never) lets a turn wait, that long at
    most, for the callers the last turn answered: busy callers send their
    next write a moment after the following turn started, and without the
    wait the turns split into two half-full ones that alternate. On S3 each
    turn is a billed request. The wait ends as soon as they are all back, or
    when nothing arrived for ``LINGER_GAP``, so a lone caller never waits and
    callers that do not come back cost at most that gap.

    A caller alone (one world's agent session, say) waits on a chain of
    sequential commits, each a hand-off to the writer thread and back around
    a sync of a few hundred microseconds. When the last ``LONE_TURNS`` turns
    each had one caller and nothing else is queued, the turn is written on
    the loop thread instead: the loop has nothing else to do meanwhile, and
    the caller gets its answer without the two hand-offs (an agent turn,
    ~4 commits in a row, came 3-5% faster, interleaved A/B). The first turn
    with a second caller, or of more than ``INLINE_MAX_BYTES``, goes back to
    the thread, so a busy kernel keeps accepting work while a turn syncs.
    """

    def __init__(self, store: KernelStore, on_fatal: Callable[[BaseException], None] | None = None,
                 writer: Callable[[list[Op]], None] | None = None, linger: float = 0.0) -> None:
        self._store = store
        self._write = writer if writer is not None else store.write
        self._linger = linger
        self._expect = 0  # callers queued when the last turn answered + the callers it answered
        self._queue: list[tuple[list[Op] | _Job, asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aos-commit")
        self._inline = writer is None  # a remote writer's turn is a network request: always on the thread
        self._lone = 0  # turns in a row that had one caller
        self._task: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None
        self._on_fatal = on_fatal
        self.turns = 0
        self.ops = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def commit(self, ops: list[Op]) -> None:
        """Return once ``ops`` are synced to disk, atomically with each other."""
        await self.enqueue(ops)

    def enqueue(self, ops: list[Op]) -> asyncio.Future[None]:
        """Queue ``ops`` now (so callers control their order); the future resolves once durable."""
        if self._failed is not None:
            raise KernelError("the kernel's storage failed; it accepts no more writes")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((ops, future))
        self._wakeup.set()
        return future

    async def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the writer thread after every turn queued before it and before any queued after.

        For work that must see the store exactly between two turns; what it
        raises goes to the caller only (it is not a failed write).
        """
        if self._failed is not None:
            raise KernelError("the kernel's storage failed; it accepts no more writes")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((_Job(fn), future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._linger and len(self._queue) < self._expect:
                await self._gather(loop)
            queued, self._queue = self._queue, []
            while queued:
                # everything up to the next job is one turn; the job runs after it
                cut = next((i for i, (item, _) in enumerate(queued) if isinstance(item, _Job)), len(queued))
                turn, job, queued = queued[:cut], queued[cut] if cut < len(queued) else None, queued[cut + 1 :]
                if turn:
                    await self._turn(loop, turn, queued)  # type: ignore[arg-type]
                if job is not None:
                    fn, future = job[0].fn, job[1]  # type: ignore[union-attr]
                    try:
                        result = await loop.run_in_executor(self._thread, fn)
                    except Exception as exc:  # noqa: BLE001 -- the job's caller handles it
                        if not future.done():
                            future.set_exception(exc)
                    else:
                        if not future.done():
                            future.set_result(result)

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait (at most ``linger``) for the callers the last turn answered to queue their next writes."""
        deadline = loop.time() + self._linger
        while len(self._queue) < self._expect and not any(isinstance(item, _Job) for item, _ in self._queue):
            left = min(deadline - loop.time(), LINGER_GAP)
            if left <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except asyncio.TimeoutError:
                return  # nothing for a gap (or the linger is up): they are not coming

    async def _turn(self, loop: asyncio.AbstractEventLoop, turn: list[tuple[list[Op], asyncio.Future[None]]],
                    later: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        ops = [op for batch, _ in turn for op in batch]
        started = time.perf_counter()
        inline = (self._inline and len(turn) == 1 and not later and not self._queue and self._lone >= LONE_TURNS
                  and sum(len(op.value) for op in ops if op.value is not None) <= INLINE_MAX_BYTES)
        self._lone = self._lone + 1 if len(turn) == 1 else 0
        try:
            if inline:
                self._write(ops)
            else:
                await loop.run_in_executor(self._thread, self._write, ops)
        except BaseException as exc:
            # A failed synced write leaves us unsure what is on disk, so no
            # caller may be told "durable" again: fail everything, stop.
            self._failed = exc
            log.critical("event=commit_failed error=%r", str(exc))
            for _, future in turn + later + self._queue:
                if not future.done():
                    future.set_exception(KernelError("storage write failed"))
            if self._on_fatal is not None:
                self._on_fatal(exc)
            raise
        self.turns += 1
        self.ops += len(ops)
        observe_commit(len(ops), len(turn), time.perf_counter() - started)
        for _, future in turn:
            if not future.done():
                future.set_result(None)
        self._expect = len(self._queue) + len(turn) if len(turn) > 1 else 0

    async def close(self) -> None:
        """Write what is queued, then stop the writer."""
        if self._failed is None and self._task is not None:
            # turns are FIFO: once this empty commit is through, so is everything before it
            await self.commit([])
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._thread.shutdown(wait=True)

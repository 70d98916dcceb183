"""The fenced write-ahead log: one object per group-commit turn, one writer per generation.

How it works (SlateDB's writer fencing, on any ``ObjectStore``):

- A log is ``logs/<log>/<20-digit seq>`` objects, written contiguously with
  ``If-None-Match: *``, plus ``logs/<log>/head`` naming its newest
  generation (epoch). Nothing is ever overwritten or deleted here.
- **Open** (a host starting, or restarting, its log): bump the head's epoch
  with ``If-Match``, then write a *fence* object (an empty batch of the new
  epoch) past the last object, then append after it.
- **Append**: PUT the turn at the writer's next seq with ``If-None-Match``.
  Success means the turn is in the store and may be acknowledged. A 412
  means the slot is taken: if it holds this writer's own bytes (a retried
  request whose first attempt landed) the append succeeded; anything else
  means a newer generation fenced the log, and the writer raises ``Fenced``
  and never appends again.
- **Fence** (someone taking over a dead or stolen-from host's log): the same
  head bump and fence object, without becoming the writer.

Placing the fence: the fencer tries the first free seq. A live zombie that
always has its next turn ready wins that race every time (its PUT leaves as
soon as its last one returns), so after each lost slot the fencer jumps
ahead by a doubling stride (1, 2, 4, ...) and, once its fence lands, *plugs*
every empty slot below it with more fence objects, highest first.

Why a zombie cannot append after the fence: a generation writes seq n only
after its write of n-1 succeeded. It therefore stops at the first slot it
did not write, and that slot is at or below the fence; once the plugging is
done every slot below the fence is taken, so every batch the old generation
will ever have is below the first plug or fence it met, and a reader who
scans up to the first object of a newer generation has all of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

from aos.errors import Fenced, StorageUnavailable
from aos.kernel.names import check_name
from aos.kernel.store import Op
from aos.kernel.storage import codec
from aos.kernel.storage.contract import CorruptObject, FenceResult, LogBatch, LogHead, ObjectStore, PreconditionFailed
from aos.kernel.storage.layout import log_head_key, log_key, log_prefix, parse_seq

MAX_SLOT_RACES = 10_000  # a fencer overtaking a writer that keeps winning slots; each race costs the writer a turn
MAX_HEAD_RACES = 100
CACHE_BATCHES = 4096


# --- the decisions, without I/O ---------------------------------------------------------------


class Slot(Enum):
    """What a taken slot means to someone who tried to write ``mine`` of generation ``epoch`` there."""

    OWN = "own"  # our own earlier attempt landed (a retried request): success
    OLDER = "older"  # an older generation got there first: a fencer moves on to the next slot
    NEWER = "newer"  # a newer generation's object: we are fenced


def classify_slot(mine: bytes, existing: bytes, existing_batch: LogBatch, epoch: int) -> Slot:
    if existing == mine:
        return Slot.OWN
    if existing_batch.epoch < epoch:
        return Slot.OLDER
    return Slot.NEWER


@dataclass
class GenerationScan:
    """Collects one generation's batches from a log read in seq order, until a later generation's fence.

    ``feed`` returns True once the generation is known to be over (a fence of
    a higher epoch, or any object of a higher epoch, which can only follow
    such a fence). Batches of older generations (before the generation's own
    opening fence) and fences are skipped.
    """

    generation: int
    next_seq: int
    batches: list[LogBatch] = field(default_factory=list)
    end: int | None = None  # seq of the object that ended the generation

    def feed(self, batch: LogBatch) -> bool:
        if batch.seq != self.next_seq:
            raise CorruptObject(f"log {batch.log}: expected seq {self.next_seq}, read {batch.seq}")
        self.next_seq += 1
        if batch.epoch > self.generation:
            self.end = batch.seq
            return True
        if batch.epoch == self.generation and not batch.fence:
            self.batches.append(batch)
        return False


# --- the shell ---------------------------------------------------------------------------------


class LogWriter:
    """One generation of a log (``WriteAheadLog``); the only writer it has. Thread-safe, appends in order."""

    def __init__(self, objects: ObjectStore, log: str, epoch: int, writer: str, next_seq: int) -> None:
        self._objects = objects
        self.log = log
        self.epoch = epoch
        self.writer = writer
        self._next = next_seq
        self._lock = threading.Lock()
        self._fenced: str | None = None
        self._broken: str | None = None
        self.appends = 0

    def __repr__(self) -> str:
        return f"LogWriter({self.log!r}, epoch={self.epoch}, next_seq={self._next})"

    @property
    def next_seq(self) -> int:
        return self._next

    @property
    def fenced(self) -> bool:
        return self._fenced is not None

    def append(self, ops: Sequence[Op]) -> int:
        with self._lock:
            if self._fenced is not None:
                raise Fenced(self._fenced)
            if self._broken is not None:
                raise StorageUnavailable(self._broken)
            seq = self._next
            key = log_key(self.log, seq)
            data = codec.encode_batch(LogBatch(self.log, seq, self.epoch, self.writer, tuple(ops)))
            try:
                self._objects.put(key, data, if_none_match=True)
            except PreconditionFailed:
                existing = self._objects.get(key)
                if existing is None:  # nothing is ever deleted from a log: the store is not S3-like
                    raise CorruptObject(f"log {self.log}: seq {seq} refused our write but holds nothing") from None
                found = codec.decode_batch(existing.data, self.log, seq)
                if classify_slot(data, existing.data, found, self.epoch) is not Slot.OWN:
                    kind = "fence" if found.fence else "batch"
                    self._fenced = (
                        f"log {self.log}: generation {self.epoch} is fenced (seq {seq} holds a {kind} of "
                        f"generation {found.epoch} by {found.writer})"
                    )
                    raise Fenced(self._fenced) from None
            except StorageUnavailable as exc:
                # the PUT may or may not have landed, and a later append at this seq could not
                # tell its own bytes from the lost turn's: this handle is done, reopen the log
                self._broken = f"log {self.log}: an append's outcome is unknown ({exc}); reopen the log"
                raise
            self._next = seq + 1
            self.appends += 1
            return seq


class ObjectLogs:
    """``LogStore`` over an ``ObjectStore``: open, fence, read and recover logs."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self._cache: OrderedDict[tuple[str, int], LogBatch] = OrderedDict()
        self._cache_lock = threading.Lock()

    def head(self, log: str) -> LogHead | None:
        stored = self.objects.get(log_head_key(log))
        return None if stored is None else codec.decode_log_head(stored.data, log)

    def open(self, log: str, writer: str) -> LogWriter:
        check_name(writer, "writer id")
        fence = self._fence(log, writer, become_writer=True)
        return LogWriter(self.objects, log, fence.epoch, writer, fence.seq + 1)

    def fence(self, log: str, by: str, after: int = -1) -> FenceResult:
        """End the log's current generation; ``after`` is a seq known to exist (saves LIST pages)."""
        check_name(by, "fencer id")
        return self._fence(log, by, become_writer=False, after=after)

    def _fence(self, log: str, by: str, *, become_writer: bool, after: int = -1) -> FenceResult:
        new, etag = self._bump_head(log, by, become_writer)
        base = max(after, new.fence_seq)
        present = self._listed(log, base)
        end = max(present, default=base) + 1
        floor = next(seq for seq in range(base + 1, end + 1) if seq not in present)
        occupied = set(present)
        # Claim a slot past the writer. A live writer always has its next turn ready, so
        # a fencer that only ever tries the next slot loses every race; jumping ahead by a
        # doubling stride gets in front of it within a few tries.
        target, stride = end, 1
        newer: LogBatch | None = None
        for _ in range(MAX_SLOT_RACES):
            found = self._claim(log, target, new.epoch, by)
            if found is None:
                break
            if found.epoch >= new.epoch:
                if become_writer:
                    raise Fenced(f"log {log}: generation {new.epoch} was fenced by {found.epoch} while opening")
                newer = found  # a newer generation's fence is at or before this slot: the old ones are over
                break
            occupied.add(target)
            target += stride
            stride *= 2
        else:
            raise StorageUnavailable(f"log {log}: the old writer kept winning slots; gave up fencing")
        # Plug every empty slot below the fence, highest first: the old writer writes
        # contiguously, so it stops at the first plug it reaches, and once every slot below
        # the fence is taken, nothing of an older generation can ever appear there.
        for seq in range(target - 1, floor - 1, -1):
            if seq not in occupied:
                self._plug(log, seq, new.epoch, by)
        if newer is not None:
            return FenceResult(log, newer.epoch, target)
        try:
            # where the fence is, so the next fencer lists from here; the fence holds either way
            self.objects.put(
                log_head_key(log), codec.encode_log_head(LogHead(log, new.epoch, new.owner, target)), if_match=etag
            )
        except PreconditionFailed:
            if become_writer:
                raise Fenced(f"log {log}: generation {new.epoch} was superseded while opening") from None
        return FenceResult(log, new.epoch, target)

    def _bump_head(self, log: str, by: str, become_writer: bool) -> tuple[LogHead, str]:
        """Make a new generation the log's newest (``If-Match``); return its head and ETag."""
        head_key = log_head_key(log)
        for _ in range(MAX_HEAD_RACES):
            stored = self.objects.get(head_key)
            old = LogHead(log, 0, None, -1) if stored is None else codec.decode_log_head(stored.data, log)
            new = LogHead(log, old.epoch + 1, by if become_writer else None, old.fence_seq)
            try:
                etag = self.objects.put(
                    head_key, codec.encode_log_head(new),
                    if_none_match=stored is None, if_match=None if stored is None else stored.etag,
                )
                return new, etag
            except PreconditionFailed:
                continue  # another opener or fencer bumped it first: bump past theirs
        raise StorageUnavailable(f"log {log}: its head kept changing; gave up fencing")

    def _claim(self, log: str, seq: int, epoch: int, by: str) -> LogBatch | None:
        """Put a fence at ``seq``; None if it is there (now or from our own earlier attempt), else what is."""
        key = log_key(log, seq)
        data = codec.encode_batch(LogBatch(log, seq, epoch, by, (), fence=True))
        try:
            self.objects.put(key, data, if_none_match=True)
            return None
        except PreconditionFailed:
            pass
        existing = self.objects.get(key)
        if existing is None:  # nothing is ever deleted from a log: the store is not S3-like
            raise CorruptObject(f"log {log}: seq {seq} refused our write but holds nothing")
        found = codec.decode_batch(existing.data, log, seq)
        return None if classify_slot(data, existing.data, found, epoch) is Slot.OWN else found

    def _plug(self, log: str, seq: int, epoch: int, by: str) -> None:
        try:
            self.objects.put(log_key(log, seq), codec.encode_batch(LogBatch(log, seq, epoch, by, (), fence=True)),
                             if_none_match=True)
        except PreconditionFailed:
            pass  # the old writer (or another fencer) filled it: either way it is taken

    def _listed(self, log: str, after: int) -> set[int]:
        """Seqs present past ``after``."""
        start_after = log_key(log, after) if after >= 0 else ""
        return {
            seq for key in self.objects.list(log_prefix(log), start_after)
            if (seq := parse_seq(key.rsplit("/", 1)[-1])) is not None and seq > after
        }

    def next_free(self, log: str, after: int = -1) -> int:
        """The first seq past the last object, listing from ``after`` (a seq known to exist, or -1)."""
        return max(self._listed(log, after), default=after) + 1

    def read(self, log: str, start: int = 0) -> Iterator[LogBatch]:
        """Objects from ``start`` in seq order, up to the first missing seq as listed when the read began.

        A missing seq below later objects is a fence still being plugged (or
        a fencer that died plugging): ``recover`` fences again, which plugs it.
        """
        check_name(log, "log id")
        expected = start
        start_after = log_key(log, start - 1) if start > 0 else ""
        for key in self.objects.list(log_prefix(log), start_after):
            seq = parse_seq(key.rsplit("/", 1)[-1])
            if seq is None:
                continue  # the head
            if seq != expected:
                return
            yield self._batch(log, seq)
            expected += 1

    def _batch(self, log: str, seq: int) -> LogBatch:
        # log objects never change once written, so a decoded one is good forever
        with self._cache_lock:
            cached = self._cache.get((log, seq))
            if cached is not None:
                self._cache.move_to_end((log, seq))
                return cached
        stored = self.objects.get(log_key(log, seq))
        if stored is None:
            raise CorruptObject(f"log {log}: seq {seq} was listed but cannot be read")
        batch = codec.decode_batch(stored.data, log, seq)
        with self._cache_lock:
            self._cache[(log, seq)] = batch
            while len(self._cache) > CACHE_BATCHES:
                self._cache.popitem(last=False)
        return batch

    def recover(self, log: str, generation: int, start: int, by: str) -> GenerationScan:
        """Every batch generation ``generation`` wrote from ``start``, once it can write no more.

        Reads from ``start``; if no later generation has fenced the log yet
        (or a fence is not plugged down to here), fences it (as ``by``) and
        reads on to the fence. The result is final: the generation can never
        add a batch to it. A batch of the generation found past the end (it
        wrote past a slot that is now plugged, so an object went missing) is
        ``CorruptObject``, never a silently shorter history.
        """
        scan = GenerationScan(generation, start)
        for batch in self.read(log, start):
            if scan.feed(batch):
                return scan
        # list from the last object we read (if any): ``after`` must name an object that exists
        fence = self.fence(log, by, after=scan.next_seq - 1 if scan.next_seq > start else -1)
        for batch in self.read(log, scan.next_seq):
            if scan.feed(batch):
                break
        else:
            raise CorruptObject(f"log {log}: fenced, but the fence is not in the log past seq {scan.next_seq}")
        assert scan.end is not None
        for seq in range(scan.end + 1, fence.seq):
            later = self._batch(log, seq)
            if later.epoch == generation and not later.fence:
                raise CorruptObject(f"log {log}: generation {generation} has seq {seq} past a missing seq")
        return scan

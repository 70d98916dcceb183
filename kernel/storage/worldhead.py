"""Acquire, checkpoint and release worlds: the I/O shell around ``ownership.py``.

How it works, step by step (see docs/storage.md for the crash cases):

- **acquire**: read the world's head (and its ETag). If it names an owner,
  that owner's log generation is recovered first: fenced if nobody has yet,
  then read to the fence, and the world's records past ``flushed`` are
  written to a segment. Then the head is replaced, ``If-Match`` the ETag
  read, by one naming this host, epoch + 1, and a tail in this host's log
  starting at its next seq. Losing that race means someone else changed the
  head: start over from the new one.
- **append**: journal ops of several worlds go to the log as one batch per
  turn (``commit_turn``); nothing touches the heads.
- **checkpoint**: write the committed, unflushed records as a segment
  (``If-None-Match``), then move the head's ``flushed`` and tail start
  forward (``If-Match``). A lost race means the world was taken:
  ``OwnershipLost``.
- **release**: the same, and the new head has no owner, so the next acquirer
  needs no fence and no log.

A kernel's worlds have more than records: their *state ops* (registry entry,
inbox mail, accepted mail ids, kernel timers; ``classify.py``) travel the
same way, as op segments beside the record segments, counted by the head's
``ops``. ``space`` maps a universe to the key space its records use in the
log (a kernel's hosted worlds journal under ``U/worlds``); ``side`` pulls a
world's state ops out of recovered log batches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from aos.errors import Fenced, InvalidArgument, OwnershipLost, StorageUnavailable
from aos.kernel.store import Op
from aos.kernel.storage import codec
from aos.kernel.storage.codec import OpSegment, Segment
from aos.kernel.storage.contract import (
    CorruptObject,
    ObjectStore,
    PreconditionFailed,
    Snapshot,
    TailRef,
    WorldHead,
    WorldHistory,
)
from aos.kernel.storage.layout import (
    op_segment_key,
    op_segment_prefix,
    parse_seq,
    segment_key,
    segment_prefix,
    world_head_key,
)
from aos.kernel.storage.ownership import (
    Cut,
    Ownership,
    SideOps,
    State,
    acquired_head,
    assemble,
    checkpointed_head,
    released_head,
    tail_to_recover,
    world_tail,
)
from aos.kernel.storage.s3log import GenerationScan, LogWriter, ObjectLogs

MAX_HEAD_RACES = 100
SEGMENT_RECORDS = 4096  # records (or state ops) per segment object, so a cold read fetches bounded objects
SEGMENT_BYTES = 8 << 20
PARALLEL_READS = 8

Materialize = Callable[[WorldHead, list[bytes], list[Op]], None]
"""Called by ``acquire`` with the world's whole history (records, state ops) before its head names us."""


def _op_size(op: Op) -> int:
    return len(op.key) + len(op.value or b"") + len(op.family)


class WorldHeads:
    """World ownership for one host (its log writer ``log``), or read-only access with ``log=None``."""

    def __init__(self, objects: ObjectStore, logs: ObjectLogs | None = None, log: LogWriter | None = None, *,
                 space: Callable[[str], str] | None = None, side: SideOps | None = None,
                 address: str | None = None) -> None:
        self.objects = objects
        self.logs = logs if logs is not None else ObjectLogs(objects)
        self.log = log
        self.space = space if space is not None else (lambda universe: universe)
        self.side = side
        self.address = address  # what this host's heads advertise (set once it listens)
        self._owned: dict[tuple[str, str], Ownership] = {}
        self._lock = threading.RLock()

    # --- reading ------------------------------------------------------------------------------

    def head(self, universe: str, world: str) -> WorldHead | None:
        return self._read_head(universe, world)[0]

    def _read_head(self, universe: str, world: str) -> tuple[WorldHead | None, str | None]:
        stored = self.objects.get(world_head_key(universe, world))
        if stored is None:
            return None, None
        return codec.decode_world_head(stored.data, universe, world), stored.etag

    def history(self, universe: str, world: str, from_seq: int = 0) -> WorldHistory:
        """The world's records from ``from_seq``: segments, then the owner's log tail (read, never fenced).

        Touches only this world's objects and the one log generation its head
        names; an owner that is alive may append more after this returns.
        """
        head = self.head(universe, world)
        if head is None:
            return WorldHistory(None, from_seq, ())
        records = self._segments(universe, world, from_seq, head.flushed) if from_seq < head.flushed else []
        if head.tail is not None:
            scan = GenerationScan(head.tail.log_epoch, head.tail.start)
            for batch in self.logs.read(head.tail.log, head.tail.start):
                if scan.feed(batch):
                    break
            tail = world_tail(scan.batches, self.space(universe), world, head.flushed)
            records.extend(tail[max(0, from_seq - head.flushed) :])
        return WorldHistory(head, from_seq, tuple(records))

    def _segments(self, universe: str, world: str, start: int, stop: int) -> list[bytes]:
        return self._read_segments(universe, world, start, stop, ops=False)

    def state_ops(self, universe: str, world: str, stop: int) -> list[Op]:
        """The world's state ops ``[0, stop)`` from its op segments."""
        return self._read_segments(universe, world, 0, stop, ops=True) if stop > 0 else []

    def _read_segments(self, universe: str, world: str, start: int, stop: int, *, ops: bool) -> list:  # type: ignore[type-arg]
        prefix = op_segment_prefix(universe, world) if ops else segment_prefix(universe, world)
        firsts = sorted(
            seq for key in self.objects.list(prefix)
            if (seq := parse_seq(key.rsplit("/", 1)[-1])) is not None and seq < stop
        )
        # start at the last segment that begins at or before ``start``
        useful = [f for f in firsts if f <= start][-1:] + [f for f in firsts if f > start]

        def fetch(first: int) -> Segment | OpSegment:
            key = op_segment_key(universe, world, first) if ops else segment_key(universe, world, first)
            stored = self.objects.get(key)
            if stored is None:
                raise CorruptObject(f"world {world}: segment {first} was listed but cannot be read")
            if ops:
                return codec.decode_op_segment(stored.data, universe, world, first)
            return codec.decode_segment(stored.data, universe, world, first)

        if len(useful) > 1:  # a world read whole (an acquire) has many: fetch them side by side
            with ThreadPoolExecutor(max_workers=min(PARALLEL_READS, len(useful)), thread_name_prefix="aos-seg") as pool:
                segments = list(pool.map(fetch, useful))
        else:
            segments = [fetch(first) for first in useful]
        return assemble(segments, start, stop)  # type: ignore[arg-type]

    # --- owning ---------------------------------------------------------------------------------

    def _writer(self) -> LogWriter:
        if self.log is None:
            raise OwnershipLost("this storage handle is read-only: it has no log to write worlds through")
        return self.log

    def owned(self, universe: str, world: str) -> Ownership | None:
        own = self._owned.get((universe, world))
        return own if own is not None and own.state is State.OWNED else None

    def acquire(self, universe: str, world: str, *, create: bool = False, takeover: bool = True,
                materialize: Materialize | None = None) -> Ownership:
        """Make this host the world's only writer (fencing and recovering the previous owner if needed).

        ``create``: the world must be new (``InvalidArgument`` if any kernel
        ever wrote its head). ``takeover=False``: only a released (or new)
        world, or one this host's own earlier generation held; one another
        host holds is ``OwnershipLost``, also when it was taken while we
        tried. ``materialize`` receives the world's whole history before the
        head names this host, so a host that dies right after the head update
        already has what it acquired.
        """
        log = self._writer()
        with self._lock:
            own = self.owned(universe, world)
            if own is not None:
                if create:
                    raise InvalidArgument(f"world id {world!r} is taken")
                return own
            if log.fenced:
                raise Fenced(f"log {log.log} generation {log.epoch} is fenced; reopen it before acquiring worlds")
            for _ in range(MAX_HEAD_RACES):
                old, etag = self._read_head(universe, world)
                if create and old is not None:
                    holder = f"held by {old.owner}" if old.owner else "released"
                    raise InvalidArgument(f"world id {world!r} is taken in universe {universe} ({holder})")
                if not takeover and old is not None and old.owner is not None and old.owner != log.writer:
                    raise OwnershipLost(f"world {world} is held by {old.owner} (epoch {old.epoch})")
                flushed = old.flushed if old is not None else 0
                ops = old.ops if old is not None else 0
                earlier: list[Op] | None = None
                recovered: list[bytes] = []
                recovered_ops: list[Op] = []
                tail = tail_to_recover(old, log.log, log.epoch)
                if tail is not None:
                    assert old is not None
                    scan = self.logs.recover(tail.log, tail.log_epoch, tail.start, by=log.writer)
                    recovered = world_tail(scan.batches, self.space(universe), world, flushed)
                    if self.side is not None:
                        earlier = self.state_ops(universe, world, ops)
                        recovered_ops = self.side(scan.batches, universe, world, earlier)
                    self._write_segments(universe, world, flushed, recovered, old.epoch + 1)
                    self._write_op_segments(universe, world, ops, recovered_ops, old.epoch + 1)
                new = acquired_head(old, universe, world, log.writer, flushed + len(recovered),
                                    TailRef(log.log, log.epoch, log.next_seq), ops + len(recovered_ops), self.address)
                if materialize is not None:
                    history = self._segments(universe, world, 0, flushed) + recovered if flushed else recovered
                    state = (earlier if earlier is not None else self.state_ops(universe, world, ops)) + recovered_ops
                    materialize(new, history, state)
                try:
                    new_etag = self._put_head(new, etag)
                except PreconditionFailed:
                    continue  # the head moved while we recovered: decide again from the new one
                own = Ownership.start(new, new_etag)
                self._owned[(universe, world)] = own
                return own
            raise OwnershipLost(f"world {world}: its head kept changing; gave up acquiring it")

    def commit_turn(self, appends: Mapping[Ownership, list[bytes]]) -> int:
        """Append several worlds' records as one log object (one group-commit turn); return its log seq.

        Returns once the turn is in the store, so it may be acknowledged. On
        ``Fenced`` every world this host owns is lost: its log generation is
        over, and whoever acquires them next recovers what it committed.
        """
        log = self._writer()
        with self._lock:
            for own in appends:
                own.check()  # before reserving anything, so a refusal leaves no half-prepared turn
            ops = []
            firsts = {}
            for own, records in appends.items():
                first, world_ops = own.prepare(records, log.next_seq)
                firsts[own] = first
                ops.extend(world_ops)
            try:
                seq = log.append(ops)
            except (Fenced, StorageUnavailable) as exc:
                # the generation is over (or its last append's fate unknown): nothing more may be
                # acknowledged through it, for any world; the next owner recovers what it holds
                for own in self._owned.values():
                    own.lose(str(exc))
                raise
            for own, records in appends.items():
                own.committed_at(firsts[own], records)
            return seq

    def checkpoint(self, own: Ownership, snapshot: Snapshot | None = None) -> WorldHead:
        """Flush the world's committed records to a segment and move its head past them."""
        log = self._writer()
        with self._lock:
            return self.flush(own, own.cut(log.next_seq), snapshot=snapshot)

    def release(self, own: Ownership, snapshot: Snapshot | None = None) -> WorldHead:
        """Flush everything and leave the world without an owner; the next acquirer needs no fence."""
        with self._lock:
            if own.pending:
                raise OwnershipLost(f"world {own.world}: appends are still in flight; drain them before releasing")
            return self.flush(own, own.cut(0), release=True, snapshot=snapshot)

    def flush(self, own: Ownership, cut: Cut, *, release: bool = False, snapshot: Snapshot | None = None,
              lock: threading.Lock | threading.RLock | None = None) -> WorldHead:
        """Write ``cut`` to the world's segments, then its head (checkpointed, or released).

        Holds no lock while it writes, only (``lock``, else this object's)
        while it updates ``own``: a kernel calls it with a cut it made between
        two turns, runs one flush per world at a time, and keeps committing
        other turns meanwhile.
        """
        own.check()
        assert own.head.tail is not None
        if not release and cut.empty and snapshot is None and cut.tail_start == own.head.tail.start:
            return own.head  # nothing to move: an idle world's checkpoint costs no request
        self._write_segments(own.universe, own.world, cut.first, list(cut.records), own.epoch)
        self._write_op_segments(own.universe, own.world, cut.ops_first, list(cut.ops), own.epoch)
        flushed, ops = cut.first + len(cut.records), cut.ops_first + len(cut.ops)
        if release:
            head = released_head(own.head, flushed, snapshot, ops)
        else:
            head = checkpointed_head(own.head, flushed, cut.tail_start, snapshot, ops)
        etag = self._swap_head(own, head)
        with lock if lock is not None else self._lock:
            own.flushed(head, etag, cut)
        if release:
            with self._lock:
                self._owned.pop((own.universe, own.world), None)
        return head

    def forget(self, universe: str, world: str) -> None:
        """Stop tracking a world this host no longer owns."""
        with self._lock:
            self._owned.pop((universe, world), None)

    # --- writing objects ------------------------------------------------------------------------

    def _put_head(self, head: WorldHead, etag: str | None) -> str:
        key = world_head_key(head.universe, head.world)
        data = codec.encode_world_head(head)
        try:
            return self.objects.put(key, data, if_none_match=etag is None, if_match=etag)
        except PreconditionFailed:
            current = self.objects.get(key)
            if current is not None and current.data == data:
                return current.etag  # our own retried request landed
            raise

    def _swap_head(self, own: Ownership, head: WorldHead) -> str:
        try:
            return self._put_head(head, own.etag)
        except PreconditionFailed:
            now = self.head(own.universe, own.world)
            who = "nobody" if now is None or now.owner is None else f"{now.owner} (epoch {now.epoch})"
            own.lose(f"its head now names {who}")
            raise OwnershipLost(f"world {own.world} is owned by {who}, not by this kernel") from None

    def _write_segments(self, universe: str, world: str, first: int, records: list[bytes], epoch: int) -> None:
        """Store records ``[first, first + len)`` as segments; existing ones covering them must agree."""
        self._write_chunks(universe, world, first, records, epoch, ops=False)

    def _write_op_segments(self, universe: str, world: str, first: int, ops: list[Op], epoch: int) -> None:
        """Store state ops ``[first, first + len)`` as op segments; existing ones covering them must agree."""
        self._write_chunks(universe, world, first, ops, epoch, ops=True)

    def _write_chunks(self, universe: str, world: str, first: int, items: Sequence[bytes] | Sequence[Op],
                      epoch: int, *, ops: bool) -> None:
        writer = self.log.writer if self.log is not None else "reader"
        size_of: Callable[[object], int] = _op_size if ops else len  # type: ignore[assignment]
        pos, end = first, first + len(items)
        while pos < end:
            chunk: list[object] = []
            size = 0
            for item in items[pos - first :]:
                if chunk and (len(chunk) >= SEGMENT_RECORDS or size + size_of(item) > SEGMENT_BYTES):
                    break
                chunk.append(item)
                size += size_of(item)
            if ops:
                key = op_segment_key(universe, world, pos)
                data = codec.encode_op_segment(OpSegment(universe, world, pos, tuple(chunk), writer, epoch))  # type: ignore[arg-type]
            else:
                key = segment_key(universe, world, pos)
                data = codec.encode_segment(Segment(universe, world, pos, tuple(chunk), writer, epoch))  # type: ignore[arg-type]
            try:
                self.objects.put(key, data, if_none_match=True)
                pos += len(chunk)
                continue
            except PreconditionFailed:
                pass
            # a crashed or zombie flush of the same records got here first: reuse it if it agrees
            stored = self.objects.get(key)
            if stored is None:
                raise CorruptObject(f"world {world}: segment {pos} refused our write but holds nothing")
            existing: Segment | OpSegment = (
                codec.decode_op_segment(stored.data, universe, world, pos) if ops
                else codec.decode_segment(stored.data, universe, world, pos)
            )
            if existing.end <= pos:
                raise CorruptObject(f"world {world}: segment {pos} is empty")
            overlap = min(existing.end, end) - pos
            held = existing.ops if isinstance(existing, OpSegment) else existing.records
            if list(held[:overlap]) != list(items[pos - first : pos - first + overlap]):
                raise CorruptObject(f"world {world}: segment {pos} holds other records than the log")
            pos = existing.end

"""World ownership as decisions without I/O: what a head becomes, which tail to
recover, how a world's records come out of log batches and segments.

How it works: a world's head says who owns it (``owner``, ``epoch``), which
records are already in its own segments (``[0, flushed)``) and where the rest
is (``tail``: a log, one generation of it, and a seq to start reading at).
The owner's ``Ownership`` tracks, between head updates, which seqs it
reserved, which are in the log, and which of those are not yet flushed, so a
checkpoint knows what to write and from which log seq a recoverer must read.
``worldhead.py`` is the shell that reads and writes the objects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from aos.errors import InvalidArgument, OwnershipLost
from aos.kernel.store import Op
from aos.kernel.storage.codec import OpSegment, Segment
from aos.kernel.storage.contract import CorruptObject, LogBatch, Snapshot, TailRef, WorldHead
from aos.kernel.storage.layout import journal_op, world_records

# --- heads ------------------------------------------------------------------------------------


def tail_to_recover(head: WorldHead | None, log: str, generation: int) -> TailRef | None:
    """The tail an acquirer (writing log ``log`` at ``generation``) must recover first, if any.

    A released or new world has none: its segments are its whole history. An
    owned one (by another host, or by an earlier generation of this one) has
    its records past ``flushed`` in that owner's log, which must be fenced and
    read before anyone else may write the world.
    """
    if head is None or head.owner is None or head.tail is None:
        return None
    if head.tail.log == log and head.tail.log_epoch == generation:
        raise InvalidArgument(f"world {head.world} is already owned by this log generation")
    return head.tail


def acquired_head(old: WorldHead | None, universe: str, world: str, owner: str, flushed: int, tail: TailRef,
                  ops: int | None = None, address: str | None = None) -> WorldHead:
    """The head that makes ``owner`` the world's writer: one epoch past the old head."""
    epoch = (old.epoch if old is not None else 0) + 1
    ops = ops if ops is not None else old.ops if old is not None else 0
    return WorldHead(universe, world, owner, epoch, flushed, tail, old.snapshot if old is not None else None, ops,
                     address)


def checkpointed_head(head: WorldHead, flushed: int, tail_start: int, snapshot: Snapshot | None,
                      ops: int | None = None) -> WorldHead:
    assert head.tail is not None
    return replace(head, flushed=flushed, tail=replace(head.tail, start=tail_start), snapshot=snapshot or head.snapshot,
                   ops=head.ops if ops is None else ops)


def released_head(head: WorldHead, flushed: int, snapshot: Snapshot | None, ops: int | None = None) -> WorldHead:
    return replace(head, owner=None, flushed=flushed, tail=None, snapshot=snapshot or head.snapshot,
                   ops=head.ops if ops is None else ops, address=None)


# --- records out of logs and segments ----------------------------------------------------------


def world_tail(batches: list[LogBatch], universe: str, world: str, flushed: int) -> list[bytes]:
    """The world's records from seq ``flushed`` on, out of one generation's batches in log order.

    Records below ``flushed`` are already in segments and are skipped (a tail
    may start a little early); a record past the next expected seq means the
    log lost one, and a second, different record for a seq means two writers:
    both are ``CorruptObject``, never silently accepted.
    """
    records: list[bytes] = []
    for batch in batches:
        for seq, record in world_records(batch.ops, universe, world):
            expected = flushed + len(records)
            if seq == expected:
                records.append(record)
            elif seq < flushed:
                continue
            elif seq < expected:
                if records[seq - flushed] != record:
                    raise CorruptObject(f"world {world}: two different records for seq {seq} in log {batch.log}")
            else:
                raise CorruptObject(f"world {world}: log {batch.log} seq {batch.seq} has record {seq}, expected {expected}")
    return records


def assemble(segments: Sequence[Segment] | Sequence[OpSegment], start: int, stop: int) -> list[Any]:
    """Records (or state ops) ``[start, stop)`` out of segments sorted by first seq, the first one starting
    at or before ``start``.

    Segments may overlap (a crashed flush and its redo cover the same seqs);
    overlapping records must agree. Segments past ``stop`` are a flush whose
    head update never happened; their records are still in the tail, so they
    are ignored here.
    """
    out: list[Any] = []
    pos = start  # every record in [start, pos) is in ``out``
    for segment in segments:
        if pos >= stop:
            break
        if segment.first > pos:
            raise CorruptObject(f"world {segment.world}: no segment holds record {pos}")
        items: Sequence[Any] = segment.records if isinstance(segment, Segment) else segment.ops
        for seq in range(max(start, segment.first), min(segment.end, stop)):
            record = items[seq - segment.first]
            if seq < pos:
                if out[seq - start] != record:
                    raise CorruptObject(f"world {segment.world}: segments disagree about record {seq}")
            else:
                out.append(record)
        pos = max(pos, min(segment.end, stop))
    if pos < stop:
        raise CorruptObject(f"the segments end at record {pos}, but the head says {stop} are flushed")
    return out


# --- the owner's state -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cut:
    """What one checkpoint or release moves to the world's segments, fixed at one point of the log.

    Records ``[first, first + len(records))`` and state ops ``[ops_first,
    ops_first + len(ops))`` were committed before log seq ``tail_start``;
    everything the world commits later lands at or after it.
    """

    first: int
    records: tuple[bytes, ...]
    ops_first: int
    ops: tuple[Op, ...]
    tail_start: int

    @property
    def empty(self) -> bool:
        return not self.records and not self.ops


class State(Enum):
    OWNED = "owned"
    RELEASED = "released"
    LOST = "lost"


@dataclass(eq=False)  # identity: one object per owned world, usable as a dict key
class Ownership:
    """One world, owned by this host: seqs reserved, committed to the log, flushed to segments.

    Not thread-safe: one thread (the kernel's commit thread) drives it.

    Records ``[head.flushed, committed)`` are in the log and in ``unflushed``;
    ``[committed, next_seq)`` are reserved by appends still in flight, each
    with the log's next seq when it was prepared (a lower bound of where it
    will land, which is what a checkpoint's tail must start at or before).
    ``side`` holds the world's state ops committed since ``head.ops``.

    A kernel reserves journal seqs itself (``JournalStore``) and tells the
    owner what each turn committed (``observe``) instead of ``prepare``.
    """

    head: WorldHead
    etag: str
    next_seq: int
    committed: int
    unflushed: list[bytes] = field(default_factory=list)
    pending: dict[int, tuple[int, int]] = field(default_factory=dict)  # first seq -> (count, log floor)
    side: list[Op] = field(default_factory=list)
    unflushed_bytes: int = 0
    state: State = State.OWNED
    reason: str = ""

    @classmethod
    def start(cls, head: WorldHead, etag: str) -> Ownership:
        return cls(head, etag, head.flushed, head.flushed)

    @property
    def universe(self) -> str:
        return self.head.universe

    @property
    def world(self) -> str:
        return self.head.world

    @property
    def epoch(self) -> int:
        return self.head.epoch

    def check(self) -> None:
        """Raise ``OwnershipLost`` unless this host still owns the world as far as it knows."""
        if self.state is State.RELEASED:
            raise OwnershipLost(f"world {self.world} was released by this kernel; {self.reason}")
        if self.state is State.LOST:
            raise OwnershipLost(f"world {self.world} is no longer owned by this kernel: {self.reason}")

    def prepare(self, records: list[bytes], log_floor: int) -> tuple[int, list[Op]]:
        """Reserve seqs for ``records`` now; return the first seq and the journal ops for the log."""
        self.check()
        if not records:
            raise InvalidArgument("append needs at least one record")
        first = self.next_seq
        self.next_seq += len(records)
        self.pending[first] = (len(records), log_floor)
        return first, [journal_op(self.universe, self.world, first + i, r) for i, r in enumerate(records)]

    def committed_at(self, first: int, records: list[bytes]) -> None:
        """The append reserved at ``first`` is in the log (turns complete in order)."""
        if first != self.committed:
            raise InvalidArgument(f"world {self.world}: append {first} completed before {self.committed}")
        del self.pending[first]
        self.committed += len(records)
        self.unflushed.extend(records)

    def observe(self, first: int, records: Sequence[bytes], side: Sequence[Op]) -> None:
        """A turn in the log committed ``records`` (journal seqs from ``first``) and ``side`` state ops."""
        if records:
            if first != self.committed:
                raise CorruptObject(f"world {self.world}: the log holds record {first}, expected {self.committed}")
            self.committed += len(records)
            self.next_seq = max(self.next_seq, self.committed)
            self.unflushed.extend(records)
            self.unflushed_bytes += sum(map(len, records))
        if side:
            self.side.extend(side)
            self.unflushed_bytes += sum(len(op.key) + len(op.value or b"") for op in side)

    def lose(self, reason: str) -> None:
        self.state, self.reason = State.LOST, reason

    def cut(self, log_next: int) -> Cut:
        """What a checkpoint now moves, with the log's next seq ``log_next``.

        Everything committed is flushed; the tail then starts at the lowest
        log seq an in-flight append may land at, or the log's end.
        """
        self.check()
        floors = [floor for _, floor in self.pending.values()]
        return Cut(self.head.flushed, tuple(self.unflushed), self.head.ops, tuple(self.side), min(floors + [log_next]))

    def flushed(self, head: WorldHead, etag: str, cut: Cut) -> None:
        """A checkpoint or release wrote ``head``: ``cut`` moved from the log to segments."""
        self.head, self.etag = head, etag
        del self.unflushed[: len(cut.records)]
        del self.side[: len(cut.ops)]
        self.unflushed_bytes = sum(map(len, self.unflushed)) + sum(len(op.key) + len(op.value or b"") for op in self.side)
        if head.owner is None:
            self.state, self.reason = State.RELEASED, "acquire it again to write"


SideOps = Callable[[Sequence[LogBatch], str, str, Sequence[Op]], list[Op]]
"""Extracts one world's state ops from recovered log batches, given its earlier state ops."""

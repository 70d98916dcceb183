"""The storage protocol's decisions without any I/O: which tail an acquirer
must recover, how a world's records come out of log batches and segments,
what a checkpoint flushes, how a taken log slot is judged, and the codecs
(round trips as properties, refusals of objects under the wrong key).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aos.errors import InvalidArgument, OwnershipLost
from aos.kernel.store import Op
from aos.kernel.storage import CorruptObject, LogBatch, Snapshot, TailRef, WorldHead, codec
from aos.kernel.storage.codec import Segment
from aos.kernel.storage.layout import journal_op, world_records
from aos.kernel.storage.ownership import Ownership, State, assemble, tail_to_recover, world_tail
from aos.kernel.storage.s3log import GenerationScan, Slot, classify_slot


def head(owner: str | None = "a", tail: TailRef | None = TailRef("a", 1, 5), flushed: int = 0) -> WorldHead:
    return WorldHead("u", "w", owner, 3, flushed, tail)


def batch(seq: int, records: dict[int, bytes], epoch: int = 1, fence: bool = False, world: str = "w") -> LogBatch:
    ops = tuple(journal_op("u", world, s, r) for s, r in records.items())
    return LogBatch("a", seq, epoch, "a", ops, fence)


def seg(first: int, records: list[bytes]) -> Segment:
    return Segment("u", "w", first, tuple(records), "a", 1)


# --- acquiring ----------------------------------------------------------------------------------


def test_new_and_released_worlds_need_no_recovery() -> None:
    """A world without a head, or released, has no tail to recover."""
    assert tail_to_recover(None, "b", 1) is None
    assert tail_to_recover(head(owner=None, tail=None), "b", 1) is None


def test_an_owned_world_names_the_tail_to_recover() -> None:
    """An owned world's tail must be recovered, also when it is this host's own earlier generation."""
    assert tail_to_recover(head(), "b", 1) == TailRef("a", 1, 5)
    assert tail_to_recover(head(), "a", 2) == TailRef("a", 1, 5)


def test_acquiring_from_the_same_generation_is_refused() -> None:
    """The generation that owns the world cannot recover (and so fence) itself."""
    with pytest.raises(InvalidArgument):
        tail_to_recover(head(), "a", 1)


# --- records out of the log -------------------------------------------------------------------


def test_world_tail_picks_one_world_in_order() -> None:
    """Only the world's own records are taken, from its flushed seq on, across batches."""
    batches = [
        batch(5, {2: b"old", 3: b"c"}),
        LogBatch("a", 6, 1, "a", (journal_op("u", "w2", 4, b"other"), journal_op("u", "w", 4, b"d"))),
        batch(7, {5: b"e"}),
    ]
    assert world_tail(batches, "u", "w", 3) == [b"c", b"d", b"e"]


def test_world_tail_refuses_a_gap() -> None:
    """A missing seq in the tail is CorruptObject, not a shorter history."""
    with pytest.raises(CorruptObject):
        world_tail([batch(5, {3: b"c"}), batch(6, {5: b"e"})], "u", "w", 3)


def test_world_tail_refuses_two_records_for_one_seq() -> None:
    """Two different records for one seq (a double write) are CorruptObject."""
    with pytest.raises(CorruptObject):
        world_tail([batch(5, {3: b"c"}), batch(6, {3: b"x"})], "u", "w", 3)


def test_world_records_ignore_lookalike_keys() -> None:
    """Ops of other families or of a world whose name extends this one are not this world's records."""
    ops = [
        journal_op("u", "w", 1, b"mine"),
        journal_op("u", "ww", 1, b"longer name"),
        Op("heads", journal_op("u", "w", 2, b"x").key, b"head"),
        Op("journal", journal_op("u", "w", 3, b"x").key, None),
    ]
    assert world_records(ops, "u", "w") == [(1, b"mine")]


def test_generation_scan_stops_at_a_later_fence() -> None:
    """A scan keeps its generation's batches, skips older ones and fences, and ends at a newer fence."""
    scan = GenerationScan(2, 10)
    assert not scan.feed(batch(10, {0: b"older gen"}, epoch=1))
    assert not scan.feed(batch(11, {}, epoch=2, fence=True))
    assert not scan.feed(batch(12, {0: b"mine"}, epoch=2))
    assert scan.feed(batch(13, {}, epoch=3, fence=True))
    assert [b.seq for b in scan.batches] == [12] and scan.end == 13
    with pytest.raises(CorruptObject):
        GenerationScan(2, 10).feed(batch(11, {}))


def test_a_taken_slot_is_judged_by_its_bytes_and_epoch() -> None:
    """Own bytes are success, an older generation's object is passed over, anything else is a fence."""
    mine = codec.encode_batch(batch(4, {0: b"x"}, epoch=2))
    assert classify_slot(mine, mine, batch(4, {0: b"x"}, epoch=2), 2) is Slot.OWN
    older = batch(4, {0: b"y"}, epoch=1)
    assert classify_slot(mine, codec.encode_batch(older), older, 2) is Slot.OLDER
    newer = batch(4, {}, epoch=3, fence=True)
    assert classify_slot(mine, codec.encode_batch(newer), newer, 2) is Slot.NEWER


# --- segments ---------------------------------------------------------------------------------


def test_assemble_reads_across_overlapping_segments() -> None:
    """Overlapping segments that agree give one contiguous history; stray segments past the head are ignored."""
    segments = [seg(0, [b"0", b"1", b"2"]), seg(2, [b"2", b"3"]), seg(4, [b"4", b"5"]), seg(9, [b"9"])]
    assert assemble(segments, 0, 6) == [b"0", b"1", b"2", b"3", b"4", b"5"]
    assert assemble(segments[1:], 3, 5) == [b"3", b"4"]


def test_assemble_refuses_disagreement_and_gaps() -> None:
    """Segments that disagree, or leave a hole before the flushed seq, are CorruptObject."""
    with pytest.raises(CorruptObject):
        assemble([seg(0, [b"0", b"1"]), seg(1, [b"X", b"2"])], 0, 3)
    with pytest.raises(CorruptObject):
        assemble([seg(0, [b"0"]), seg(2, [b"2"])], 0, 3)
    with pytest.raises(CorruptObject):
        assemble([seg(0, [b"0"])], 0, 2)


# --- the owner's state ------------------------------------------------------------------------


def test_checkpoint_tail_starts_at_or_before_in_flight_appends() -> None:
    """A checkpoint flushes what is committed, and its tail starts no later than any append still in flight."""
    own = Ownership.start(head(flushed=2), "etag")
    first, ops = own.prepare([b"a", b"b"], log_floor=10)
    assert first == 2 and [op.value for op in ops] == [b"a", b"b"]
    own.committed_at(first, [b"a", b"b"])
    own.prepare([b"c"], log_floor=12)
    cut = own.cut(log_next=13)
    assert (cut.first, cut.records, cut.tail_start) == (2, (b"a", b"b"), 12)
    own.committed_at(4, [b"c"])
    cut = own.cut(log_next=13)
    assert (cut.first, cut.records, cut.tail_start) == (2, (b"a", b"b", b"c"), 13)


def test_appends_must_complete_in_order() -> None:
    """Completing a later append before an earlier one is refused (turns are FIFO)."""
    own = Ownership.start(head(), "etag")
    own.prepare([b"a"], 1)
    second, _ = own.prepare([b"b"], 1)
    with pytest.raises(InvalidArgument):
        own.committed_at(second, [b"b"])


def test_a_released_or_lost_world_refuses_appends() -> None:
    """After release, or once ownership is lost, prepare raises OwnershipLost."""
    own = Ownership.start(head(), "etag")
    own.flushed(head(owner=None, tail=None), "etag2", own.cut(0))
    assert own.state is State.RELEASED
    with pytest.raises(OwnershipLost):
        own.prepare([b"x"], 1)
    lost = Ownership.start(head(), "etag")
    lost.lose("taken by b")
    with pytest.raises(OwnershipLost, match="taken by b"):
        lost.prepare([b"x"], 1)


# --- codecs -----------------------------------------------------------------------------------

names = st.text(alphabet="abcxyz019._:-", min_size=1, max_size=12)
ops_strategy = st.lists(
    st.builds(Op, st.sampled_from(["journal", "heads", "cas", "mail"]), st.binary(max_size=40),
              st.one_of(st.none(), st.binary(max_size=200))),
    max_size=20,
)


@given(seq=st.integers(0, 2**63), epoch=st.integers(0, 2**32), writer=names, ops=ops_strategy, fence=st.booleans())
def test_log_batches_round_trip(seq: int, epoch: int, writer: str, ops: list[Op], fence: bool) -> None:
    """Any batch encodes deterministically and decodes to itself under its own key."""
    original = LogBatch("log-1", seq, epoch, writer, tuple(ops), fence)
    data = codec.encode_batch(original)
    assert codec.encode_batch(original) == data
    assert codec.decode_batch(data, "log-1", seq) == original


@given(owner=st.one_of(st.none(), names), epoch=st.integers(0, 2**40), flushed=st.integers(0, 2**40),
       tail=st.one_of(st.none(), st.builds(TailRef, names, st.integers(0, 99), st.integers(0, 2**40))),
       snapshot=st.one_of(st.none(), st.builds(Snapshot, st.just("sha256:" + "1" * 64), st.integers(0, 99))))
def test_world_heads_round_trip(owner: str | None, epoch: int, flushed: int, tail: TailRef | None,
                                snapshot: Snapshot | None) -> None:
    """Any world head encodes to JSON and decodes to itself under its own world."""
    original = WorldHead("u", "w", owner, epoch, flushed, tail, snapshot)
    assert codec.decode_world_head(codec.encode_world_head(original), "u", "w") == original


def test_objects_under_the_wrong_key_are_refused() -> None:
    """A batch, head or segment read under another key than its own is CorruptObject."""
    data = codec.encode_batch(LogBatch("a", 1, 1, "a"))
    with pytest.raises(CorruptObject):
        codec.decode_batch(data, "a", 2)
    with pytest.raises(CorruptObject):
        codec.decode_batch(data, "b", 1)
    with pytest.raises(CorruptObject):
        codec.decode_world_head(codec.encode_world_head(head()), "u", "other")
    with pytest.raises(CorruptObject):
        codec.decode_segment(codec.encode_segment(seg(0, [b"x"])), "u", "w", 1)
    for garbage in (b"", b"{}", b"\xd9\xd9\xf7\xa0", b'{"v":1}', b"\xff" * 10):
        with pytest.raises(CorruptObject):
            codec.decode_batch(garbage, "a", 1)
        with pytest.raises(CorruptObject):
            codec.decode_world_head(garbage, "u", "w")

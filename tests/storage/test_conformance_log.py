"""The fenced write-ahead log, on moto S3 and on the local directory backend:
contiguous appends, generations that fence each other, takeover fences,
recovery of a generation's final batches, and refusal of gaps and garbage.
"""

from __future__ import annotations

import threading

import pytest

from aos.errors import Fenced
from aos.kernel.storage import CorruptObject, LogBatch, ObjectLogs
from aos.kernel.storage import codec
from aos.kernel.storage.layout import journal_op, log_key
from aos.kernel.storage.testing import Backend


def ops(n: int, tag: str = "r") -> list:
    return [journal_op("u", "w", n, f"{tag}{n}".encode())]


def test_appends_are_contiguous_after_the_opening_fence(backend: Backend) -> None:
    """A new log starts with a fence at seq 0; appends take seqs 1, 2, ... and read back intact."""
    logs = ObjectLogs(backend.open())
    writer = logs.open("host-a", "host-a")
    assert [writer.append(ops(i)) for i in range(3)] == [1, 2, 3]
    batches = list(ObjectLogs(backend.open()).read("host-a"))
    assert [b.seq for b in batches] == [0, 1, 2, 3]
    assert batches[0].fence and batches[0].epoch == 1
    assert [b.ops for b in batches[1:]] == [tuple(ops(i)) for i in range(3)]
    assert all(b.epoch == 1 and b.writer == "host-a" and not b.fence for b in batches[1:])


def test_a_new_generation_fences_the_old_writer(backend: Backend) -> None:
    """Reopening a log fences the previous generation: its appends raise Fenced forever, the new one continues."""
    old = ObjectLogs(backend.open()).open("host-a", "host-a")
    old.append(ops(0))
    new = ObjectLogs(backend.open()).open("host-a", "host-a")
    assert new.epoch == old.epoch + 1
    with pytest.raises(Fenced):
        old.append(ops(1, "zombie"))
    with pytest.raises(Fenced):
        old.append(ops(2, "zombie"))
    assert new.append(ops(1)) == 3
    batches = list(ObjectLogs(backend.open()).read("host-a"))
    assert [(b.seq, b.epoch, b.fence) for b in batches] == [(0, 1, True), (1, 1, False), (2, 2, True), (3, 2, False)]
    assert not any(op.value and op.value.startswith(b"zombie") for b in batches for op in b.ops)


def test_takeover_fence_stops_the_writer(backend: Backend) -> None:
    """``fence`` by another host ends the generation without taking the log over; the writer is refused."""
    logs = ObjectLogs(backend.open())
    writer = logs.open("host-a", "host-a")
    writer.append(ops(0))
    result = ObjectLogs(backend.open()).fence("host-a", by="host-b")
    assert result.seq == 2 and result.epoch == 2
    with pytest.raises(Fenced):
        writer.append(ops(1))
    head = logs.head("host-a")
    assert head is not None and head.epoch == 2 and head.owner is None and head.fence_seq == 2
    fence = list(logs.read("host-a", 2))
    assert [(b.seq, b.fence, b.writer) for b in fence] == [(2, True, "host-b")]


def test_recover_returns_the_final_batches_of_a_generation(backend: Backend) -> None:
    """Recovery fences a live generation once and returns exactly its batches; recovering again adds no fence."""
    writer = ObjectLogs(backend.open()).open("host-a", "host-a")
    for i in range(4):
        writer.append(ops(i))
    recoverer = ObjectLogs(backend.open())
    scan = recoverer.recover("host-a", writer.epoch, 2, by="host-b")
    assert [b.seq for b in scan.batches] == [2, 3, 4]
    assert scan.end == 5
    with pytest.raises(Fenced):
        writer.append(ops(4))
    again = ObjectLogs(backend.open()).recover("host-a", writer.epoch, 1, by="host-c")
    assert [b.seq for b in again.batches] == [1, 2, 3, 4] and again.end == 5
    fences = [b.seq for b in recoverer.read("host-a") if b.fence]
    assert fences == [0, 5]


def test_recover_after_a_restart_needs_no_fence(backend: Backend) -> None:
    """A generation ended by its host's own restart is recovered from the restart's fence, without a new one."""
    first = ObjectLogs(backend.open()).open("host-a", "host-a")
    first.append(ops(0))
    second = ObjectLogs(backend.open()).open("host-a", "host-a")
    second.append(ops(0, "second"))
    logs = ObjectLogs(backend.open())
    scan = logs.recover("host-a", first.epoch, 1, by="host-b")
    assert [b.seq for b in scan.batches] == [1] and scan.end == 2
    assert second.append(ops(1, "second")) == 4  # the restarted writer was not fenced by the recovery


def test_a_retried_append_that_landed_is_not_a_fence(backend: Backend) -> None:
    """If the slot already holds this writer's exact bytes (a retried PUT whose first attempt landed), append succeeds."""
    store = backend.open()
    writer = ObjectLogs(store).open("host-a", "host-a")
    seq = writer.next_seq
    batch = LogBatch("host-a", seq, writer.epoch, "host-a", tuple(ops(0)))
    store.put(log_key("host-a", seq), codec.encode_batch(batch), if_none_match=True)
    assert writer.append(ops(0)) == seq
    assert writer.append(ops(1)) == seq + 1


def test_garbage_in_the_next_slot_is_corrupt_not_data(backend: Backend) -> None:
    """A slot holding bytes that are not a log batch is reported as CorruptObject, never read as ops."""
    store = backend.open()
    writer = ObjectLogs(store).open("host-a", "host-a")
    store.put(log_key("host-a", writer.next_seq), b"not a batch", if_none_match=True)
    with pytest.raises(CorruptObject):
        writer.append(ops(0))
    with pytest.raises(CorruptObject):
        list(ObjectLogs(store).read("host-a"))


def test_a_batch_past_a_missing_seq_is_corrupt(backend: Backend) -> None:
    """A read stops at a missing seq, and recovery refuses a generation that has a batch past one (an object went missing)."""
    store = backend.open()
    writer = ObjectLogs(store).open("host-a", "host-a")
    writer.append(ops(0))
    stray = LogBatch("host-a", 3, writer.epoch, "host-a", tuple(ops(9)))
    store.put(log_key("host-a", 3), codec.encode_batch(stray), if_none_match=True)
    assert [b.seq for b in ObjectLogs(store).read("host-a")] == [0, 1]
    with pytest.raises(CorruptObject):
        ObjectLogs(backend.open()).recover("host-a", writer.epoch, 1, by="host-b")


def test_holes_left_by_a_dead_fencer_are_plugged(backend: Backend) -> None:
    """A fence that landed past empty slots (its fencer died before plugging them) is completed by the next fencer."""
    store = backend.open()
    writer = ObjectLogs(store).open("host-a", "host-a")
    writer.append(ops(0))
    dead = LogBatch("host-a", 5, writer.epoch + 1, "dead-fencer", (), fence=True)
    store.put(log_key("host-a", 5), codec.encode_batch(dead), if_none_match=True)
    assert writer.append(ops(1)) == 2  # the slots below the dead fencer's fence are still free
    scan = ObjectLogs(backend.open()).recover("host-a", writer.epoch, 1, by="host-b")
    assert [b.seq for b in scan.batches] == [1, 2]
    with pytest.raises(Fenced):
        writer.append(ops(2))
    seqs = [b.seq for b in ObjectLogs(backend.open()).read("host-a")]
    assert seqs == list(range(len(seqs))) and len(seqs) >= 6  # no hole is left below any fence


def test_a_fencer_overtakes_a_writer_that_never_pauses(backend: Backend) -> None:
    """A writer appending back to back is still fenced within a few slots, and recovery has every batch it acknowledged."""
    writer = ObjectLogs(backend.open()).open("host-a", "host-a")
    acked: list[int] = []
    started = threading.Event()

    def write() -> None:
        n = 0
        while True:
            try:
                acked.append(writer.append(ops(n)))
            except Fenced:
                return
            n += 1
            started.set()

    thread = threading.Thread(target=write)
    thread.start()
    assert started.wait(30)
    fencer = ObjectLogs(backend.open())
    result = fencer.fence("host-a", by="host-b")
    thread.join(60)
    assert not thread.is_alive()
    assert all(seq < result.seq for seq in acked)
    scan = fencer.recover("host-a", writer.epoch, 1, by="host-b")
    assert [b.seq for b in scan.batches] == acked


def test_an_object_copied_under_another_seq_is_refused(backend: Backend) -> None:
    """A batch stored under a key other than its own seq is CorruptObject (no replay of a copied turn)."""
    store = backend.open()
    writer = ObjectLogs(store).open("host-a", "host-a")
    writer.append(ops(0))
    copied = store.get(log_key("host-a", 1))
    assert copied is not None
    store.put(log_key("host-a", 2), copied.data, if_none_match=True)
    with pytest.raises(CorruptObject):
        list(ObjectLogs(store).read("host-a"))

"""World ownership on moto S3 and on the local directory backend: acquire,
group-committed turns, checkpoint, release, stealing from a live owner
(which fences it), restarts, and cold reads of one world's history.
"""

from __future__ import annotations

import pytest

from aos.errors import Fenced, OwnershipLost
from aos.kernel.storage import ObjectLogs, Snapshot, WorldHeads
from aos.kernel.storage.layout import log_prefix, segment_prefix
from aos.kernel.storage.testing import Backend


def host(backend: Backend, name: str) -> WorldHeads:
    """A simulated kernel: its own store handle, its own log (opened now), its own heads."""
    store = backend.open()
    logs = ObjectLogs(store)
    return WorldHeads(store, logs, logs.open(name, name))


def recs(world: str, first: int, n: int) -> list[bytes]:
    return [f"{world}:{first + i}".encode() for i in range(n)]


def reader(backend: Backend) -> WorldHeads:
    return WorldHeads(backend.open())


def fences_in(backend: Backend, log: str) -> int:
    return sum(1 for b in ObjectLogs(backend.open()).read(log) if b.fence)


def test_acquire_a_new_world(backend: Backend) -> None:
    """Acquiring a world nobody has written makes this host its owner at epoch 1 with an empty history."""
    a = host(backend, "host-a")
    own = a.acquire("u", "w")
    head = reader(backend).head("u", "w")
    assert head is not None and head.owner == "host-a" and head.epoch == 1 and head.flushed == 0
    assert head.tail is not None and head.tail.log == "host-a" and head.tail.start == a.log.next_seq  # type: ignore[union-attr]
    assert own.next_seq == 0
    assert reader(backend).history("u", "w").records == ()
    assert a.acquire("u", "w") is own  # acquiring again is a no-op


def test_one_turn_is_one_log_object_for_many_worlds(backend: Backend) -> None:
    """A turn of three worlds is one log object, and each world's history holds only its own records."""
    a = host(backend, "host-a")
    owns = {w: a.acquire("u", w) for w in ("w1", "w2", "w3")}
    before = a.log.next_seq  # type: ignore[union-attr]
    for turn in range(2):
        a.commit_turn({owns[w]: recs(w, turn * 2, 2) for w in owns})
    assert a.log.next_seq == before + 2  # type: ignore[union-attr]
    for w in owns:
        assert reader(backend).history("u", w).records == tuple(recs(w, 0, 4))


def test_checkpoint_moves_records_to_segments(backend: Backend) -> None:
    """After a checkpoint the head's flushed seq covers the records, and history reads them from a segment."""
    a = host(backend, "host-a")
    own = a.acquire("u", "w")
    a.commit_turn({own: recs("w", 0, 3)})
    head = a.checkpoint(own, Snapshot("sha256:" + "0" * 64, 2))
    assert head.flushed == 3 and head.snapshot == Snapshot("sha256:" + "0" * 64, 2)
    assert head.tail is not None and head.tail.start == a.log.next_seq  # type: ignore[union-attr]
    a.commit_turn({own: recs("w", 3, 2)})
    store = backend.open()
    assert len(list(store.list(segment_prefix("u", "w")))) == 1
    history = reader(backend).history("u", "w")
    assert history.records == tuple(recs("w", 0, 5))
    assert reader(backend).history("u", "w", from_seq=2).records == tuple(recs("w", 2, 3))
    assert reader(backend).history("u", "w", from_seq=4).records == tuple(recs("w", 4, 1))


def test_release_then_acquire_needs_no_fence(backend: Backend) -> None:
    """A released world is acquired at epoch + 1 from its segments alone; the old host's log is not fenced."""
    a, b = host(backend, "host-a"), host(backend, "host-b")
    own = a.acquire("u", "w")
    other = a.acquire("u", "other")
    a.commit_turn({own: recs("w", 0, 4)})
    released = a.release(own)
    assert released.owner is None and released.tail is None and released.flushed == 4
    with pytest.raises(OwnershipLost):
        a.commit_turn({own: recs("w", 4, 1)})
    mine = b.acquire("u", "w")
    assert mine.epoch == 2 and mine.next_seq == 4
    assert fences_in(backend, "host-a") == 1  # only its own opening fence
    a.commit_turn({other: [b"still writing"]})  # host-a keeps serving its other worlds
    b.commit_turn({mine: recs("w", 4, 1)})
    assert reader(backend).history("u", "w").records == tuple(recs("w", 0, 5))


def test_stealing_fences_the_live_owner(backend: Backend) -> None:
    """Acquiring a world its owner did not release fences the owner's log; the zombie can never append again."""
    a, b = host(backend, "host-a"), host(backend, "host-b")
    own = a.acquire("u", "w")
    a.commit_turn({own: recs("w", 0, 3)})
    a.checkpoint(own)
    a.commit_turn({own: recs("w", 3, 2)})  # unflushed: only in host-a's log
    stolen = b.acquire("u", "w")
    assert stolen.epoch == 2 and stolen.next_seq == 5
    with pytest.raises(Fenced):
        a.commit_turn({own: [b"zombie"]})
    with pytest.raises(OwnershipLost):
        a.checkpoint(own)
    b.commit_turn({stolen: recs("w", 5, 1)})
    assert reader(backend).history("u", "w").records == tuple(recs("w", 0, 6))


def test_a_zombie_checkpoint_cannot_move_the_head(backend: Backend) -> None:
    """A stolen-from owner that has not appended since still cannot checkpoint or release: OwnershipLost."""
    a, b = host(backend, "host-a"), host(backend, "host-b")
    own = a.acquire("u", "w")
    a.commit_turn({own: recs("w", 0, 2)})
    b.acquire("u", "w")
    with pytest.raises(OwnershipLost):
        a.checkpoint(own)
    with pytest.raises(OwnershipLost):
        a.release(own)
    head = reader(backend).head("u", "w")
    assert head is not None and head.owner == "host-b" and head.epoch == 2
    assert reader(backend).history("u", "w").records == tuple(recs("w", 0, 2))


def test_a_restarted_host_recovers_its_own_tail(backend: Backend) -> None:
    """After a restart (new log generation) a host re-acquires its world with every record it committed."""
    a = host(backend, "host-a")
    own = a.acquire("u", "w")
    a.commit_turn({own: recs("w", 0, 3)})
    fences_before = fences_in(backend, "host-a")
    restarted = host(backend, "host-a")  # same host id, next generation
    again = restarted.acquire("u", "w")
    assert again.epoch == 2 and again.next_seq == 3
    assert fences_in(backend, "host-a") == fences_before + 1  # the restart's own fence; recovery added none
    restarted.commit_turn({again: recs("w", 3, 1)})
    assert reader(backend).history("u", "w").records == tuple(recs("w", 0, 4))


def test_history_reads_only_this_world_after_a_checkpoint(backend: Backend) -> None:
    """A checkpointed world's cold read touches its head, its segments and no log batch of other worlds."""
    a = host(backend, "host-a")
    owns = [a.acquire("u", f"w{i}") for i in range(5)]
    for turn in range(4):
        a.commit_turn({own: recs(own.world, turn, 1) for own in owns})
    for own in owns:
        a.checkpoint(own)
    store = backend.open()
    before = store.counter.snapshot()  # type: ignore[attr-defined]
    history = WorldHeads(store).history("u", "w3")
    used = store.counter.since(before)  # type: ignore[attr-defined]
    assert history.records == tuple(recs("w3", 0, 4))
    # head + segment LIST + one segment + the (empty) log tail LIST: no batch GETs
    assert used == {"GetObject": 2, "ListObjectsV2": 2}
    assert len(list(store.list(log_prefix("host-a")))) > 4


def test_large_flushes_split_into_bounded_segments(backend: Backend) -> None:
    """A flush of more records than one segment holds writes several segments that read back in order."""
    a = host(backend, "host-a")
    own = a.acquire("u", "big")
    records = [f"{i}".encode() for i in range(4096 + 10)]
    a.commit_turn({own: records})
    a.checkpoint(own)
    assert len(list(backend.open().list(segment_prefix("u", "big")))) == 2
    assert reader(backend).history("u", "big", from_seq=4090).records == tuple(records[4090:])
    assert reader(backend).history("u", "big").records == tuple(records)


def test_a_read_only_handle_cannot_acquire(backend: Backend) -> None:
    """Storage opened without a log can read histories but refuses to acquire a world."""
    with pytest.raises(OwnershipLost):
        reader(backend).acquire("u", "w")


def test_an_idle_checkpoint_costs_nothing(backend: Backend) -> None:
    """Checkpointing a world with nothing new to flush sends no request."""
    a = host(backend, "host-a")
    own = a.acquire("u", "w")
    a.commit_turn({own: recs("w", 0, 2)})
    a.checkpoint(own)
    before = a.objects.counter.total  # type: ignore[attr-defined]
    assert a.checkpoint(own) == own.head
    assert a.objects.counter.total == before  # type: ignore[attr-defined]

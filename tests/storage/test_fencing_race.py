"""Fencing under real concurrency and real crashes.

Two processes race 1,000 times, on one log and on one world; afterwards the
storage must hold one linear history with no seq written twice and every
acknowledged write in it. Then writers are killed (SIGKILL, by themselves,
at an exact point between two requests) between the log PUT and the head
update and in the middle of hand-overs, and the next owner's recovery is
checked: nothing acknowledged is lost, nothing is duplicated, and a zombie
that still believes it owns a world can never append to it again.
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator

import pytest

from aos.errors import Fenced
from aos.kernel.storage import ObjectLogs, WorldHeads
from aos.kernel.storage.testing import Backend

HERE = os.path.dirname(os.path.abspath(__file__))
RACE = os.path.join(HERE, "race_worker.py")
CRASH = os.path.join(HERE, "crash_worker.py")
RACES = 1000
# The log race is the worst case by construction (every append after the other's reopen
# is fenced, and every reopen fences the other), and on the local backend each of its
# ~10 requests per append is an fsync'ed file: 300 keeps it well inside the per-test
# timeout on a shared 2-core machine. The world race and every S3 run do the full 1,000.
LOCAL_LOG_RACES = 300


@pytest.fixture
def scratch() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="aos-race-") as path:
        yield path


def race(backend: Backend, scratch: str, mode: str, races: int) -> list[tuple[list[str], tuple[int, int]]]:
    """Run two racers to ``races`` acknowledged writes between them; return each one's ack lines and stats."""
    paths = [os.path.join(scratch, f"acks-{n}") for n in range(2)]
    procs = [backend.start(RACE, mode, f"racer-{n}", str(races // 2), paths[n], str(n)) for n in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc, path in zip(procs, paths):
            out, err = proc.communicate(timeout=100)
            assert proc.returncode == 0, err
            done = out.split()
            assert done[0] == "done", out
            with open(path) as f:
                results.append((f.read().splitlines(), (int(done[1]), int(done[2]))))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_two_writers_race_one_log(backend: Backend, scratch: str) -> None:
    """Two processes fencing each other on one log 1,000 times leave one linear log holding exactly the acknowledged appends."""
    races = RACES if backend.name == "s3" else LOCAL_LOG_RACES
    results = race(backend, scratch, "log", races)
    acks = {}
    for lines, _ in results:
        for line in lines:
            seq, epoch, payload = line.split()
            assert int(seq) not in acks, f"seq {seq} acknowledged twice"
            acks[int(seq)] = (int(epoch), payload)
    assert len(acks) == races
    assert sum(reopens for _, (_, reopens) in results) > 0  # they really did fence each other

    batches = list(ObjectLogs(backend.open()).read("shared"))
    assert [b.seq for b in batches] == list(range(len(batches)))  # no hole anywhere
    writer_of: dict[int, str] = {}
    highest_fence = last_epoch = 0
    appended = {}
    for batch in batches:
        if batch.fence:
            highest_fence = max(highest_fence, batch.epoch)
            continue
        assert batch.epoch >= highest_fence, f"seq {batch.seq}: generation {batch.epoch} wrote after a fence of {highest_fence}"
        assert batch.epoch >= last_epoch, f"seq {batch.seq}: an older generation's batch after a newer one's"
        assert writer_of.setdefault(batch.epoch, batch.writer) == batch.writer, "two writers in one generation"
        appended[batch.seq] = (batch.epoch, batch.ops[0].value.decode())  # type: ignore[union-attr]
        last_epoch = batch.epoch
    assert appended == acks  # every acknowledged append is there, and nothing else is


def test_two_kernels_race_one_world(backend: Backend, scratch: str) -> None:
    """Two processes stealing and releasing one world for 1,000 writes leave one linear history of exactly the acknowledged records."""
    results = race(backend, scratch, "world", RACES)
    acks: dict[int, str] = {}
    for lines, _ in results:
        for line in lines:
            seq, payload = line.split()
            assert int(seq) not in acks, f"world seq {seq} acknowledged twice"
            acks[int(seq)] = payload
    history = WorldHeads(backend.open()).history("race", "w")
    assert [r.decode() for r in history.records] == [acks[s] for s in range(len(acks))]
    assert len(history.records) == len(acks) >= RACES
    acquisitions = sum(stats[0] for _, stats in results)
    assert history.head is not None and history.head.epoch == acquisitions  # every acquire, once
    assert min(stats[0] for _, stats in results) > 10  # both really owned it, many times


# --- crash points -------------------------------------------------------------------------------


def host(backend: Backend, name: str) -> WorldHeads:
    store = backend.open()
    logs = ObjectLogs(store)
    return WorldHeads(store, logs, logs.open(name, name))


def crash(backend: Backend, scenario: str, scratch: str) -> dict[int, str]:
    """Run ``crash_worker.py`` until it kills itself at the scenario's point; return what it acknowledged."""
    acks_path = os.path.join(scratch, "acks")
    done = backend.run(CRASH, scenario, acks_path)
    assert done.returncode == -signal.SIGKILL, done.stderr
    if not os.path.exists(acks_path):
        return {}
    with open(acks_path) as f:
        return {int(seq): payload for seq, payload in (line.split() for line in f)}


def written(n: int) -> list[bytes]:
    return [f"a:{i}".encode() for i in range(n)]


@pytest.mark.parametrize(
    ("scenario", "landed"),
    [
        ("append-before-put", 5),  # the sixth turn never reached the store: not acknowledged, not there
        ("append-after-put", 6),  # it reached the store but was never acknowledged: it is history now
        ("checkpoint-after-segment", 5),  # the segment is there, the head never moved
        ("release-after-segment", 5),  # a hand-over cut short: the head still names the dead owner
    ],
)
def test_the_next_owner_recovers_a_dead_writer(backend: Backend, scratch: str, scenario: str, landed: int) -> None:
    """Whatever point a writer dies at, the next owner's history has every acknowledged record, once, in order."""
    acks = crash(backend, scenario, scratch)
    assert acks == {i: f"a:{i}" for i in range(5)}
    b = host(backend, "host-b")
    own = b.acquire("crash", "w")
    assert own.epoch == 2 and own.next_seq == landed
    b.commit_turn({own: [b"b:0"]})
    history = WorldHeads(backend.open()).history("crash", "w")
    assert history.records == (*written(landed), b"b:0")
    assert any(batch.fence and batch.writer == "host-b" for batch in ObjectLogs(backend.open()).read("host-a"))
    segments = list(backend.open().list("u/crash/worlds/w/seg/"))
    assert segments == ["u/crash/worlds/w/seg/00000000000000000000"]  # a crashed flush is reused, not doubled


@pytest.mark.parametrize("scenario", ["takeover-after-fence", "takeover-after-segment"])
def test_a_takeover_cut_short_still_stops_the_zombie(backend: Backend, scratch: str, scenario: str) -> None:
    """A thief that dies mid-takeover has already fenced the old owner, which can never append again; a third host recovers it all."""
    a = host(backend, "host-a")
    own = a.acquire("crash", "w")
    for n in range(5):
        a.commit_turn({own: [f"a:{n}".encode()]})
    crash(backend, scenario, scratch)  # host-b fences host-a's log, then dies before the head update
    head = WorldHeads(backend.open()).head("crash", "w")
    assert head is not None and head.owner == "host-a" and head.epoch == 1  # the thief never got the head
    with pytest.raises(Fenced):
        a.commit_turn({own: [b"zombie"]})  # host-a still believes it owns the world
    c = host(backend, "host-c")
    mine = c.acquire("crash", "w")
    assert mine.epoch == 2 and mine.next_seq == 5
    assert WorldHeads(backend.open()).history("crash", "w").records == tuple(written(5))


def test_an_open_cut_short_fences_nobody_until_a_real_fence(backend: Backend, scratch: str) -> None:
    """A reopen that died between the log head bump and its fence leaves the writer working; the next real open stops it."""
    a = host(backend, "host-a")
    own = a.acquire("crash", "w")
    for n in range(3):
        a.commit_turn({own: [f"a:{n}".encode()]})
    crash(backend, "open-after-head-bump", scratch)
    for n in range(3, 5):
        a.commit_turn({own: [f"a:{n}".encode()]})  # no fence object exists: nobody else wrote this log
    restarted = host(backend, "host-a")
    with pytest.raises(Fenced):
        a.commit_turn({own: [b"zombie"]})
    again = restarted.acquire("crash", "w")
    assert again.next_seq == 5 and again.epoch == 2
    assert WorldHeads(backend.open()).history("crash", "w").records == tuple(written(5))

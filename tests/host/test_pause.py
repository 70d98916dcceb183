"""Pausing a world on a real kernel: while paused it applies no event, timer firing or receipt, they queue
(durably, in the inbox mailbox) and none is lost; it stays paused across a kernel crash; resume delivers what
queued, in order; the pause and resume are journaled, so a replay from genesis ends byte-identical."""

from __future__ import annotations

import os
import sys

import pytest

from aos.errors import PermissionDenied
from aos.kernel.client import Connection, run

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worldkit import assert_replays, bundle, wait_for  # noqa: E402

COUNT = "demo/counter@1"
BY = "demo/CounterEvent@1"


async def _worlds(kernel, conn):
    return await (await conn.restore_kernel(kernel.admin_token)).worlds("u")


def test_a_paused_world_queues_events_keeps_them_across_a_crash_and_resume_delivers_them(kernel):
    doc, wasm = bundle("counter")

    async def before_crash():
        async with await Connection.open(kernel.address) as conn:
            worlds = await _worlds(kernel, conn)
            world, _ = await worlds.create(doc, wasm, "c1")
            await world.send(BY, {"by": 1})
            paused_at = await world.pause()
            again = await world.pause()  # already paused: nothing journaled
            seq, outcome = await world.send_with_outcome(BY, {"by": 10})
            await world.send_batch([(BY, {"by": 100})])
            info, _ = await world.describe()
            listed = {w["worldId"]: w for w in await worlds.list()}
            return paused_at, again, seq, outcome, info, listed["c1"], await world.state(COUNT)

    paused_at, again, seq, outcome, info, listed, state = run(before_crash())
    assert again >= paused_at
    assert (seq, outcome["queued"], outcome["steps"]) == (0, True, 0)
    assert info["paused"] and info["queued"] == 2 and listed["paused"]
    assert state == {"count": 1}  # nothing queued ran
    kernel.kill()  # a crash: the pause and the queued events must come back from the journal and the inbox
    kernel.start()

    async def after_crash():
        async with await Connection.open(kernel.address) as conn:
            worlds = await _worlds(kernel, conn)
            world = await worlds.open("c1")
            info, _ = await world.describe()
            still = await world.state(COUNT)
            resumed_at = await world.resume()
            done = await wait_for(lambda: _count_is(world, 111))
            after, _ = await world.describe()
            records, _ = await world.journal(0, 0)
            return info, still, resumed_at, done, after, records, await assert_replays(
                await conn.restore_kernel(kernel.admin_token), "u", world, "c1", doc, wasm)

    info, still, resumed_at, done, after, records, _ = run(after_crash())
    assert info["paused"] and info["queued"] == 2 and still == {"count": 1}
    assert done and not after["paused"] and after["queued"] == 0
    controls = [(r["at"], r["op"]) for r in records if r["kind"] == "control"]
    assert controls == [(paused_at, "pause"), (resumed_at, "resume")]
    events = [r["value"]["by"] for r in records if r["kind"] == "event"]
    assert events == [1, 10, 100]  # in the order they were sent; the queued ones after the resume
    assert [r["at"] for r in records if r["kind"] == "event"][1] > resumed_at


async def _count_is(world, n):
    return (await world.state(COUNT)) == {"count": n}


def test_a_timer_firing_waits_for_the_resume(kernel):
    """A timer that comes due while its world is paused waits in the inbox (queued 1, not fired); resume fires it."""
    doc, wasm = bundle("hello-timer")

    async def main():
        async with await Connection.open(kernel.address) as conn:
            worlds = await _worlds(kernel, conn)
            world, _ = await worlds.create(doc, wasm, "t1")
            await world.send("demo/TimerStart@1", {"delay_ns": 300_000_000, "key": "k"})
            await world.pause()
            queued = await wait_for(lambda: _queued(world, 1))
            before = await world.state("demo/hello-timer@1")
            await world.resume()
            fired = await wait_for(lambda: _fired(world))
            return queued, before, fired

    queued, before, fired = run(main())
    assert queued
    assert before == {"started": 1, "fired": 0}
    assert fired == {"started": 1, "fired": 1}


async def _queued(world, n):
    info, _ = await world.describe()
    return info["queued"] == n and info["paused"]


async def _fired(world):
    state = await world.state("demo/hello-timer@1")
    return state if state and state["fired"] == 1 else None


def test_a_read_only_world_capability_cannot_pause(kernel):
    doc, wasm = bundle("counter")

    async def main():
        async with await Connection.open(kernel.address) as conn:
            worlds = await _worlds(kernel, conn)
            await worlds.create(doc, wasm, "c1")
            world = await (await worlds.read_only()).open("c1")
            with pytest.raises(PermissionDenied):
                await world.pause()
            with pytest.raises(PermissionDenied):
                await world.resume()

    run(main())


def test_aos_world_pause_and_resume_from_the_command_line(kernel):
    import subprocess

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path)
    env.pop("AOS_UNIVERSE", None)

    def aos(*args):
        done = subprocess.run([sys.executable, "-m", "aos.cli", *args], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    aos("world", "create", "examples/counter", "--id", "c1")
    assert aos("world", "pause", "c1").startswith("world c1 paused (journal seq ")
    assert "is paused: the event is queued" in aos("world", "send", "c1", BY, '{"by": 4}')
    assert "hibernated paused" in aos("world", "ls") or "awake paused" in aos("world", "ls")
    assert aos("world", "resume", "c1").startswith("world c1 resumed")
    journal = aos("world", "journal", "c1")
    assert any(line.split()[1:] == ["control", "pause"] for line in journal.splitlines())

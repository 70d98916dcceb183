"""Migration and failover on real etcd, a moto S3 server and host kernels on shared storage:
a world moved by command, or off a draining host, serves on its new host with every
acknowledged event; a host killed with SIGKILL loses its lease and its worlds serve
elsewhere with nothing acknowledged lost, and the killed host's kernel is fenced.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from aos.errors import KernelUnavailable, WorldMoved
from aos.kernel.client import Connection, run
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.testing import LocalCluster, shared_storage_cluster
from aos.kernel.scheduler.testing import until as _until
from aos.kernel.storage.testing import MotoServer
from aos.kernel.world.loader import read_bundle

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")


@pytest.fixture
def shared_cluster(etcd: str, moto_server: MotoServer) -> Iterator[LocalCluster]:
    with shared_storage_cluster(etcd, moto_server, prefix="aosf-", hosts=3, capacity=10) as c:
        yield c


until = partial(_until, timeout=30.0)  # most of these conditions come quickly: fail in 30 s unless told


async def count_on(s: SchedulerSession, world: str) -> tuple[str, int]:
    """(host id, counter) read from the host the scheduler introduces."""
    where = await (await s.universe("u")).where(world)
    if where["state"] != "running":
        return "", -1
    w = await s.open_world("u", world)
    state = await w.state("demo/counter@1")
    return where["hostId"], (state or {}).get("count", 0)


def test_move_by_command_and_by_drain_keeps_every_acknowledged_event(shared_cluster: LocalCluster) -> None:
    """A moved world serves on its target with all its events, and draining a host moves its worlds off it."""
    doc, wasm = read_bundle(os.path.join(EXAMPLES, "counter"))

    async def main() -> tuple[Any, ...]:
        async with await SchedulerSession.open(shared_cluster.scheduler.address,
                                               shared_cluster.scheduler.admin_token) as s:
            await until(lambda: _hosts(s, 3))
            await s.scheduler.create_universe("u")
            placement, _ = await (await s.universe("u")).create_world(doc, wasm, "m1")
            first = placement["hostId"]
            world = await s.open_world("u", "m1")
            for n in range(5):
                await world.send("demo/CounterEvent@1", {"by": 1})
            target = next(h for h in ("host0", "host1", "host2") if h != first)
            moved = await s.scheduler.move("u", "m1", target)
            after_move = await until(lambda: _on(s, "m1", target, 5))
            # an event after the move lands on the new host
            await (await s.open_world("u", "m1")).send("demo/CounterEvent@1", {"by": 10})
            await s.scheduler.drain(target)
            after_drain = await until(lambda: _away(s, "m1", target, 15))
            return first, moved, after_move, after_drain, target

    first, moved, after_move, after_drain, target = run(main())
    assert moved["hostId"] == target and moved["epoch"] == 2
    assert after_move == (target, 5)
    assert after_drain[0] not in ("", target) and after_drain[1] == 15


def test_a_killed_host_fails_over_with_nothing_acknowledged_lost(shared_cluster: LocalCluster) -> None:
    """SIGKILL on a host: its lease lapses, its worlds serve on other hosts with every acknowledged event."""
    doc, wasm = read_bundle(os.path.join(EXAMPLES, "counter"))

    async def setup() -> dict[str, str]:
        async with await SchedulerSession.open(shared_cluster.scheduler.address,
                                               shared_cluster.scheduler.admin_token) as s:
            await until(lambda: _hosts(s, 3))
            await s.scheduler.create_universe("u")
            universe = await s.universe("u")
            homes = {}
            for i in range(6):
                placement, _ = await universe.create_world(doc, wasm, f"f{i}")
                world = await s.open_world("u", f"f{i}")
                for _ in range(i + 1):
                    await world.send("demo/CounterEvent@1", {"by": 1})
                homes[f"f{i}"] = placement["hostId"]
            return homes

    homes = run(setup())
    victim = homes["f0"]
    index = int(victim.removeprefix("host"))
    shared_cluster.kernels[index].kill()

    async def after() -> dict[str, tuple[str, int]]:
        async with await SchedulerSession.open(shared_cluster.scheduler.address,
                                               shared_cluster.scheduler.admin_token) as s:
            out = {}
            for name in homes:
                want = int(name[1:]) + 1
                out[name] = await until(lambda n=name, w=want: _served_elsewhere(s, n, victim, w), timeout=60)
            await s.scheduler.drain(victim)  # when it comes back, rebalancing must not hand it worlds again
            return out

    served = run(after())
    for name, (host, count) in served.items():
        assert count == int(name[1:]) + 1
        if homes[name] == victim:
            assert host != victim

    # the killed host comes back: its old worlds were taken over, so it is fenced and refuses them
    kernel = shared_cluster.add_host(index)
    shared_cluster.wait_joined(kernel)
    lost = [name for name, home in homes.items() if home == victim]

    async def on_old_host() -> list[str]:
        refused = []
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            worlds = await admin.worlds("u")
            for name in lost:
                with pytest.raises(WorldMoved):
                    await (await worlds.open(name)).send("demo/CounterEvent@1", {"by": 100})
                refused.append(name)
        return refused

    assert run(on_old_host()) == lost


async def _hosts(s: SchedulerSession, n: int) -> bool:
    return len((await s.scheduler.status())["hosts"]) == n


async def _on(s: SchedulerSession, world: str, host: str, count: int) -> tuple[str, int] | None:
    found = await count_on(s, world)
    return found if found == (host, count) else None


async def _away(s: SchedulerSession, world: str, host: str, count: int) -> tuple[str, int] | None:
    found = await count_on(s, world)
    return found if found[0] not in ("", host) and found[1] == count else None


async def _served_elsewhere(s: SchedulerSession, world: str, victim: str, count: int) -> tuple[str, int] | None:
    found = await count_on(s, world)
    return found if found[0] not in ("", victim) and found[1] == count else None


def test_a_stopping_host_hands_its_worlds_over_first(shared_cluster: LocalCluster) -> None:
    """SIGTERM on a host run with --drain-on-stop releases its worlds to other hosts before it exits."""
    doc, wasm = read_bundle(os.path.join(EXAMPLES, "counter"))
    kernel = shared_cluster.add_host(3, extra=["--drain-on-stop", "30"])
    shared_cluster.wait_joined(kernel)

    async def setup() -> None:
        async with await SchedulerSession.open(shared_cluster.scheduler.address,
                                               shared_cluster.scheduler.admin_token) as s:
            await until(lambda: _hosts(s, 4))
            await s.scheduler.create_universe("u")
            await (await s.universe("u")).create_world(doc, wasm, "d1")
            await (await s.open_world("u", "d1")).send("demo/CounterEvent@1", {"by": 3})
            await s.scheduler.move("u", "d1", "host3")
            await until(lambda: _on(s, "d1", "host3", 3))

    run(setup())
    assert kernel.stop(timeout=60) == 0
    assert any("event=drained" in line for line in kernel.log_lines)

    async def served() -> tuple[str, int]:
        async with await SchedulerSession.open(shared_cluster.scheduler.address,
                                               shared_cluster.scheduler.admin_token) as s:
            return await until(lambda: _away(s, "d1", "host3", 3))  # type: ignore[no-any-return]

    assert run(served())[1] == 3


def test_a_following_client_keeps_working_through_a_move_and_a_failover(shared_cluster: LocalCluster) -> None:
    """One FollowingWorld handle sends and reads across a move and the SIGKILL of the world's host."""
    doc, wasm = read_bundle(os.path.join(EXAMPLES, "counter"))

    async def main() -> tuple[Any, ...]:
        async with await SchedulerSession.open(shared_cluster.scheduler.address,
                                               shared_cluster.scheduler.admin_token) as s:
            await until(lambda: _hosts(s, 3))
            await s.scheduler.create_universe("u")
            placement, _ = await (await s.universe("u")).create_world(doc, wasm, "fw")
            world = s.follow("u", "fw", timeout=60)
            await world.send("demo/CounterEvent@1", {"by": 1})
            target = next(h for h in ("host0", "host1", "host2") if h != placement["hostId"])
            await s.scheduler.move("u", "fw", target)
            await world.send("demo/CounterEvent@1", {"by": 1})  # lands on the new host
            where = await (await s.universe("u")).where("fw")
            await until(lambda: _on(s, "fw", target, 2))
            await world.state("demo/counter@1")  # the handle is on the target now (a read follows a move)
            shared_cluster.kernels[int(target.removeprefix("host"))].kill()
            with pytest.raises(KernelUnavailable):  # a write on the dead host's connection: the caller judges it
                await world.send("demo/CounterEvent@1", {"by": 1})
            await world.send("demo/CounterEvent@1", {"by": 1})  # not to the dead host again: it waits out the failover
            count = await world.state("demo/counter@1")
            final = await world.state("demo/counter@1")
            after = await (await s.universe("u")).where("fw")
            return where["hostId"], target, count, final, after["hostId"], world.moves

    moved_to, target, count, final, after, moves = run(main())
    assert moved_to == target
    assert count == {"count": 3} and final == {"count": 3}
    assert after != target and moves >= 1

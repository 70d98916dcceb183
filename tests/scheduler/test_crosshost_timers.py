"""Timers follow their world: a world with a pending timer that is moved by command, or whose
host is killed, fires that timer on its new host, once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aos.kernel.client import run
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.testing import LocalCluster, shared_storage_cluster, until
from aos.kernel.storage.testing import MotoServer
from aos.kernel.world.loader import read_bundle

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")
# long enough that the move or the failover completes first: the test checks the timer is still pending then
DELAY_NS = 8_000_000_000


@pytest.fixture
def shared_cluster(etcd: str, moto_server: MotoServer) -> Iterator[LocalCluster]:
    with shared_storage_cluster(etcd, moto_server, prefix="aost-", hosts=3, capacity=10) as c:
        yield c


async def timer_state(s: SchedulerSession, world: str) -> tuple[str, dict[str, int] | None]:
    where = await (await s.universe("u")).where(world)
    if where["state"] != "running":
        return "", None
    state = await (await s.open_world("u", world)).state("demo/hello-timer@1")
    return where["hostId"], state


async def _hosts(s: SchedulerSession, n: int) -> bool:
    return len((await s.scheduler.status())["hosts"]) == n


async def _start_timer(s: SchedulerSession, name: str) -> str:
    doc, wasm = read_bundle(os.path.join(EXAMPLES, "hello-timer"))
    await until(lambda: _hosts(s, 3))
    await s.scheduler.create_universe("u")
    placement, _ = await (await s.universe("u")).create_world(doc, wasm, name)
    await (await s.open_world("u", name)).send("demo/TimerStart@1", {"delay_ns": DELAY_NS, "key": "k"})
    return str(placement["hostId"])


def _fired_after(s: SchedulerSession, name: str, not_on: str, fired: int) -> Any:
    async def check() -> tuple[str, dict[str, int]] | None:
        host, state = await timer_state(s, name)
        return (host, state) if host not in ("", not_on) and state and state["fired"] == fired else None

    return check


def test_a_moved_world_fires_its_pending_timer_on_its_new_host_once(shared_cluster: LocalCluster) -> None:
    async def main() -> tuple[Any, ...]:
        async with await SchedulerSession.open(shared_cluster.scheduler.address,
                                               shared_cluster.scheduler.admin_token) as s:
            first = await _start_timer(s, "t1")
            target = next(h for h in ("host0", "host1", "host2") if h != first)
            started = time.monotonic()
            await s.scheduler.move("u", "t1", target)
            pending = await until(_fired_after(s, "t1", first, 0))
            in_time = time.monotonic() - started < DELAY_NS / 1e9  # else the check below proves nothing
            fired = await until(_fired_after(s, "t1", first, 1))
            # a second move: had the first host kept the timer too, its firing would show up here
            await s.scheduler.move("u", "t1", first)
            back = await until(lambda: _on_host(s, "t1", first))
            return first, target, pending, in_time, fired, back

    first, target, pending, in_time, fired, back = run(main())
    assert in_time
    assert pending == (target, {"started": 1, "fired": 0})
    assert fired == (target, {"started": 1, "fired": 1})
    assert back == {"started": 1, "fired": 1}


async def _on_host(s: SchedulerSession, name: str, host: str) -> dict[str, int] | None:
    where, state = await timer_state(s, name)
    return state if where == host else None


def test_a_failed_over_world_fires_its_pending_timer_on_its_new_host_once(shared_cluster: LocalCluster) -> None:
    async def setup() -> tuple[str, float]:
        async with await SchedulerSession.open(shared_cluster.scheduler.address,
                                               shared_cluster.scheduler.admin_token) as s:
            return await _start_timer(s, "t2"), time.monotonic()

    victim, started = run(setup())
    shared_cluster.kernels[int(victim.removeprefix("host"))].kill()

    async def after() -> tuple[Any, ...]:
        async with await SchedulerSession.open(shared_cluster.scheduler.address,
                                               shared_cluster.scheduler.admin_token) as s:
            fired = await until(_fired_after(s, "t2", victim, 1), timeout=90)
            await s.scheduler.drain(victim)
            return fired

    host, state = run(after())
    assert host != victim
    assert state == {"started": 1, "fired": 1}

"""The scheduling history and read-only scheduler tokens, on real etcd, moto S3 and two real host kernels:
a created world is a `placed` entry, a move by command a `moved` one, a host killed with SIGKILL a `failover`
of each of its worlds; entries page newest first; a read-only token reads everything, writes nothing, and is
introduced to read-only worlds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from aos.errors import PermissionDenied
from aos.kernel.client import run
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.testing import LocalCluster, shared_storage_cluster
from aos.kernel.scheduler.testing import until as _until
from aos.kernel.storage.testing import MotoServer
from aos.kernel.world.loader import read_bundle

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")


@pytest.fixture
def shared_cluster(etcd: str, moto_server: MotoServer) -> Iterator[LocalCluster]:
    # no rebalancing: the moves in history are the test's own (a rebalance of c2 could land between pages)
    with shared_storage_cluster(etcd, moto_server, prefix="aosh-", hosts=2, capacity=10,
                                scheduler_args=["--no-rebalance"]) as c:
        yield c


until = partial(_until, timeout=30.0)  # these conditions come quickly: fail in 30 s


def test_placements_moves_and_failovers_are_recorded_and_paged(shared_cluster: LocalCluster) -> None:
    doc, wasm = read_bundle(os.path.join(EXAMPLES, "counter"))

    async def main() -> tuple[Any, ...]:
        async with await SchedulerSession.open(shared_cluster.addresses, shared_cluster.scheduler.admin_token) as s:
            await until(lambda: _hosts(s, 2))
            await s.scheduler.create_universe("u")
            u = await s.universe("u")
            first, _ = await u.create_world(doc, wasm, "c1")
            await u.create_world(doc, wasm, "c2")
            other = "host1" if first["hostId"] == "host0" else "host0"
            await s.scheduler.move("u", "c1", other)
            moved = await until(lambda: _has(s, "moved"))
            newest = await s.scheduler.history(limit=1)
            older = await s.scheduler.history(before=newest[0]["seq"], limit=10)
            after = await s.scheduler.history(after=older[0]["seq"])
            # c2's host dies: its worlds fail over to the other host
            await until(lambda: _running(u, "c1", other))
            dead = (await u.where("c2"))["hostId"]
            shared_cluster.kernels[int(dead[-1])].kill()
            failover = await until(lambda: _has(s, "failover"))
            return first, moved, newest, older, after, failover, dead

    first, moved, newest, older, after, failover, dead = run(main())
    # oldest first: both creations, then the move
    created = [(e["kind"], e["worldId"], e["reason"], e["fromHost"]) for e in older[::-1][:2]]
    assert created == [("placed", "c1", "created", ""), ("placed", "c2", "created", "")]
    assert older[-1]["toHost"] == first["hostId"]
    assert newest == after and len(newest) == 1 and newest[0]["kind"] == "moved"
    assert (moved["worldId"], moved["fromHost"], moved["reason"], moved["epoch"]) == \
        ("c1", first["hostId"], "by command", 2)
    assert newest[0]["seq"] > older[0]["seq"] > older[1]["seq"]
    assert failover["fromHost"] == dead and failover["toHost"] != dead and "not live" in failover["reason"]


async def _hosts(s: SchedulerSession, n: int) -> bool:
    return len((await s.scheduler.status())["hosts"]) == n


async def _has(s: SchedulerSession, kind: str) -> dict[str, Any] | None:
    return next((e for e in await s.scheduler.history() if e["kind"] == kind), None)


async def _running(u: Any, world: str, host: str) -> bool:
    where = await u.where(world)
    return bool(where["state"] == "running" and where["hostId"] == host)


def test_a_read_only_scheduler_token_reads_but_writes_nothing(shared_cluster: LocalCluster) -> None:
    doc, wasm = read_bundle(os.path.join(EXAMPLES, "counter"))

    async def main() -> tuple[Any, ...]:
        async with await SchedulerSession.open(shared_cluster.addresses, shared_cluster.scheduler.admin_token) as s:
            await until(lambda: _hosts(s, 2))
            await s.scheduler.create_universe("u")
            await (await s.universe("u")).create_world(doc, wasm, "c1")
            await (await s.open_world("u", "c1")).send("demo/CounterEvent@1", {"by": 3})
            token = await (await s.scheduler.read_only()).save()
        async with await SchedulerSession.open(shared_cluster.addresses, token) as ro:
            status = await ro.scheduler.status()
            history = await ro.scheduler.history()
            refused = []
            for attempt in (lambda: ro.scheduler.move("u", "c1", ""), lambda: ro.scheduler.create_universe("v"),
                            lambda: ro.scheduler.drain("host0"),
                            lambda: _create(ro, doc, wasm)):
                with pytest.raises(PermissionDenied) as caught:
                    await attempt()
                refused.append(str(caught.value))
            world = await ro.open_world("u", "c1")
            state = await world.state("demo/counter@1")
            with pytest.raises(PermissionDenied):
                await world.send("demo/CounterEvent@1", {"by": 1})
            return status, history, refused, state

    status, history, refused, state = run(main())
    assert len(status["hosts"]) == 2 and history[0]["kind"] == "placed"
    assert all("read-only" in r for r in refused), refused
    assert "3" in str(state)


async def _create(ro: SchedulerSession, doc: Any, wasm: Any) -> Any:
    return await (await ro.universe("u")).create_world(doc, wasm, "c9")

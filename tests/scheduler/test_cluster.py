"""A cluster of real processes: etcd, aos-scheduler and two host kernels that join it.
Universes are made through the scheduler, worlds are placed on hosts by capacity
and labels, a client is introduced to a world's host and talks to it directly,
quotas refuse with a typed error, and a universe's capability reaches no other.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from aos.errors import PermissionDenied, UnknownWorld
from aos.kernel.client import Connection, run
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.errors import NoHost, QuotaExceeded, UniverseNotEmpty
from aos.kernel.scheduler.testing import LocalCluster, running_cluster
from aos.kernel.world.loader import read_bundle

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")


@pytest.fixture
def cluster(etcd: str) -> Iterator[LocalCluster]:
    with tempfile.TemporaryDirectory(prefix="aosc-", dir="/tmp") as root:
        c = LocalCluster(root, hosts=2, capacity=3, host_args=[["--label", "zone=a"], ["--label", "zone=b"]])
        with running_cluster(c, etcd):
            yield c


def counter() -> tuple[dict[str, Any], dict[str, bytes]]:
    return read_bundle(os.path.join(EXAMPLES, "counter"))


async def session_of(c: LocalCluster) -> SchedulerSession:
    return await SchedulerSession.open(c.scheduler.address, c.scheduler.admin_token)


async def wait_hosts(s: SchedulerSession, n: int) -> dict[str, Any]:
    import asyncio

    for _ in range(500):
        status = await s.scheduler.status()
        if len(status["hosts"]) == n:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"hosts never reached {n}")


def test_worlds_are_placed_introduced_and_served_by_their_host(cluster: LocalCluster) -> None:
    """A world created through the scheduler runs on a host that carries its labels and serves a client directly."""
    doc, wasm = counter()

    async def main() -> tuple[Any, ...]:
        async with await session_of(cluster) as s:
            status = await wait_hosts(s, 2)
            zone_of = {h["hostId"]: {lab["key"]: lab["value"] for lab in h["labels"]}["zone"] for h in status["hosts"]}
            await s.scheduler.create_universe("acme", "Acme Corp")
            acme = await s.universe("acme")
            placement, info = await acme.create_world(doc, wasm, "c1", labels={"zone": "b"})
            world = await s.open_world("acme", "c1")
            await world.send("demo/CounterEvent@1", {"by": 4})
            state = await world.state("demo/counter@1")
            where = await acme.where("c1")
            # the introduction's host is the placement's host, and its kernel really holds the world
            intro = await acme.introduce("c1")
            kernel_id = next(i for i, k in enumerate(cluster.kernels) if intro["address"] in k.addresses)
            async with await Connection.open(cluster.kernels[kernel_id].address) as conn:
                admin = await conn.restore_kernel(cluster.kernels[kernel_id].admin_token)
                hosted = [w["worldId"] for w in await (await admin.worlds("acme")).list()]
            with pytest.raises(UnknownWorld):
                await acme.where("nope")
            return zone_of[placement["hostId"]], info["worldId"], state, where, hosted

    zone, world_id, state, where, hosted = run(main())
    assert zone == "b"
    assert world_id == "c1"
    assert state == {"count": 4}
    assert where["state"] == "running" and where["address"]
    assert hosted == ["c1"]


def test_capacity_labels_and_quotas_refuse_with_typed_errors(cluster: LocalCluster) -> None:
    """Full hosts, missing labels and a universe's world quota each refuse a new world with their own error."""
    doc, wasm = counter()

    async def main() -> tuple[Any, ...]:
        async with await session_of(cluster) as s:
            await wait_hosts(s, 2)
            await s.scheduler.create_universe("small", worlds=1)
            small = await s.universe("small")
            await small.create_world(doc, wasm, "only")
            with pytest.raises(QuotaExceeded):
                await small.create_world(doc, wasm, "second")
            await s.scheduler.create_universe("big")
            big = await s.universe("big")
            with pytest.raises(NoHost) as unlabelled:
                await big.create_world(doc, wasm, "gpu", labels={"gpu": "yes"})
            placed = [(await big.create_world(doc, wasm, f"w{i}"))[0]["hostId"] for i in range(5)]
            with pytest.raises(NoHost) as full:  # 2 hosts x capacity 3, one taken by small/only
                await big.create_world(doc, wasm, "w5")
            with pytest.raises(UniverseNotEmpty):
                await s.scheduler.delete_universe("small")
            await small.delete_world("only")
            await s.scheduler.delete_universe("small")
            names = [u["universeId"] for u in await s.scheduler.list_universes()]
            status = await s.scheduler.status()
            return str(unlabelled.value), str(full.value), placed, names, status

    unlabelled, full, placed, names, status = run(main())
    assert "gpu=yes" in unlabelled
    assert "room" in full
    assert sorted(placed.count(h) for h in set(placed)) == [2, 3]
    assert names == ["big"]
    assert sorted(h["worlds"] for h in status["hosts"]) == [2, 3]
    assert status["etcdKeys"] > 0 and status["waiting"] == 0


def test_a_universe_capability_reaches_only_its_universe(cluster: LocalCluster) -> None:
    """A token saved from one universe's capability restores only that universe and cannot name another."""
    doc, wasm = counter()

    async def main() -> tuple[Any, ...]:
        async with await session_of(cluster) as s:
            await wait_hosts(s, 2)
            await s.scheduler.create_universe("a")
            await s.scheduler.create_universe("b")
            await (await s.universe("b")).create_world(doc, wasm, "secret")
            token = await (await s.universe("a")).save()
        async with await SchedulerSession.open(cluster.scheduler.address, token) as tenant:
            with pytest.raises(PermissionDenied):
                tenant.scheduler  # noqa: B018  (a universe token holds no Scheduler)
            with pytest.raises(PermissionDenied):
                await tenant.universe("b")
            mine = await tenant.universe("a")
            with pytest.raises(UnknownWorld):
                await mine.introduce("secret")  # b's world is not a's, even by the same name
            placement, _ = await mine.create_world(doc, wasm, "secret")
            world = await tenant.open_world("a", "secret")
            await world.send("demo/CounterEvent@1", {"by": 1})
            return placement["universeId"], await world.state("demo/counter@1")

    universe, state = run(main())
    assert universe == "a"
    assert state == {"count": 1}


def test_bad_requests_get_typed_errors_and_leave_the_scheduler_serving(cluster: LocalCluster) -> None:
    """Bad ids, duplicates, unknown universes, forged tokens and bad manifests are typed errors; nothing is left half made."""
    from aos.errors import InvalidArgument, InvalidToken
    from aos.kernel.scheduler.errors import UniverseExists, UnknownUniverse
    from aos.kernel.world.errors import ManifestError

    doc, wasm = counter()

    async def main() -> dict[str, Any]:
        async with await session_of(cluster) as s:
            await wait_hosts(s, 2)
            with pytest.raises(InvalidArgument):
                await s.scheduler.create_universe("bad/id")
            await s.scheduler.create_universe("u")
            with pytest.raises(UniverseExists):
                await s.scheduler.create_universe("u")
            with pytest.raises(UnknownUniverse):
                await s.scheduler.universe("nope")
            u = await s.universe("u")
            with pytest.raises(ManifestError):
                await u.create_world({"name": "broken", "schemas": "not a map"}, {}, "bad")
            with pytest.raises(InvalidArgument):
                await u.create_world(doc, wasm, "x" * 101)
            with pytest.raises(InvalidArgument):
                await u.create_world(doc, wasm, "ok", labels={"bad key": "v"})
            await u.create_world(doc, wasm, "ok")
            with pytest.raises(InvalidArgument):
                await u.create_world(doc, wasm, "ok")  # taken
            with pytest.raises(InvalidToken):
                await s.conn.restore("aos1_" + "A" * 43)
            return await u.info()

    info = run(main())
    assert info["worlds"] == 1  # the refused creations were not counted

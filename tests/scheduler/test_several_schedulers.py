"""Several scheduler addresses: a client and a host given all of them keep working when the
leading scheduler is killed with SIGKILL (a standby leads once its lease lapses).
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from aos.errors import InvalidArgument
from aos.kernel.client import run
from aos.kernel.scheduler.client import SchedulerSession, scheduler_addresses
from aos.kernel.scheduler.testing import LocalCluster
from aos.kernel.world.loader import read_bundle

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")


@pytest.fixture
def cluster(etcd: str) -> Iterator[LocalCluster]:
    with tempfile.TemporaryDirectory(prefix="aosc-", dir="/tmp") as root:
        c = LocalCluster(root, hosts=1, schedulers=2)
        try:
            c.start(etcd)
            c.wait_joined(c.kernels[0])
            yield c
        finally:
            c.stop()


def test_addresses_are_split_on_commas_and_repeats() -> None:
    assert scheduler_addresses(["tcp:a:1,tcp:b:2", " tcp:c:3", "tcp:a:1"]) == ["tcp:a:1", "tcp:b:2", "tcp:c:3"]
    with pytest.raises(InvalidArgument):
        scheduler_addresses(" , ")


def test_a_client_and_a_host_keep_working_when_the_leader_is_killed(cluster: LocalCluster) -> None:
    """One session given both addresses writes through the new leader after SIGKILL; the host keeps its world."""
    doc, wasm = read_bundle(os.path.join(EXAMPLES, "counter"))
    leader = cluster.scheduler_procs[0]
    host_pid = cluster.kernels[0].proc.pid
    admin_token = leader.admin_token

    async def main() -> tuple[str, str, dict[str, object], str]:
        async with await SchedulerSession.open(cluster.addresses, admin_token) as s:
            assert s.conn.address == leader.address
            await s.on_leader(lambda s: s.scheduler.create_universe("acme"))
            placed, _ = await s.on_leader(_create(doc, wasm, "c1"))
            world = s.follow("acme", "c1")
            await world.send("demo/CounterEvent@1", {"by": 2})

            os.kill(leader.pid, signal.SIGKILL)
            leader.proc.wait()
            # the same session: a write needs the new leader, which leads once the old lease lapses
            second, _ = await s.on_leader(_create(doc, wasm, "c2"))
            where = await s.on_leader(lambda s: _where(s, "c1"))
            await world.send("demo/CounterEvent@1", {"by": 3})
            state = await world.state("demo/counter@1")
            return placed["hostId"], where["hostId"], state, second["hostId"]

    first_host, host_now, state, second_host = run(main())
    assert cluster.scheduler_procs[0].proc.poll() is not None
    assert cluster.scheduler_procs[1].leads
    # the host kept its world and, heartbeating all along, was live for the new leader to place on
    assert host_now == first_host == second_host
    assert cluster.kernels[0].proc.poll() is None and cluster.kernels[0].proc.pid == host_pid
    assert state == {"count": 5}


def _create(doc: dict[str, Any], wasm: dict[str, bytes], world: str) -> Callable[[SchedulerSession], Awaitable[Any]]:
    async def create(s: SchedulerSession) -> Any:
        return await (await s.universe("acme")).create_world(doc, wasm, world)
    return create


async def _where(s: SchedulerSession, world: str) -> dict[str, Any]:
    return await (await s.universe("acme")).where(world)

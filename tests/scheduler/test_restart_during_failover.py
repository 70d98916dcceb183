"""A host kernel SIGKILLed and restarted (same host id) during its own failover, on real etcd, a moto
S3 server and host kernels on shared storage: it owns its world again at start (the head still names
it), the leader then gives the world to the other host, which takes it over and takes new events; once
the restarted host follows the scheduler it drops its stale copy, so a read through it is refused
(``WorldMoved``, which clients follow), never answered from that copy.

The order is made deterministic: a 10 s lease, so the restart finishes long before the killed host's
lease lapses, and the restarted host reaches the scheduler only through a second scheduler started
after the other host took the world over.
"""

from __future__ import annotations

import os
from functools import partial

import pytest

from aos.errors import WorldMoved
from aos.kernel.client import Connection, run
from aos.kernel.process import KernelProcess
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.testing import SchedulerProcess, free_port, shared_storage_cluster
from aos.kernel.scheduler.testing import until as _until
from aos.kernel.storage.testing import MotoServer
from aos.kernel.world.loader import read_bundle

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")
TTL = 10
until = partial(_until, timeout=60.0)


async def direct_count(kernel: KernelProcess, world: str) -> int:
    """The counter as the host kernel itself answers it (its admin token: no introduction, no commit)."""
    async with await Connection.open(kernel.address) as conn:
        admin = await conn.restore_kernel(kernel.admin_token)
        state = await (await (await admin.worlds("u")).open(world)).state("demo/counter@1")
        return int((state or {}).get("count", 0))


async def served_by(s: SchedulerSession, world: str, host: str, count: int) -> bool:
    where = await (await s.universe("u")).where(world)
    if where["state"] != "running" or where["hostId"] != host:
        return False
    state = await (await s.open_world("u", world)).state("demo/counter@1")
    return (state or {}).get("count", 0) == count


def test_a_host_restarted_during_its_failover_drops_the_world_it_lost(etcd: str, moto_server: MotoServer) -> None:
    doc, wasm = read_bundle(os.path.join(EXAMPLES, "counter"))
    with shared_storage_cluster(etcd, moto_server, prefix="aosr-", hosts=2, capacity=10, lease_ttl=TTL) as cluster:
        token = cluster.scheduler.admin_token

        async def setup() -> str:
            async with await SchedulerSession.open(cluster.addresses, token) as s:
                await until(lambda: _hosts(s, 2))
                await s.scheduler.create_universe("u")
                placement, _ = await (await s.universe("u")).create_world(doc, wasm, "w")
                world = await s.open_world("u", "w")
                for _ in range(3):
                    await world.send("demo/CounterEvent@1", {"by": 1})
                return str(placement["hostId"])

        victim = run(setup())
        index, other = int(victim.removeprefix("host")), "host1" if victim == "host0" else "host0"
        cluster.kernels[index].kill()

        # back at once, with the same id and data, but reaching no scheduler yet (nothing listens on that port)
        late = free_port()
        data = os.path.join(cluster.root, f"host{index}")
        kernel = KernelProcess(data, listen=[f"unix:{os.path.join(data, 'kernel.sock')}", "tcp:127.0.0.1:0"],
                               extra_args=["--scheduler", f"tcp:127.0.0.1:{late}", "--scheduler-token",
                                           cluster.scheduler.token_path, "--capacity", "10",
                                           "--storage", cluster.storage, "--host-id", victim], env=cluster.env)
        kernel.start()
        cluster.kernels[index] = kernel  # stopped with the cluster
        # it owns the world again at start: its old lease has not lapsed, no other host took it
        assert run(direct_count(kernel, "w")) == 3

        async def taken_over() -> None:
            async with await SchedulerSession.open(cluster.addresses, token) as s:
                await until(lambda: served_by(s, "w", other, 3), what=f"w taken over by {other}")
                world = s.follow("u", "w")
                for _ in range(2):
                    await world.send("demo/CounterEvent@1", {"by": 1})
                await until(lambda: served_by(s, "w", other, 5), what=f"w at 5 on {other}")

        run(taken_over())

        # now the restarted host finds a scheduler (a standby: the join follows it to the leader)
        standby = SchedulerProcess(os.path.join(cluster.root, "scheduler-late"), cluster.etcd_url,
                                   listen=f"tcp:127.0.0.1:{late}", extra_args=["--lease-ttl", str(TTL)],
                                   env=cluster.env)
        cluster.scheduler_procs.append(standby.start())
        cluster.wait_joined(kernel)

        async def dropped() -> bool:
            return any("event=world_dropped" in line and "u/w" in line for line in kernel.log_lines)

        try:
            # its first look at the view comes right after it joins; ask before the copy's idle timeout
            # hibernates it (a commit, which the takeover's fence would stop)
            run(until(dropped, timeout=15.0, what=f"{victim} dropping its stale copy of w"))
        except AssertionError:
            pytest.fail(f"{victim} kept its stale copy of w: a read through it answers count "
                        f"{run(direct_count(kernel, 'w'))}, the world is at 5")
        # a read through it is refused (clients follow WorldMoved), not answered from its stale copy
        with pytest.raises(WorldMoved):
            run(direct_count(kernel, "w"))

        async def still_served() -> bool:
            async with await SchedulerSession.open(cluster.addresses, token) as s:
                return bool(await until(lambda: served_by(s, "w", other, 5), what=f"w at 5 on {other}"))

        assert run(still_served())
        assert kernel.proc is not None and kernel.proc.poll() is None  # it dropped the world without writing


async def _hosts(s: SchedulerSession, n: int) -> bool:
    return len((await s.scheduler.status())["hosts"]) == n

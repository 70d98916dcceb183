"""Scale: 100 universes x 100 worlds (10,000 worlds) through the scheduler on 3 host kernels on one machine.

Run: ``.venv/bin/python -m pytest bench/bench_scale.py -q -s`` (a few minutes;
``AOS_BENCH_SCALE=0.1`` makes it 100 x 10). Real processes on 127.0.0.1:
Debian's etcd, one ``aos-scheduler`` and three ``aos-kernel`` hosts on shared
storage (``file://`` by default, ``AOS_BENCH_SCALE_STORAGE=s3`` for a moto S3
server; ``--idle-seconds 3``, so idle worlds hibernate).

Figures:

- ``scale.rpc``: the same-run baseline, a trivial scheduler RPC
  (``Universe.info``) with the same sessions and calls in flight (calls/s);
  ``scale.etcd.put``: one etcd put per call, same concurrency (puts/s).
- ``scale.create``: ``Universe.createWorld`` of every world (placed, recorded
  in etcd in one transaction with its universe's count, created on its host
  with its head claimed in shared storage), worlds/s, as a ratio to ``scale.rpc``.
- ``scale.etcd.keys``: the keys the cluster holds in etcd afterwards, by prefix.
- ``scale.rss.*``: VmRSS of each host kernel (and the scheduler) with every world
  hibernated, and with 10 worlds of each universe (1,000) awake.
"""

from __future__ import annotations

import asyncio
import collections
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from benchlib import Figures

from aos.kernel.client import Connection, run
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.testing import EtcdProcess, LocalCluster, etcd_binary
from aos.kernel.storage.objects import S3Objects, make_client
from aos.kernel.storage.testing import AWS_VARIABLES_TO_CLEAR, MotoServer
from aos.kernel.world.loader import read_bundle

SCALE = float(os.environ.get("AOS_BENCH_SCALE", "1"))
UNIVERSES = 100
WORLDS_PER_UNIVERSE = max(1, int(100 * SCALE))
AWAKE_PER_UNIVERSE = max(1, WORLDS_PER_UNIVERSE // 10)
SESSIONS, IN_FLIGHT = 4, 8  # 32 calls in flight, from 4 connections
IDLE_SECONDS = 3
# shared storage for the hosts: the local directory backend (S3's semantics, one fsynced file per object)
# by default; "s3" puts them on the moto server, whose ~30-100 PUTs/s here bound creation (3 requests a world)
STORAGE = os.environ.get("AOS_BENCH_SCALE_STORAGE", "file")
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


@pytest.fixture(scope="module")
def scale_cluster(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[tuple[LocalCluster, EtcdProcess]]:
    if etcd_binary() is None:
        pytest.skip("etcd is not installed: `./run setup` installs Debian's etcd-server")
    moto = MotoServer().start()
    etcd = EtcdProcess().start()
    try:
        for name in AWS_VARIABLES_TO_CLEAR:
            monkeypatch_module.delenv(name, raising=False)
        for name, value in moto.env().items():
            monkeypatch_module.setenv(name, value)
        bucket = f"aos-{uuid.uuid4().hex[:12]}"
        S3Objects(make_client(), bucket).ensure_bucket()
        with tempfile.TemporaryDirectory(prefix="aoss-", dir="/tmp") as root:
            storage = f"s3://{bucket}/s" if STORAGE == "s3" else f"file://{root}/shared"
            cluster = LocalCluster(root, hosts=3, storage=storage, env=dict(os.environ),
                                   capacity=UNIVERSES * WORLDS_PER_UNIVERSE,
                                   host_args=[["--idle-seconds", str(IDLE_SECONDS)]] * 3)
            try:
                cluster.start(f"{etcd.url}/scale")
                for kernel in cluster.kernels:
                    cluster.wait_joined(kernel)
                yield cluster, etcd
            finally:
                cluster.stop()
    finally:
        etcd.stop()
        moto.stop()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


async def closed_loop(sessions: list[SchedulerSession], jobs: list[Any], call: Any) -> float:
    """Run ``call(session, job)`` for every job, IN_FLIGHT at a time per session; seconds taken."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    done = [0]

    async def worker(s: SchedulerSession) -> None:
        while not queue.empty():
            await call(s, queue.get_nowait())
            done[0] += 1
            if done[0] % 1000 == 0:
                print(f"  {done[0]} done, {done[0] / (time.perf_counter() - start):.0f}/s", flush=True)

    start = time.perf_counter()
    await asyncio.gather(*(worker(s) for s in sessions for _ in range(IN_FLIGHT)))
    return time.perf_counter() - start


async def etcd_puts(etcd: EtcdProcess, n: int) -> float:
    """Seconds for ``n`` small etcd puts, SESSIONS x IN_FLIGHT at a time (aetcd, as the scheduler uses it)."""
    import aetcd

    clients = [aetcd.Client("127.0.0.1", etcd.client_port) for _ in range(SESSIONS)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(client: Any) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            await client.put(f"/baseline/{i}".encode(), b"x" * 64)

    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients for _ in range(IN_FLIGHT)))
        return time.perf_counter() - start
    finally:
        await clients[0].delete_prefix(b"/baseline/")
        for client in clients:
            await client.close()


async def etcd_keys(etcd: EtcdProcess, prefix: str) -> tuple[dict[str, int], int]:
    """Keys under the cluster's prefix, counted by their first component after it, and their bytes."""
    import aetcd

    client = aetcd.Client("127.0.0.1", etcd.client_port)
    try:
        found = await client.get_prefix(prefix.encode() + b"/")
        counts: dict[str, int] = collections.Counter()
        size = 0
        for kv in found:
            rest = kv.key[len(prefix) + 1:].decode()
            counts[rest.split("/", 1)[0]] += 1
            size += len(kv.key) + len(kv.value)
        return dict(sorted(counts.items())), size
    finally:
        await client.close()


async def awake_on(kernel: Any) -> int:
    async with await Connection.open(kernel.address) as conn:
        admin = await conn.restore_kernel(kernel.admin_token)
        return sum(u["awake"] for u in await admin.universes())


async def all_awake(cluster: LocalCluster) -> list[int]:
    return [await awake_on(k) for k in cluster.kernels]


@pytest.mark.timeout(1800)
def test_ten_thousand_worlds_on_three_hosts(figures: Figures, scale_cluster: tuple[LocalCluster, EtcdProcess]) -> None:
    cluster, etcd = scale_cluster
    doc, wasm = read_bundle(os.path.join(EXAMPLES, "counter"))
    universes = [f"u{i:03d}" for i in range(UNIVERSES)]
    # world-major order: the calls in flight at once are in different universes (one universe's
    # creates serialize on its world count, compared in each transaction)
    worlds = [(u, f"w{j:03d}") for j in range(WORLDS_PER_UNIVERSE) for u in universes]
    out: dict[str, Any] = {}

    async def main() -> None:
        sessions = [await SchedulerSession.open(cluster.addresses, cluster.scheduler.admin_token, timeout=120)
                    for _ in range(SESSIONS)]
        try:
            s = sessions[0]
            while len((await s.scheduler.status())["hosts"]) < 3:
                await asyncio.sleep(0.05)
            for u in universes:
                await s.scheduler.create_universe(u)
            handles = [{u: await x.universe(u) for u in universes} for x in sessions]
            by_session = {id(x): h for x, h in zip(sessions, handles)}

            async def info(x: SchedulerSession, u: str) -> None:
                await by_session[id(x)][u].info()

            rpc_jobs = [universes[i % UNIVERSES] for i in range(2000)]
            out["rpc"] = len(rpc_jobs) / await closed_loop(sessions, rpc_jobs, info)
            out["put"] = 2000 / await etcd_puts(etcd, 2000)

            async def create(x: SchedulerSession, job: tuple[str, str]) -> None:
                await by_session[id(x)][job[0]].create_world(doc, wasm, job[1])

            print(f"baselines done: rpc {out['rpc']:.0f}/s, etcd put {out['put']:.0f}/s", flush=True)
            out["create_s"] = await closed_loop(sessions, worlds, create)
            print(f"created {len(worlds)} in {out['create_s']:.1f} s", flush=True)
            out["status"] = await s.scheduler.status()
            out["keys"] = await etcd_keys(etcd, "/scale")
            out["awake_after_create"] = await all_awake(cluster)
            # every world hibernates once idle for IDLE_SECONDS
            deadline = time.monotonic() + 300
            while any(await all_awake(cluster)) and time.monotonic() < deadline:
                await asyncio.sleep(1)
            out["rss_hibernated"] = [rss_kib(k.proc.pid) for k in cluster.kernels]
            out["rss_scheduler"] = rss_kib(cluster.scheduler.pid)
            out["awake_hibernated"] = await all_awake(cluster)
            # wake some: an event to the first AWAKE_PER_UNIVERSE worlds of every universe, through introductions
            woken = [(u, f"w{j:03d}") for j in range(AWAKE_PER_UNIVERSE) for u in universes]

            async def wake(x: SchedulerSession, job: tuple[str, str]) -> None:
                await (await x.open_world(*job)).send("demo/CounterEvent@1", {"by": 1})

            out["wake_s"] = await closed_loop(sessions, woken, wake)
            out["rss_awake"] = [rss_kib(k.proc.pid) for k in cluster.kernels]
            out["awake_awake"] = await all_awake(cluster)
        finally:
            for x in sessions:
                x.close()

    run(main())
    total = len(worlds)
    status = out["status"]
    per_host = {h["hostId"]: h["worlds"] for h in status["hosts"]}
    keys, key_bytes = out["keys"]
    create_rate = total / out["create_s"]
    figures.record("scale.rpc", "Universe.info, 32 in flight over 4 sessions", out["rpc"], "calls/s")
    figures.record("scale.etcd.put", "etcd put, 32 in flight over 4 clients", out["put"], "puts/s")
    figures.record("scale.create", f"createWorld x {total} ({UNIVERSES} universes) on 3 hosts on {STORAGE} storage", create_rate,
                   "worlds/s", baseline="scale.rpc", note=f"{out['create_s']:.0f} s; per host {per_host}")
    figures.record("scale.etcd.keys", f"etcd keys for {total} worlds", sum(keys.values()), "keys",
                   note=f"{key_bytes / 1024:.0f} KiB; {keys}")
    for i, kernel in enumerate(cluster.kernels):
        figures.record(f"scale.rss.host{i}.hibernated", f"host{i} RSS, {per_host.get(f'host{i}', 0)} worlds hibernated",
                       out["rss_hibernated"][i] / 1024, "MiB")
        figures.record(f"scale.rss.host{i}.awake", f"host{i} RSS, {out['awake_awake'][i]} of them awake",
                       out["rss_awake"][i] / 1024, "MiB")
    figures.record("scale.rss.scheduler", f"scheduler RSS, {total} worlds placed", out["rss_scheduler"] / 1024, "MiB")
    print()
    print(f"{'figure':<44} {'value':>12}")
    print(f"{'worlds':<44} {total:>12}")
    print(f"{'trivial scheduler RPC (calls/s)':<44} {out['rpc']:>12.0f}")
    print(f"{'etcd put (puts/s)':<44} {out['put']:>12.0f}")
    print(f"{'createWorld (worlds/s)':<44} {create_rate:>12.0f}  ({create_rate / out['rpc']:.3f} x RPC, "
          f"{out['create_s']:.0f} s)")
    print(f"{'etcd keys':<44} {sum(keys.values()):>12}  ({key_bytes / 1024:.0f} KiB) {keys}")
    print(f"{'wake (introduce + send) (worlds/s)':<44} {len(universes) * AWAKE_PER_UNIVERSE / out['wake_s']:>12.0f}")
    for i in range(3):
        print(f"{f'host{i} RSS hibernated / awake (MiB)':<44} {out['rss_hibernated'][i] / 1024:>12.0f} / "
              f"{out['rss_awake'][i] / 1024:.0f}  ({per_host.get(f'host{i}', 0)} worlds; awake after create "
              f"{out['awake_after_create'][i]}, hibernated {out['awake_hibernated'][i]}, then {out['awake_awake'][i]})")
    print(f"{'scheduler RSS (MiB)':<44} {out['rss_scheduler'] / 1024:>12.0f}")

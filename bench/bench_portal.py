"""Cross-world message latency (issue 12, P8): a world's ``portal.send`` to the receiving world's journal
showing the event, with both worlds on one host and on two hosts of a cluster.

Run: ``.venv/bin/python -m pytest bench/bench_portal.py -q`` (about 40 s). Real processes on 127.0.0.1:
Debian's etcd, a moto S3 server, one ``aos-scheduler`` and two ``aos-kernel`` hosts on shared storage.

Figures:

- ``portal.baseline.rpc``: the same-run baseline, a ``Kernel.status`` round trip to the receiving host
  (p50, ms), timed between the rounds of the figures below (paired).
- ``portal.same_host.p50``: ``World.send`` of an event whose step emits ``portal.send`` to a world on the
  same host, to the receiver's journal tail pushing that event to the client (p50, ms); target 1 ms.
- ``portal.cross_host.p50``: the same with the receiver on the other host (the sending host delivers
  through ``Kernel.deliverPortal``); target 2 ms.

What one message costs either way: the sender's event is journaled (storage commits go to the S3 log
before they are acknowledged), its intent runs, the receiver's inbox commits the mail, and the receiver
journals the event; the cross-host path adds one Cap'n Proto call between hosts. ``AOS_BENCH_SCALE``
scales the number of rounds.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import benchlib
import pytest
from benchlib import Figures, Result, Target

from aos.kernel.client import Connection, run
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.testing import EtcdProcess, LocalCluster, etcd_binary, running_cluster, shared_storage_cluster
from aos.kernel.storage.testing import MotoServer
from aos.kernel.world.testing import SCRIPTED_MODULE, SCRIPTED_SCHEMAS

SCALE = float(os.environ.get("AOS_BENCH_SCALE", "1"))
SCRIPT = "test/Script@1"
WORKFLOW = "test/scripted@1"
PORTAL = "sys/portal.send@1"


def manifest() -> dict[str, Any]:
    """The scripted workflow (it emits the effects its event lists) with portal.send granted."""
    return {
        "version": 1,
        "name": "bench/portal",
        "schemas": {**SCRIPTED_SCHEMAS, "sys/Any@1": "any",
                    "sys/PortalSend@1": {"record": {"dest_world": "text", "schema": "text", "value": "any"}}},
        "modules": {WORKFLOW: {"runtime": "python", "python_module": SCRIPTED_MODULE}},
        "workflows": {WORKFLOW: {"module": WORKFLOW, "entry": "scripted", "state": "test/ScriptState@1",
                                 "event": SCRIPT, "effects": [PORTAL]}},
        "effects": {PORTAL: {"params": "sys/PortalSend@1", "receipt": "sys/Any@1", "cap": "portal"}},
        "grants": {"portal": {"cap": "portal"}},
        "routing": [{"event": SCRIPT, "workflow": WORKFLOW}],
    }


def one_send(dest: str, message: str) -> dict[str, Any]:
    return {"effects": [{"effect": PORTAL, "params": {"dest_world": dest, "schema": SCRIPT,
                                                      "value": {"id": message}}}]}


@pytest.fixture(scope="module")
def etcd_server() -> Iterator[EtcdProcess]:
    if etcd_binary() is None:
        pytest.skip("etcd is not installed: `./run setup` installs Debian's etcd-server")
    server = EtcdProcess().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["s3", "local"])
def cluster(request: pytest.FixtureRequest, etcd_server: EtcdProcess, moto: MotoServer) -> Iterator[LocalCluster]:
    """Two hosts on shared storage (``s3``: every commit reaches the S3 log), or each on its own RocksDB
    (``local``: worlds pinned to their host; the same portal path without the S3 PUTs)."""
    etcd_url = f"{etcd_server.url}/b{uuid.uuid4().hex[:8]}"
    options: dict[str, Any] = {"hosts": 2, "host_args": [["--python-module", SCRIPTED_MODULE]] * 2}
    if request.param == "s3":
        with shared_storage_cluster(etcd_url, moto, prefix="aosbp-", **options) as c:
            yield c
        return
    with tempfile.TemporaryDirectory(prefix="aosbp-", dir="/tmp") as root, \
            running_cluster(LocalCluster(root, env=dict(os.environ), **options), etcd_url) as c:
        yield c


def test_portal_latency(benchmark: Any, figures: Figures, cluster: LocalCluster) -> None:
    """p50 of send -> the receiving world's journal showing the event, same host and cross host."""
    kind = "s3" if cluster.storage else "local"
    rounds = max(20, int(60 * SCALE))
    latencies: dict[str, list[float]] = {"near": [], "far": []}
    baseline: list[float] = []
    plain: list[float] = []

    async def main() -> None:
        async with await SchedulerSession.open(cluster.scheduler.address, cluster.scheduler.admin_token) as s:
            while len((await s.scheduler.status())["hosts"]) < 2:
                await asyncio.sleep(0.05)
            await s.scheduler.create_universe("u")
            universe = await s.universe("u")
            first, second = (cluster.wait_joined(k) for k in cluster.kernels)  # host ids (random without storage)
            for name, host in (("s", first), ("near", first), ("far", second)):
                await universe.create_world(manifest(), None, name, pin=host)
            sender = await s.open_world("u", "s")
            kernel = cluster.kernels[1]
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                for target in ("near", "far"):
                    await measure(s, sender, admin, target, latencies[target], baseline)
                for _ in range(rounds):  # context: one event journaled (its commit reaches the S3 log)
                    start = time.perf_counter()
                    await sender.send(SCRIPT, {})
                    plain.append(time.perf_counter() - start)

    async def measure(s: SchedulerSession, sender: Any, admin: Any, target: str, out: list[float],
                      base: list[float]) -> None:
        receiver = await s.open_world("u", target)
        _, height = await receiver.journal(0, 0)
        waiting: dict[str, asyncio.Future[None]] = {}

        async def on_record(seq: int, record: dict[str, Any]) -> None:
            value = record.get("value")
            if record.get("kind") == "event" and isinstance(value, dict) and value.get("id") in waiting:
                future = waiting.pop(value["id"])
                if not future.done():
                    future.set_result(None)

        subscription = await receiver.tail(height, on_record)
        loop = asyncio.get_running_loop()
        try:
            for i in range(rounds + 3):  # 3 to warm up: connections between hosts, caches, wakes
                message = f"{target}-{i}"
                arrived = waiting[message] = loop.create_future()
                start = time.perf_counter()
                await sender.send(SCRIPT, one_send(target, message))
                await asyncio.wait_for(arrived, 30)
                elapsed = time.perf_counter() - start
                status_start = time.perf_counter()
                await admin.status()
                if i >= 3:
                    out.append(elapsed)
                    base.append(time.perf_counter() - status_start)
        finally:
            await subscription.cancel()

    benchmark.pedantic(lambda: run(main()), rounds=1, iterations=1)
    rpc = benchlib.percentile(baseline, 50) * 1000
    where = "S3 storage" if kind == "s3" else "local RocksDB"
    base = f"portal.{kind}.baseline.rpc"
    figures.record(base, f"Kernel.status round trip to a host ({where}), p50", rpc, "ms", benchmark=benchmark)
    figures.record(f"portal.{kind}.world_send", f"World.send of one event ({where}), p50",
                   benchlib.percentile(plain, 50) * 1000, "ms", baseline=base, paired=rpc, benchmark=benchmark)
    for key, label, target_ms in (("near", "same host", 1.0), ("far", "cross host", 2.0)):
        result = Result(len(latencies[key]), sum(latencies[key]), 1, latencies=latencies[key])
        figures.record(f"portal.{kind}.{'same_host' if key == 'near' else 'cross_host'}.p50",
                       f"portal.send to the receiver's journal, {label} ({where}), p50",
                       result.percentile(50) * 1000, "ms", baseline=base, paired=rpc,
                       target=Target("value", "<=", target_ms), result=result, benchmark=benchmark)

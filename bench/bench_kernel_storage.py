"""A real ``aos-kernel`` on shared storage (moto S3): ack latency, busy worlds, S3 requests, cold wake, hand-over.

Run: ``.venv/bin/python -m pytest bench/bench_kernel_storage.py -q`` (a
minute or two). Layout: one moto S3 server (``aos.kernel.storage.testing``,
which counts the requests it serves) and the kernels under test, each in its
own process on 127.0.0.1, the client in the pytest process. Every figure is
paired with a raw ``boto3`` ``put_object`` of 1 KiB to the same server,
measured in the same run right before it, and reported as a ratio to it, so
load on a shared machine cancels out.

Figures:

- ``kernel.s3.put``: the raw boto3 PUT, p50: the baseline.
- ``kernel.send.s3`` / ``kernel.send.embedded``: ``World.send`` ack latency,
  p50 and p99, one client sending one event at a time, on S3 storage (the
  turn is in the host's S3 log before the answer) and embedded (RocksDB).
- ``kernel.busy``: events/s at 100 busy worlds (a closed-loop sender per
  world) on S3 storage, and the S3 requests the kernel sent per 1,000
  events there, counted by the server: log objects plus checkpoints (target
  at most 20).
- ``kernel.cold_wake``: ``Worlds.acquire`` of a released 1,000-event world by
  a kernel that never saw it (head, segments, local apply, replay from the
  snapshot), p50.
- ``kernel.handover``: ``Worlds.release`` on kernel A plus
  ``Worlds.acquire`` on kernel B of a small world, p50 (target at most
  200 ms against a local S3 server).

``AOS_BENCH_SCALE`` scales the call counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import benchlib
import boto3
import pytest
from benchlib import Figures, Result, Target

from aos.kernel.client import Connection
from aos.kernel.storage.testing import MotoServer
from aos.testing import KernelProcess

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "storage"))
from kernelkit import SCRIPT, manifest  # noqa: E402

SCALE = float(os.environ.get("AOS_BENCH_SCALE", "1"))
UNIVERSE = "bench"


def n(base: int) -> int:
    return max(5, int(base * SCALE))


class Cluster:
    """The moto server, a bucket, and kernels on it (each with its own data directory)."""

    def __init__(self, server: MotoServer) -> None:
        self.server = server
        self.bucket = f"bench-{uuid.uuid4().hex[:12]}"
        self.raw = boto3.client("s3")
        self.raw.create_bucket(Bucket=self.bucket)
        self.kernels: list[tuple[KernelProcess, str]] = []

    def kernel(self, host: str | None, prefix: str = "k") -> KernelProcess:
        """A started kernel on this bucket (``host`` None: an embedded one)."""
        path = tempfile.mkdtemp(prefix="aosb-", dir="/tmp")
        extra = ["--idle-seconds", "600"]
        if host is not None:
            extra += ["--storage", f"s3://{self.bucket}/{prefix}", "--host-id", host]
        proc = KernelProcess(path, extra_args=extra).start()
        self.kernels.append((proc, path))
        return proc

    def close(self) -> None:
        for proc, path in self.kernels:
            proc.kill()
            shutil.rmtree(path, ignore_errors=True)

    def raw_puts(self, count: int = 100) -> Result:
        body = os.urandom(1024)
        prefix = uuid.uuid4().hex[:8]
        latencies = []
        start = time.perf_counter()
        for i in range(count):
            t0 = time.perf_counter()
            self.raw.put_object(Bucket=self.bucket, Key=f"raw/{prefix}/{i}", Body=body)
            latencies.append(time.perf_counter() - t0)
        return Result(count, time.perf_counter() - start, 1, 1, latencies)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    server = MotoServer().start()
    try:
        with server.environ():
            os.environ.setdefault("AOS_PYTHON_MODULES", "aos.kernel.world.testing")
            made = Cluster(server)
            try:
                yield made
            finally:
                made.close()
    finally:
        server.stop()


def ms(seconds: float) -> float:
    return seconds * 1e3


async def _session(kernel: KernelProcess) -> tuple[Any, Any, Any]:
    conn = await Connection.open(kernel.address)
    admin = await conn.restore_kernel(kernel.admin_token)
    return conn, admin, await admin.worlds(UNIVERSE)


def _sends(kernel: KernelProcess, count: int) -> Result:
    async def main() -> Result:
        conn, _, worlds = await _session(kernel)
        with contextlib.closing(conn):
            world, _ = await worlds.create(manifest(), {}, f"send-{uuid.uuid4().hex[:6]}")
            for _ in range(20):  # warm up: the world is awake, the connection hot
                await world.send(SCRIPT, {"id": "k"})
            latencies = []
            start = time.perf_counter()
            for _ in range(count):
                t0 = time.perf_counter()
                await world.send(SCRIPT, {"id": "k"})
                latencies.append(time.perf_counter() - t0)
            return Result(count, time.perf_counter() - start, 1, 1, latencies)

    return benchlib.run_client(main)


def test_send_latency(benchmark: Any, figures: Figures, cluster: Cluster) -> None:
    """World.send acknowledged one at a time: on S3 storage (log PUT first) and embedded (RocksDB only)."""
    on_s3, embedded = cluster.kernel("bench-send"), cluster.kernel(None)
    results: dict[str, Result] = {}

    def once() -> None:
        results["raw"] = cluster.raw_puts()
        results["s3"] = _sends(on_s3, n(300))
        results["embedded"] = _sends(embedded, n(300))

    benchmark.pedantic(once, rounds=1, iterations=1)
    raw = ms(results["raw"].percentile(50))
    figures.record("kernel.s3.put.p50", "raw boto3 PUT 1 KiB (kernel storage run), p50", raw, "ms",
                   result=results["raw"], benchmark=benchmark)
    for kind, label in (("s3", "on S3 storage"), ("embedded", "embedded")):
        result = results[kind]
        figures.record(f"kernel.send.{kind}.p50", f"World.send ack {label}, p50", ms(result.percentile(50)), "ms",
                       baseline="kernel.s3.put.p50", paired=raw, result=result, benchmark=benchmark)
        figures.record(f"kernel.send.{kind}.p99", f"World.send ack {label}, p99", ms(result.percentile(99)), "ms",
                       baseline="kernel.s3.put.p50", paired=raw, benchmark=benchmark)


def test_busy_worlds(benchmark: Any, figures: Figures, cluster: Cluster) -> None:
    """100 worlds, a closed-loop sender each, on S3 storage: events/s and S3 requests per 1,000 events."""
    worlds_n, per_world = 100, n(600)
    kernel = cluster.kernel("bench-busy")
    out: dict[str, Any] = {}

    async def main() -> None:
        conn, _, worlds = await _session(kernel)
        with contextlib.closing(conn):
            handles = [(await worlds.create(manifest(), {}, f"busy-{i:03d}"))[0] for i in range(worlds_n)]
            raw = cluster.raw_puts()
            before = cluster.server.requests()
            start = time.perf_counter()

            async def sender(world: Any) -> None:
                for _ in range(per_world):
                    await world.send(SCRIPT, {"id": "k"})

            await asyncio.gather(*(sender(w) for w in handles))
            seconds = time.perf_counter() - start
            after = cluster.server.requests()
            out["raw"], out["seconds"] = raw, seconds
            out["requests"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}

    benchmark.pedantic(lambda: benchlib.run_client(main), rounds=1, iterations=1)
    events = worlds_n * per_world
    requests = sum(out["requests"].values())
    raw: Result = out["raw"]
    figures.record("kernel.busy.rate", "events/s at 100 busy worlds on S3 storage", events / out["seconds"],
                   "events/s", baseline="kernel.s3.put.rate", paired=raw.rate,
                   note="ratio = events per raw PUT time", benchmark=benchmark)
    figures.record("kernel.s3.put.rate", "raw boto3 PUT 1 KiB (kernel storage run)", raw.rate, "PUTs/s",
                   benchmark=benchmark)
    figures.record("kernel.busy.requests", "S3 requests per 1,000 events, 100 busy worlds (kernel)",
                   requests * 1000 / events, "requests", target=Target("value", "<=", 20),
                   note=f"{out['requests']}", benchmark=benchmark)


def test_cold_wake(benchmark: Any, figures: Figures, cluster: Cluster) -> None:
    """Acquire (and wake) a released 1,000-event world on a kernel that never saw it."""
    count, events = n(8), 1000
    a = cluster.kernel("bench-cold-a", "cold")
    out: dict[str, Any] = {}

    async def prepare() -> None:
        conn, _, worlds = await _session(a)
        with contextlib.closing(conn):
            for i in range(count):
                world, _ = await worlds.create(manifest(), {}, f"cold-{i}")
                await world.send_batch([(SCRIPT, {"id": f"k{j % 7}"}) for j in range(events)])
                await worlds.release(f"cold-{i}")

    benchlib.run_client(prepare)
    b = cluster.kernel("bench-cold-b", "cold")

    async def wake() -> None:
        conn, _, worlds = await _session(b)
        with contextlib.closing(conn):
            latencies = []
            for i in range(count):
                t0 = time.perf_counter()
                info, _ = await worlds.acquire(f"cold-{i}")
                latencies.append(time.perf_counter() - t0)
                assert info["journalHeight"] > events
            out["result"] = Result(count, sum(latencies), 1, 1, latencies)

    def once() -> None:
        out["raw"] = cluster.raw_puts()
        benchlib.run_client(wake)

    benchmark.pedantic(once, rounds=1, iterations=1)
    result: Result = out["result"]
    figures.record("kernel.cold_wake.p50", "cold wake from S3 (acquire a released 1,000-event world), p50",
                   ms(result.percentile(50)), "ms", baseline="kernel.s3.put.p50",
                   paired=ms(out["raw"].percentile(50)), result=result, benchmark=benchmark)


def test_handover(benchmark: Any, figures: Figures, cluster: Cluster) -> None:
    """Release on kernel A then acquire on kernel B, one small world after another, through the kernels' API."""
    count = n(20)
    a, b = cluster.kernel("bench-hand-a", "hand"), cluster.kernel("bench-hand-b", "hand")
    out: dict[str, Any] = {}

    async def main() -> None:
        conn_a, _, worlds_a = await _session(a)
        conn_b, _, worlds_b = await _session(b)
        with contextlib.closing(conn_a), contextlib.closing(conn_b):
            for i in range(count):
                world, _ = await worlds_a.create(manifest(), {}, f"hand-{i}")
                for j in range(10):
                    await world.send(SCRIPT, {"id": f"k{j}"})
            out["raw"] = cluster.raw_puts()
            latencies = []
            for i in range(count):
                t0 = time.perf_counter()
                await worlds_a.release(f"hand-{i}")
                await worlds_b.acquire(f"hand-{i}")
                latencies.append(time.perf_counter() - t0)
            out["result"] = Result(count, sum(latencies), 1, 1, latencies)

    benchmark.pedantic(lambda: benchlib.run_client(main), rounds=1, iterations=1)
    result: Result = out["result"]
    figures.record("kernel.handover.p50", "hand-over through kernels (release on A + acquire on B), p50",
                   ms(result.percentile(50)), "ms", baseline="kernel.s3.put.p50",
                   paired=ms(out["raw"].percentile(50)), target=Target("value", "<=", 200), result=result,
                   benchmark=benchmark)

"""Worlds hosted by the kernel: events/s, many worlds, wake latency, memory per world.

Every rate is divided by the kernel's raw journal append rate, measured in
the same round on the same kernel (256 writers of one record per call over
Cap'n Proto): the ratio says what the world machinery (door check, step,
derived records, output gate) costs on top of durable journaling. Events go
in through ``World.sendBatch`` (200 events per call, 4 calls in flight), the
bulk-ingress path; the single-event ``send`` rate is reported too.

``test_native_cbor`` runs the same two workloads (one Python world, 100
worlds) on two kernels side by side, one with cbor2 and the C encoder
(``kernel/world/_ccbor.c``) hidden from it (the pure Python codec, as before
the native paths) and one without, rounds interleaved: the ratio is what
native decoding and encoding buy per event.

Scale with ``AOS_BENCH_SCALE`` (the hibernated-world count included).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

import benchlib
from benchlib import Figures, Target
from aos.kernel.client import Connection
from aos.testing import KernelProcess

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "host"))
from worldkit import bundle  # noqa: E402

SCALE = float(os.environ.get("AOS_BENCH_SCALE", "1"))
BATCH = 200
IN_FLIGHT = 4


def counter_doc(runtime: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The counter example reduced to one workflow on one runtime."""
    doc, wasm = bundle("counter")
    workflow = "demo/counter_py@1" if runtime == "python" else "demo/counter@1"
    doc["workflows"] = {workflow: doc["workflows"][workflow]}
    doc["routing"] = [{"event": "demo/CounterEvent@1", "workflow": workflow}]
    return doc, wasm


@pytest.fixture(scope="module")
def world_kernel() -> Iterator[KernelProcess]:
    with tempfile.TemporaryDirectory(prefix="aosbw-", dir="/tmp") as path:
        proc = KernelProcess(path, extra_args=["--idle-seconds", "3600"]).start()
        try:
            yield proc
        finally:
            proc.kill()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def _journal_rate(admin: Any, writers: int, calls: int) -> float:
    journal = await admin.journal("bench-raw")
    prefix = f"raw{time.monotonic_ns()}"
    per = max(1, calls // writers)

    async def writer(n: int) -> None:
        for seq in range(per):
            await journal.append(f"{prefix}-{n}", seq, 1, [b"x" * 100])

    start = time.perf_counter()
    await asyncio.gather(*(writer(n) for n in range(writers)))
    return writers * per / (time.perf_counter() - start)


async def _pump(worlds: list[Any], events: int) -> float:
    """Send ``events`` counter events spread over ``worlds`` in batches; events/s."""
    batches = max(len(worlds), events // BATCH)
    gate = asyncio.Semaphore(IN_FLIGHT * max(1, min(len(worlds), 8)))

    async def one(i: int) -> None:
        async with gate:
            await worlds[i % len(worlds)].send_batch([("demo/CounterEvent@1", {"by": 1})] * BATCH)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(batches)))
    return batches * BATCH / (time.perf_counter() - start)


def _run(kernel: KernelProcess, main: Any) -> Any:
    async def wrapped() -> Any:
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            return await main(admin)

    return benchlib.run_client(lambda: wrapped())


@pytest.mark.parametrize("runtime", ("python", "wasm"))
def test_one_world_events(benchmark: Any, figures: Figures, world_kernel: KernelProcess, runtime: str) -> None:
    """Events/s into one counter world with durable journaling, vs raw journal appends."""
    doc, wasm = counter_doc(runtime)
    rates: list[tuple[float, float, float]] = []

    async def main(admin: Any) -> None:
        worlds = await admin.worlds(f"bench-{runtime}")
        world, _ = await worlds.create(doc, wasm)
        baseline = await _journal_rate(admin, 256, int(8000 * SCALE))
        batched = await _pump([world], int(20_000 * SCALE))
        gate = asyncio.Semaphore(64)

        async def single() -> None:
            async with gate:
                await world.send("demo/CounterEvent@1", {"by": 1})

        count = int(3000 * SCALE)
        start = time.perf_counter()
        await asyncio.gather(*(single() for _ in range(count)))
        rates.append((batched, count / (time.perf_counter() - start), baseline))

    benchmark.pedantic(lambda: _run(world_kernel, main), rounds=2, iterations=1)
    batched, single, baseline = max(rates)
    figures.record(f"world.{runtime}.batched", f"one {runtime} counter world, sendBatch", batched, "events/s",
                   baseline="world.journal", paired=baseline, target=Target("value", ">=", 5000), benchmark=benchmark)
    figures.record(f"world.{runtime}.single", f"one {runtime} counter world, send x64 in flight", single, "events/s",
                   baseline="world.journal", paired=baseline, benchmark=benchmark)
    figures.record("world.journal", "raw journal append, 256 writers (world baseline)", baseline, "records/s",
                   benchmark=benchmark)


def test_hundred_worlds_events(benchmark: Any, figures: Figures, world_kernel: KernelProcess) -> None:
    """Aggregate events/s across 100 python counter worlds."""
    doc, wasm = counter_doc("python")
    rates: list[tuple[float, float]] = []

    async def main(admin: Any) -> None:
        worlds_cap = await admin.worlds(f"bench-100-{time.monotonic_ns()}")
        worlds = [(await worlds_cap.create(doc, wasm))[0] for _ in range(100)]
        baseline = await _journal_rate(admin, 256, int(8000 * SCALE))
        rates.append((await _pump(worlds, int(40_000 * SCALE)), baseline))

    benchmark.pedantic(lambda: _run(world_kernel, main), rounds=1, iterations=1)
    rate, baseline = max(rates)
    figures.record("world.100", "100 counter worlds, aggregate", rate, "events/s", baseline="world.journal",
                   paired=baseline, target=Target("value", ">=", 20_000), benchmark=benchmark)


@pytest.mark.timeout(1200)
def test_wake_latency_and_memory(benchmark: Any, figures: Figures) -> None:
    """Wake-from-hibernation latency, and resident memory per hibernated and per awake world."""
    hibernated = int(10_000 * SCALE)
    awake = min(1000, hibernated)
    doc, wasm = counter_doc("python")
    out: dict[str, float] = {}

    with tempfile.TemporaryDirectory(prefix="aosbm-", dir="/tmp") as path:
        # worlds are hibernated from creation (nothing wakes them); a long idle keeps the woken ones awake
        kernel = KernelProcess(path, extra_args=["--idle-seconds", "3600"]).start()
        try:
            pid = kernel.proc.pid

            async def main(admin: Any) -> None:
                worlds = await admin.worlds("bench-mem")
                base_rss = rss_bytes(pid)
                gate = asyncio.Semaphore(64)

                async def create(i: int) -> None:
                    async with gate:
                        await worlds.create(doc, wasm, f"m{i}")

                await asyncio.gather(*(create(i) for i in range(hibernated)))
                out["hibernated_rss"] = rss_bytes(pid)
                out["per_hibernated"] = (out["hibernated_rss"] - base_rss) / hibernated
                # wake a sample one at a time: each state() call wakes one hibernated world
                latencies = []
                for i in range(awake):
                    world = await worlds.open(f"m{i}")
                    start = time.perf_counter()
                    await world.state("demo/counter_py@1")
                    latencies.append(time.perf_counter() - start)
                out["per_awake"] = (rss_bytes(pid) - out["hibernated_rss"]) / awake
                # the same call on an already awake world: the RPC share of the wake latency
                world = await worlds.open("m0")
                warm = []
                for _ in range(200):
                    start = time.perf_counter()
                    await world.state("demo/counter_py@1")
                    warm.append(time.perf_counter() - start)
                latencies.sort()
                out["wake_p50"] = latencies[len(latencies) // 2]
                out["wake_p99"] = latencies[int(len(latencies) * 0.99)]
                out["warm_p50"] = statistics.median(warm)

            benchmark.pedantic(lambda: _run(kernel, main), rounds=1, iterations=1)
        finally:
            kernel.kill()

    figures.record("world.wake.p50", "wake from hibernation + state(), p50", out["wake_p50"] * 1e3, "ms",
                   target=Target("value", "<=", 5), note=f"awake call p50 {out['warm_p50'] * 1e3:.2f} ms",
                   benchmark=benchmark)
    figures.record("world.wake.p99", "wake from hibernation + state(), p99", out["wake_p99"] * 1e3, "ms",
                   benchmark=benchmark)
    figures.record("world.rss.hibernated", "resident memory per hibernated world", out["per_hibernated"] / 1024,
                   "KiB", benchmark=benchmark)
    figures.record("world.rss.awake", "resident memory per awake world", out["per_awake"] / 1024, "KiB",
                   benchmark=benchmark)
    figures.record("world.rss.10k", f"kernel RSS with {hibernated:,} hibernated worlds", out["hibernated_rss"] / 2**20,
                   "MiB", target=Target("value", "<=", 2048), benchmark=benchmark)


@pytest.fixture(scope="module")
def python_cbor_kernel() -> Iterator[KernelProcess]:
    """A kernel whose ``import cbor2`` and C encoder import fail, so canonical CBOR runs on the pure Python codec."""
    with tempfile.TemporaryDirectory(prefix="aosbc-", dir="/tmp") as path:
        shim = os.path.join(path, "shim")
        os.makedirs(shim)
        with open(os.path.join(shim, "cbor2.py"), "w") as f:
            f.write("raise ImportError('cbor2 hidden: the pure Python CBOR baseline')\n")
        with open(os.path.join(shim, "sitecustomize.py"), "w") as f:  # a None entry makes the import fail
            f.write("import sys\nsys.modules['aos.kernel.world._ccbor'] = None\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (shim, os.environ.get("PYTHONPATH")) if p))
        proc = KernelProcess(os.path.join(path, "k"), env=env, extra_args=["--idle-seconds", "3600"])
        os.makedirs(proc.data_dir)
        proc.start()
        try:
            yield proc
        finally:
            proc.kill()


@pytest.mark.timeout(1800)
def test_native_cbor(benchmark: Any, figures: Figures, world_kernel: KernelProcess,
                     python_cbor_kernel: KernelProcess) -> None:
    """Events/s with native CBOR (cbor2 decoding, C encoding) vs the pure Python codec, one world and 100 worlds."""
    doc, wasm = counter_doc("python")
    rates: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}  # kernel CPU microseconds per event: steadier than rates here

    def workload(kernel: KernelProcess, name: str) -> None:
        async def pump(key: str, worlds: list[Any], events: int) -> None:
            before = benchlib.process_cpu(kernel.proc.pid)
            rates.setdefault(key, []).append(await _pump(worlds, events))
            cpu.setdefault(key, []).append((benchlib.process_cpu(kernel.proc.pid) - before) / events * 1e6)

        async def main(admin: Any) -> None:
            worlds_cap = await admin.worlds(f"bench-cbor-{time.monotonic_ns()}")
            await pump(f"{name}.1", [(await worlds_cap.create(doc, wasm))[0]], int(20_000 * SCALE))
            many = [(await worlds_cap.create(doc, wasm))[0] for _ in range(100)]
            await pump(f"{name}.100", many, int(40_000 * SCALE))

        _run(kernel, main)

    def rounds() -> None:
        for _ in range(2):
            for kernel, name in ((python_cbor_kernel, "python"), (world_kernel, "native"),
                                 (world_kernel, "native"), (python_cbor_kernel, "python")):
                workload(kernel, name)

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    for n, label in (("1", "one python counter world"), ("100", "100 counter worlds")):
        python, native = max(rates[f"python.{n}"]), max(rates[f"native.{n}"])
        figures.record(f"world.cbor.python.{n}", f"{label}, pure Python CBOR", python, "events/s",
                       benchmark=benchmark)
        figures.record(f"world.cbor.native.{n}", f"{label}, native CBOR", native, "events/s",
                       baseline=f"world.cbor.python.{n}", paired=python, benchmark=benchmark)
        py_us, native_us = min(cpu[f"python.{n}"]), min(cpu[f"native.{n}"])
        figures.record(f"world.cbor.python.{n}.cpu", f"{label}, pure Python CBOR, kernel CPU", py_us,
                       "us/event", benchmark=benchmark)
        figures.record(f"world.cbor.native.{n}.cpu", f"{label}, native CBOR, kernel CPU", native_us,
                       "us/event", baseline=f"world.cbor.python.{n}.cpu", paired=py_us, benchmark=benchmark)

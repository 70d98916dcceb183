"""Kernel benchmarks: CAS and journal over Cap'n Proto, as ratios to a raw pycapnp echo.

Run: ``.venv/bin/python -m pytest bench/bench_kernel.py -q --benchmark-disable-gc``
(about 75 s). Layout, identical for the baseline and the kernel: the server
is its own process on stock asyncio behind a unix socket; the client is the
pytest process with N coroutines, each awaiting one call at a time (N calls
in flight), calling the raw capability (``.cap``) so the client side is the
same shape for echo and kernel. Each workload runs ``ROUNDS`` times and the
fastest round counts: on a shared machine noise only ever slows a run down.
Where a figure is a ratio to echo, the echo workload with the same N runs
*alongside* it (one untimed echo round before each timed round) and the
ratio uses that echo, so load changes during the run cancel out.

Figures (the table at the end of the run shows values, ratios, targets and
the server's and client's CPU microseconds per call):

- ``echo.N``: raw pycapnp echo calls/s with N in flight (100-byte payload).
- ``echo.append.256`` / ``echo.appendGrouped.256``: Journal.append-shaped
  calls to the echo server, replied at once / after a no-op group turn:
  what pycapnp alone costs for that call shape, without kernel or disk.
- ``cas.get.N`` / ``cas.put.N``: 1 KiB blobs, one RPC per call; put stores
  a new blob each call, so each is a durable write. ``cas.getfacade.256``
  is ``CasClient.get`` as shipped (one get; chunked reads only past one message).
- ``rocksdb.batch64`` / ``rocksdb.batch1``: rocksdict synced ``WriteBatch``
  of 64 records / of 1 record, in-process, no RPC: the storage ceiling.
- ``journal.append.N``: N writers, each appending one ~100-byte record per
  call to its own world with its own expected seq; calls/s, records per
  synced write, p50/p99 latency.
- ``journal.batch64.N``: N writers appending 64 records per call; records/s.
- ``uvloop.*``: the same client workload with the client on stock asyncio
  and on uvloop, rounds interleaved (the server is always stock asyncio).

Scale every call count with ``AOS_BENCH_SCALE`` (e.g. 0.2 for a smoke run)
and the repetitions with ``AOS_BENCH_ROUNDS``.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import benchlib
import pytest
import rocksdict
from aos.kernel.client import Connection, KernelClient
from benchlib import Figures, Result, Target

from aos.testing import KernelProcess

SCALE = float(os.environ.get("AOS_BENCH_SCALE", "1"))
ROUNDS = int(os.environ.get("AOS_BENCH_ROUNDS", "3"))
INFLIGHT = (1, 16, 256)
RECORD = 100  # bytes per journal record
BLOB = 1024  # bytes per CAS blob


def calls_for(inflight: int) -> int:
    """Calls per round: bounded so one round takes about a second."""
    base = {1: 1500, 16: 8000, 256: 10000}.get(inflight, 8000)
    return max(inflight, int(base * SCALE))


_names = itertools.count()


def fresh(prefix: str) -> str:
    """A name never used before in this kernel (worlds, blobs)."""
    return f"{prefix}{next(_names)}"


def measure(
    benchmark: Any, once: Callable[[], Result], rounds: int = ROUNDS, alongside: Callable[[], Result] | None = None
) -> tuple[Result, Result | None]:
    """Run ``once`` ``rounds`` times under pytest-benchmark; return the fastest round.

    With ``alongside`` (the baseline workload), each timed round is preceded
    by an untimed round of the baseline, and the fastest baseline round is
    returned too: the ratio of the two then compares like with like even
    when the machine's load changes during the run.
    """
    results: list[Result] = []
    baseline: list[Result] = []
    setup = (lambda: baseline.append(alongside())) if alongside is not None else None
    benchmark.pedantic(lambda: results.append(once()), setup=setup, rounds=rounds, iterations=1)
    fastest = benchlib.best(results)
    info = benchmark.extra_info
    info["rounds_rate"] = [round(r.rate, 1) for r in results]
    info["calls_per_round"] = fastest.calls
    info["inflight"] = fastest.inflight
    if baseline:
        info["baseline_rounds_rate"] = [round(r.rate, 1) for r in baseline]
    return fastest, (benchlib.best(baseline) if baseline else None)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def pid_of(server: KernelProcess) -> int | None:
    return server.proc.pid if server.proc is not None else None


def with_kernel(
    kernel: KernelProcess, work: Callable[[KernelClient], Coroutine[Any, Any, Result]], loop: str = "asyncio"
) -> Result:
    async def main() -> Result:
        conn = await Connection.open(kernel.address)
        try:
            return await work(await conn.restore_kernel(kernel.admin_token))
        finally:
            conn.close()

    return benchlib.run_client(main, loop)


# --- workloads --------------------------------------------------------------------------------


def echo_run(server: benchlib.EchoProcess, inflight: int, calls: int | None = None, loop: str = "asyncio") -> Result:
    calls = calls_for(inflight) if calls is None else calls
    payload = os.urandom(RECORD)

    async def main() -> Result:
        client = await benchlib.open_unix(server.address)
        try:
            cap = client.bootstrap().cast_as(benchlib.echo_capnp.Echo)
            return await benchlib.drive(
                benchlib.echo_calls(cap, inflight, payload),
                calls,
                warmup=2 * inflight + 200,
                record_latency=True,
                server_pid=pid_of(server),
            )
        finally:
            client.close()

    return benchlib.run_client(main, loop)


def wire_run(server: benchlib.EchoProcess, method: str, inflight: int, calls: int | None = None) -> Result:
    """Journal-append-shaped calls to the echo server (``append`` or ``appendGrouped``): no kernel, no disk."""
    calls = calls_for(inflight) if calls is None else calls
    records = [os.urandom(RECORD)]

    async def main() -> Result:
        client = await benchlib.open_unix(server.address)
        try:
            cap = client.bootstrap().cast_as(benchlib.echo_capnp.Echo)
            send = getattr(cap, method)

            def writer() -> benchlib.Call:
                world, seq = fresh("w"), 0

                async def call() -> None:
                    nonlocal seq
                    await send(world, seq, 0, records)
                    seq += 1

                return call

            return await benchlib.drive(
                [writer() for _ in range(inflight)],
                calls,
                warmup=2 * inflight + 200,
                server_pid=pid_of(server),
            )
        finally:
            client.close()

    return benchlib.run_client(main)


def append_run(
    kernel: KernelProcess, writers: int, calls: int, per_call: int = 1, loop: str = "asyncio"
) -> Result:
    """``writers`` coroutines, each appending ``per_call`` records per call to its own new world."""

    async def work(k: KernelClient) -> Result:
        journal = (await k.journal("bench")).cap
        records = [os.urandom(RECORD) for _ in range(per_call)]

        def writer() -> benchlib.Call:
            world, seq = fresh("w"), 0

            async def call() -> None:
                nonlocal seq
                await journal.append(world, seq, 0, records)
                seq += per_call

            return call

        return await benchlib.drive(
            [writer() for _ in range(writers)],
            calls,
            warmup=2 * writers + 50,
            items_per_call=per_call,
            record_latency=True,
            server_pid=pid_of(kernel),
        )

    return with_kernel(kernel, work, loop)


def cas_get_run(kernel: KernelProcess, inflight: int, calls: int, facade: bool = False) -> Result:
    async def work(k: KernelClient) -> Result:
        cas = await k.cas("bench")
        addresses = [await cas.put(os.urandom(BLOB)) for _ in range(64)]

        def reader(i: int) -> benchlib.Call:
            address = addresses[i % len(addresses)]
            if facade:

                async def call() -> None:
                    await cas.get(address)  # the client facade: stat, then get

            else:

                async def call() -> None:
                    await cas.cap.get(address)

            return call

        return await benchlib.drive(
            [reader(i) for i in range(inflight)], calls, warmup=2 * inflight + 200, server_pid=pid_of(kernel)
        )

    return with_kernel(kernel, work)


def cas_put_run(kernel: KernelProcess, inflight: int, calls: int) -> Result:
    async def work(k: KernelClient) -> Result:
        cas = (await k.cas("bench")).cap
        tail = os.urandom(BLOB - 16)

        def writer() -> benchlib.Call:
            async def call() -> None:
                # a blob never stored before, so every put is a durable write
                await cas.put(fresh("b").encode().ljust(16, b".") + tail)

            return call

        return await benchlib.drive(
            [writer() for _ in range(inflight)], calls, warmup=2 * inflight + 200, server_pid=pid_of(kernel)
        )

    return with_kernel(kernel, work)


async def commit_stats(k: KernelClient) -> tuple[int, int]:
    status = await k.status()
    return int(status["commitTurns"]), int(status["committedRecords"])


def kernel_stats(kernel: KernelProcess) -> tuple[int, int]:
    async def main() -> tuple[int, int]:
        conn = await Connection.open(kernel.address)
        try:
            return await commit_stats(await conn.restore_kernel(kernel.admin_token))
        finally:
            conn.close()

    return benchlib.run_client(main)


# --- the echo baseline ------------------------------------------------------------------------


@pytest.mark.parametrize("inflight", INFLIGHT)
def test_echo(benchmark: Any, figures: Figures, echo_server: benchlib.EchoProcess, inflight: int) -> None:
    """Raw pycapnp echo between two processes: the baseline for every ratio below."""
    result, _ = measure(benchmark, lambda: echo_run(echo_server, inflight))
    figures.record(
        f"echo.{inflight}", f"echo, {inflight} in flight", result.rate, "calls/s", result=result, benchmark=benchmark
    )
    if inflight == 1:
        p50 = result.percentile(50) * 1e3
        figures.record("echo.1.p50", "echo latency p50, 1 in flight", p50, "ms", benchmark=benchmark)


@pytest.mark.parametrize("method", ("append", "appendGrouped"))
def test_echo_append_shaped(
    benchmark: Any, figures: Figures, echo_server: benchlib.EchoProcess, method: str
) -> None:
    """What pycapnp alone costs for a Journal.append-shaped call, replied at once or after a no-op group turn.

    These split the gap between ``echo`` and ``journal.append``: the first is
    the wire shape (four params, a list of Data), the second adds the
    deferred reply of group commit; the rest is kernel work and the disk.
    """
    result, echo = measure(
        benchmark, lambda: wire_run(echo_server, method, 256), alongside=lambda: echo_run(echo_server, 256)
    )
    label = {
        "append": "append-shaped echo (reply at once), 256 in flight",
        "appendGrouped": "append-shaped echo (reply after a no-op group turn), 256 in flight",
    }[method]
    figures.record(
        f"echo.{method}.256", label, result.rate, "calls/s", baseline="echo.256", paired=echo and echo.rate,
        note="no kernel, no disk", result=result, benchmark=benchmark,
    )


# --- CAS --------------------------------------------------------------------------------------


@pytest.mark.parametrize("inflight", (16, 256))
def test_cas_get(
    benchmark: Any, figures: Figures, echo_server: benchlib.EchoProcess, kernel_process: KernelProcess, inflight: int
) -> None:
    """``Cas.get`` of a 1 KiB blob, one RPC per call (the kernel re-hashes the blob on every read)."""
    result, echo = measure(
        benchmark,
        lambda: cas_get_run(kernel_process, inflight, calls_for(inflight)),
        alongside=lambda: echo_run(echo_server, inflight),
    )
    figures.record(
        f"cas.get.{inflight}", f"CAS get 1 KiB, {inflight} in flight", result.rate, "calls/s",
        baseline=f"echo.{inflight}", paired=echo and echo.rate, target=Target("ratio", ">=", 0.7),
        result=result, benchmark=benchmark,
    )


def test_cas_get_facade(
    benchmark: Any, figures: Figures, echo_server: benchlib.EchoProcess, kernel_process: KernelProcess
) -> None:
    """``CasClient.get`` as shipped: one get for a small blob, through the facade."""
    result, echo = measure(
        benchmark,
        lambda: cas_get_run(kernel_process, 256, calls_for(256) // 2, facade=True),
        alongside=lambda: echo_run(echo_server, 256),
        rounds=max(1, ROUNDS - 1),
    )
    figures.record(
        "cas.getfacade.256", "CAS get 1 KiB via CasClient.get, 256 in flight", result.rate, "calls/s",
        baseline="echo.256", paired=echo and echo.rate, note="one get; chunked read only for blobs over one message", result=result, benchmark=benchmark,
    )


@pytest.mark.parametrize("inflight", (16, 256))
def test_cas_put(
    benchmark: Any, figures: Figures, echo_server: benchlib.EchoProcess, kernel_process: KernelProcess, inflight: int
) -> None:
    """``Cas.put`` of a new 1 KiB blob each call: every call is a durable (group-committed) write."""
    result, echo = measure(
        benchmark,
        lambda: cas_put_run(kernel_process, inflight, calls_for(inflight)),
        alongside=lambda: echo_run(echo_server, inflight),
    )
    figures.record(
        f"cas.put.{inflight}", f"CAS put 1 KiB (new blob, durable), {inflight} in flight", result.rate, "calls/s",
        baseline=f"echo.{inflight}", paired=echo and echo.rate, result=result, benchmark=benchmark,
    )


# --- storage ceiling --------------------------------------------------------------------------


class SyncedBatches:
    """rocksdict in this process, no RPC: the kernel's storage ceiling (synced WriteBatches of 100-byte values)."""

    def __init__(self, path: str) -> None:
        self.db = rocksdict.Rdict(os.path.join(path, "db"), options=rocksdict.Options(raw_mode=True))
        self.sync = rocksdict.WriteOptions()
        self.sync.sync = True
        self.value = os.urandom(RECORD)
        self.keys = itertools.count()

    def run(self, size: int, count: int) -> Result:
        """``count`` synced writes of ``size`` records each."""
        start = time.perf_counter()
        for _ in range(count):
            batch = rocksdict.WriteBatch(raw_mode=True)
            for _ in range(size):
                batch.put(next(self.keys).to_bytes(8, "big"), self.value)
            self.db.write(batch, self.sync)
        return Result(count, time.perf_counter() - start, 1, size)


@pytest.fixture(scope="module")
def synced_batches() -> Iterator[SyncedBatches]:
    with tempfile.TemporaryDirectory(prefix="aosbr-", dir="/tmp") as path:
        ceiling = SyncedBatches(path)
        ceiling.run(64, 20)  # warm up
        try:
            yield ceiling
        finally:
            ceiling.db.close()


def ceiling_run(ceiling: SyncedBatches, size: int) -> Result:
    return ceiling.run(size, max(20, int((1000 if size > 1 else 600) * SCALE)))


def test_rocksdb_batch(benchmark: Any, figures: Figures, synced_batches: SyncedBatches) -> None:
    """Synced WriteBatch of 64 records, and of 1 record (one fsync per record), in-process."""
    result, single = measure(
        benchmark, lambda: ceiling_run(synced_batches, 64), alongside=lambda: ceiling_run(synced_batches, 1)
    )
    figures.record(
        "rocksdb.batch64", "RocksDB synced WriteBatch of 64, in-process", result.items_rate, "records/s",
        note="storage ceiling", benchmark=benchmark,
    )
    assert single is not None
    figures.record(
        "rocksdb.batch1", "RocksDB synced write of 1 record, in-process", single.items_rate, "records/s",
        note="one fsync per record", benchmark=benchmark,
    )


# --- journal ----------------------------------------------------------------------------------


@pytest.mark.parametrize("writers", INFLIGHT)
def test_journal_append(
    benchmark: Any, figures: Figures, echo_server: benchlib.EchoProcess, kernel_process: KernelProcess, writers: int
) -> None:
    """N writers, one ~100-byte record per call, each on its own world; durable on return."""
    turns0, records0 = kernel_stats(kernel_process)
    result, echo = measure(
        benchmark,
        lambda: append_run(kernel_process, writers, calls_for(writers)),
        alongside=lambda: echo_run(echo_server, writers),
    )
    turns1, records1 = kernel_stats(kernel_process)
    per_turn = (records1 - records0) / max(1, turns1 - turns0)
    benchmark.extra_info["records_per_commit_turn"] = round(per_turn, 1)
    p50, p99 = result.percentile(50) * 1e3, result.percentile(99) * 1e3
    benchmark.extra_info["latency_p50_ms"] = round(p50, 3)
    benchmark.extra_info["latency_p99_ms"] = round(p99, 3)
    figures.record(
        f"journal.append.{writers}", f"journal append 1 rec/call, {plural(writers, 'writer')}", result.rate, "calls/s",
        baseline=f"echo.{writers}", paired=echo and echo.rate,
        target=Target("ratio", ">=", 0.6) if writers == 256 else None,
        note=f"{per_turn:.1f} rec/sync, p50 {p50:.2f} ms, p99 {p99:.2f} ms", result=result, benchmark=benchmark,
    )
    if writers == 1:
        figures.record(
            "journal.append.1.p50", "journal append latency p50, 1 writer", p50, "ms",
            target=Target("value", "<=", 2.0), benchmark=benchmark,
        )
        figures.record("journal.append.1.p99", "journal append latency p99, 1 writer", p99, "ms", benchmark=benchmark)


@pytest.mark.parametrize("writers", (1, 16))
def test_journal_append_batch(
    benchmark: Any, figures: Figures, kernel_process: KernelProcess, synced_batches: SyncedBatches, writers: int
) -> None:
    """64 records (~100 bytes each) per call: durable records/s, beside the in-process RocksDB ceiling."""
    calls = max(writers, int((400 if writers == 1 else 2000) * SCALE))
    result, ceiling = measure(
        benchmark,
        lambda: append_run(kernel_process, writers, calls, per_call=64),
        alongside=lambda: ceiling_run(synced_batches, 64),
    )
    figures.record(
        f"journal.batch64.{writers}", f"journal append 64 rec/call, {plural(writers, 'writer')}", result.items_rate,
        "records/s", baseline="rocksdb.batch64", paired=ceiling and ceiling.items_rate,
        target=Target("value", ">=", 100_000) if writers == 16 else None,
        note=f"{result.rate:,.0f} calls/s", result=result, benchmark=benchmark,
    )


# --- uvloop for clients -----------------------------------------------------------------------


@pytest.mark.parametrize("workload", ("echo.1", "echo.256", "journal.append.256"))
def test_client_loop(
    benchmark: Any, figures: Figures, echo_server: benchlib.EchoProcess, kernel_process: KernelProcess, workload: str
) -> None:
    """Same client workload on stock asyncio and on uvloop, rounds interleaved; server on asyncio."""
    name, _, n = workload.rpartition(".")
    inflight = int(n)

    def once(loop: str) -> Result:
        if name == "echo":
            return echo_run(echo_server, inflight, calls_for(inflight), loop)
        return append_run(kernel_process, inflight, calls_for(inflight), loop=loop)

    runs: dict[str, list[Result]] = {loop: [] for loop in benchlib.LOOPS}
    turn = itertools.count()

    def interleaved() -> None:
        order = benchlib.LOOPS if next(turn) % 2 == 0 else tuple(reversed(benchlib.LOOPS))
        for loop in order:
            runs[loop].append(once(loop))

    benchmark.pedantic(interleaved, rounds=ROUNDS, iterations=1)
    for loop in benchlib.LOOPS:
        fastest = benchlib.best(runs[loop])
        benchmark.extra_info[f"{loop}.rounds_rate"] = [round(r.rate, 1) for r in runs[loop]]
        key = f"uvloop.{workload}.{loop}"
        base = f"uvloop.{workload}.asyncio" if loop == "uvloop" else None
        label = f"{workload} client on {loop}"
        figures.record(key, label, fastest.rate, "calls/s", baseline=base, result=fastest, benchmark=benchmark)
        if inflight == 1:
            p50 = fastest.percentile(50) * 1e3
            base_p50 = base and base + ".p50"
            figures.record(key + ".p50", label + ", latency p50", p50, "ms", baseline=base_p50, benchmark=benchmark)

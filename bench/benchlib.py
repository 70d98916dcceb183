"""Shared machinery for the benchmarks in ``bench/``: load generators, the
client event loop choice, the echo baseline server, and the figures table.

Every throughput figure here is *closed loop*: N coroutines in one client
process, each awaiting its own call before issuing the next, so exactly N
calls are in flight. The echo baseline and the kernel workloads use the same
driver, so their ratio isolates what the server side costs.

``bench/conftest.py`` puts this directory on ``sys.path``; benchmark modules
import it as ``import benchlib``.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import capnp

from aos.testing import KernelProcess

T = TypeVar("T")
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
LOOPS = ("asyncio", "uvloop")

Call = Callable[[], Awaitable[Any]]


# --- running a client -----------------------------------------------------------------------


def run_client(main: Callable[[], Coroutine[Any, Any, T]], loop: str = "asyncio") -> T:
    """Run ``main()`` on a fresh event loop of the given kind, with pycapnp's KJ loop attached.

    Only client code runs here: a pycapnp *server* must stay on stock asyncio.
    """
    if loop == "asyncio":
        factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    elif loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    else:
        raise ValueError(f"unknown loop {loop!r}; use one of {LOOPS}")

    async def attached() -> T:
        return await capnp.run(main())

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(attached())


# --- closed-loop driver ---------------------------------------------------------------------


@dataclass
class Result:
    """One measured run: ``calls`` completed in ``seconds`` with ``inflight`` outstanding."""

    calls: int
    seconds: float
    inflight: int
    items_per_call: int = 1
    latencies: list[float] = field(default_factory=list)  # seconds, per call, when recorded
    server_cpu: float | None = None  # CPU seconds the server process used while timed
    client_cpu: float | None = None  # CPU seconds this (client) process used while timed

    @property
    def server_us(self) -> float | None:
        """Server CPU microseconds per call: far less noisy than a rate on a shared machine."""
        return None if self.server_cpu is None else self.server_cpu / self.calls * 1e6

    @property
    def client_us(self) -> float | None:
        return None if self.client_cpu is None else self.client_cpu / self.calls * 1e6

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    @property
    def items_rate(self) -> float:
        return self.calls * self.items_per_call / self.seconds

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


async def _worker(call: Call, count: int, latencies: list[float] | None) -> None:
    if latencies is None:
        for _ in range(count):
            await call()
    else:
        clock = time.perf_counter
        for _ in range(count):
            start = clock()
            await call()
            latencies.append(clock() - start)


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) of ``pid``, or of this process."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


async def drive(
    calls: list[Call],
    total: int,
    *,
    warmup: int = 0,
    items_per_call: int = 1,
    record_latency: bool = False,
    server_pid: int | None = None,
) -> Result:
    """Run ``total`` calls spread evenly over ``len(calls)`` concurrent workers.

    Each element of ``calls`` is one worker's "make one call and await it"
    function (it may keep its own state, like a journal writer's next seq).
    ``warmup`` calls (spread the same way) run first and are not timed. With
    ``server_pid``, the server's and this process's CPU time over the timed
    part are recorded too.
    """
    n = len(calls)
    if warmup:
        per_warm = max(1, warmup // n)
        await asyncio.gather(*(_worker(c, per_warm, None) for c in calls))
    per = max(1, total // n)
    latencies: list[float] | None = [] if record_latency else None
    server0 = process_cpu(server_pid) if server_pid else 0.0
    client0 = process_cpu()
    start = time.perf_counter()
    await asyncio.gather(*(_worker(c, per, latencies) for c in calls))
    seconds = time.perf_counter() - start
    client = process_cpu() - client0
    server = process_cpu(server_pid) - server0 if server_pid else None
    return Result(per * n, seconds, n, items_per_call, latencies or [], server, client)


def best(results: list[Result]) -> Result:
    """The fastest of several repetitions: on a shared machine noise only ever slows a run down."""
    return max(results, key=lambda r: r.rate)


# --- the echo baseline ----------------------------------------------------------------------

echo_capnp = capnp.load(os.path.join(BENCH_DIR, "echo.capnp"))


@dataclass
class EchoProcess(KernelProcess):
    """``bench/echo_server.py`` in a subprocess; started and awaited exactly like a kernel."""

    @property
    def socket(self) -> str:
        return os.path.join(self.data_dir, "echo.sock")

    def command(self) -> list[str]:
        return [sys.executable, os.path.join(BENCH_DIR, "echo_server.py"), f"unix:{self.socket}"]


async def open_unix(address: str) -> Any:
    """A ``TwoPartyClient`` over ``unix:PATH``, shaped like ``aos.kernel.client.Connection``."""
    kind, _, path = address.partition(":")
    assert kind == "unix", address
    stream = await capnp.AsyncIoStream.create_unix_connection(path)
    return capnp.TwoPartyClient(stream, traversal_limit_in_words=(64 << 20) // 8)


def echo_calls(cap: Any, inflight: int, payload: bytes) -> list[Call]:
    def make() -> Call:
        async def call() -> None:
            await cap.echo(payload)

        return call

    return [make() for _ in range(inflight)]


# --- figures --------------------------------------------------------------------------------


@dataclass
class Target:
    """A goal for a figure: ``on`` is "value" or "ratio"; ``op`` is ">=" or "<="."""

    on: str
    op: str
    bound: float

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        x = value if self.on == "value" else ratio
        if x is None or math.isnan(x):
            return None
        return x >= self.bound if self.op == ">=" else x <= self.bound

    def __str__(self) -> str:
        bound = f"{self.bound:g}" if self.on == "ratio" else _num(self.bound)
        return f"{self.on} {self.op} {bound}"


@dataclass
class Figure:
    key: str  # unique within the session, e.g. "journal.append.256"
    label: str
    value: float
    unit: str
    baseline: str | None = None  # key of the figure this one is divided by
    paired: float | None = None  # the baseline's value measured alongside this figure, if it was
    target: Target | None = None
    note: str = ""
    server_us: float | None = None
    client_us: float | None = None


class Figures:
    """Everything the benchmarks measured in this session, for the summary table.

    A figure's ratio is ``value / baseline``. When the baseline workload was
    measured alongside it (rounds interleaved in the same test: ``paired``),
    that value is used, so slow phases of a noisy machine cancel out;
    otherwise the session's figure under the ``baseline`` key is.
    """

    def __init__(self) -> None:
        self.items: dict[str, Figure] = {}

    def record(
        self,
        key: str,
        label: str,
        value: float,
        unit: str,
        *,
        baseline: str | None = None,
        paired: float | None = None,
        target: Target | None = None,
        note: str = "",
        result: Result | None = None,
        benchmark: Any = None,
    ) -> Figure:
        figure = Figure(key, label, value, unit, baseline, paired, target, note)
        if result is not None:
            figure.server_us, figure.client_us = result.server_us, result.client_us
        self.items[key] = figure
        if benchmark is not None:
            info = benchmark.extra_info
            info[key] = round(value, 3)
            info[key + ".unit"] = unit
            ratio = self.ratio(figure)
            if ratio is not None:
                info[key + ".ratio"] = round(ratio, 3)
                info[key + ".baseline"] = baseline + (" (paired)" if paired is not None else "")
            if paired is not None:
                info[key + ".paired_baseline"] = round(paired, 3)
            if target is not None:
                info[key + ".target"] = str(target)
            if figure.server_us is not None:
                info[key + ".server_cpu_us_per_call"] = round(figure.server_us, 1)
            if figure.client_us is not None:
                info[key + ".client_cpu_us_per_call"] = round(figure.client_us, 1)
        return figure

    def ratio(self, figure: Figure) -> float | None:
        if figure.baseline is None:
            return None
        base = figure.paired
        if base is None:
            found = self.items.get(figure.baseline)
            base = found.value if found is not None else None
        if not base:
            return None
        return figure.value / base

    def table(self) -> list[str]:
        rows = [("figure", "value", "unit", "vs", "ratio", "target", "result", "srv us/call", "cli us/call")]
        for figure in self.items.values():
            ratio = self.ratio(figure)
            met = figure.target.met(figure.value, ratio) if figure.target else None
            vs = figure.baseline or ""
            if figure.paired is not None:
                vs += f" ({_num(figure.paired)} alongside)"
            rows.append(
                (
                    figure.label + (f" [{figure.note}]" if figure.note else ""),
                    _num(figure.value),
                    figure.unit,
                    vs,
                    f"{ratio:.2f}" if ratio is not None else "",
                    str(figure.target) if figure.target else "",
                    "" if figure.target is None else ("n/a" if met is None else "PASS" if met else "MISS"),
                    "" if figure.server_us is None else f"{figure.server_us:.0f}",
                    "" if figure.client_us is None else f"{figure.client_us:.0f}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        left = (0, 2, 3, 5)
        lines = []
        for n, row in enumerate(rows):
            cells = [cell.ljust(w) if i in left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
            lines.append("  ".join(cells).rstrip())
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return lines


def _num(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"

"""Interleaved A/B of one kernel change on the agent turn of ``bench_agent.py``.

Two kernels, started with environments A and B, and the plain loop take turns (the order rotating
every turn) against one provider twin, so a machine whose speed drifts slows all three alike; what
is printed is the median turn of each and B's ratio to A. Separate benchmark runs on a shared
2-core machine differ by more than the few percent most changes are worth: this is how the choices
in the README's agent-turn bullet were made.

A and B are comma-separated ``NAME=VALUE`` lists for the kernels' environments; a change under test
reads its switch from there while it is being measured (and the switch goes before it is committed)::

    .venv/bin/python bench/ab_agent_turn.py "AOS_X=0" "AOS_X=1"            # TURNS=60 by default

Every turn must complete with ok receipts only (an effect that fails fast would look like a win).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_agent  # noqa: E402
import benchlib  # noqa: E402
from aos.adapters.llm.testing import ProviderTwin, Turn  # noqa: E402
from aos.agents import COMMAND, Limits, build_world, coding_agent, input_event, transcript  # noqa: E402
from aos.kernel.client import Connection  # noqa: E402
from aos.kernel.world.records import record_from_value  # noqa: E402

from aos.testing import KernelProcess  # noqa: E402

WARMUP = 3


def environment(spec: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in spec.split(",") if item)


class KernelSession:
    """A kernel with one coding-agent session world, and the turns it has ended."""

    def __init__(self, kernel: KernelProcess) -> None:
        self.kernel = kernel
        self.ends: list[str] = []
        self.changed = asyncio.Event()
        self.failed: list[str] = []

    async def open(self, repo: str, name: str) -> None:
        self.conn = await Connection.open(self.kernel.address)
        admin = await self.conn.restore_kernel(self.kernel.admin_token)
        doc, self.start = build_world(coding_agent(bench_agent.PROVIDER), repo, bench_agent.PROVIDER, None,
                                      session="main", task="turn 0", limits=Limits(enable_loop_detection=False))
        self.world, _ = await (await admin.worlds("ab")).create(doc, {}, name, "A/B")
        self.subscription = await self.world.tail(0, self.on_record)

    async def on_record(self, seq: int, value: dict[str, Any]) -> None:
        value.pop("at", None)
        if value.get("kind") == "receipt" and value.get("status") != "ok":
            self.failed.append(str(value.get("payload"))[:200])
        for event in transcript([record_from_value(value)], "main"):
            if event.kind in ("processing_end", "error"):
                self.ends.append(event.kind)
                self.changed.set()

    async def turn(self, i: int) -> float:
        begin = time.perf_counter()
        await self.world.send(COMMAND, self.start if i == 0 else input_event("main", f"turn {i}"))
        while len(self.ends) < i + 1:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 30)
        return time.perf_counter() - begin


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = sys.argv[1], sys.argv[2]
    turns = int(os.environ.get("TURNS", "60"))
    with tempfile.TemporaryDirectory(prefix="aosab-", dir="/tmp") as tmp:
        repo = os.path.join(tmp, "repo")
        os.makedirs(repo)
        small = os.path.join(repo, "small.txt")
        with open(small, "w") as f:
            f.write(bench_agent.SMALL)
        twin = ProviderTwin(bench_agent.PROVIDER, api_key=bench_agent.KEY).start()
        twin.record = False
        twin.repeat(Turn(bench_agent.Model(small)))
        base = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
        base.update({"ANTHROPIC_BASE_URL": twin.base_url, "ANTHROPIC_API_KEY": bench_agent.KEY})
        kernels = []
        try:
            for i, spec in enumerate((a, b)):
                kernel = KernelProcess(os.path.join(tmp, f"k{i}"), env={**base, **environment(spec)},
                                       extra_args=["--grant-host", repo, "--health", "", "--idle-seconds", "3600"])
                os.makedirs(kernel.data_dir)
                kernels.append(kernel.start())
            print(benchlib.run_client(lambda: measure(kernels, repo, twin, turns, (a, b))))
        finally:
            for kernel in kernels:
                kernel.kill()
            twin.stop()


async def measure(kernels: list[KernelProcess], repo: str, twin: ProviderTwin, turns: int,
                  names: tuple[str, str]) -> str:
    sessions = [KernelSession(kernel) for kernel in kernels]
    for i, session in enumerate(sessions):
        await session.open(repo, f"w{i}")
    plain = bench_agent.PlainAgent(twin.client(), sessions[0].start["config"])

    async def plain_turn(i: int) -> float:
        begin = time.perf_counter()
        assert await plain.turn(f"turn {i}") == bench_agent.FINAL
        return time.perf_counter() - begin

    times: dict[str, list[float]] = {"A": [], "B": [], "plain": []}
    for i in range(WARMUP + turns):
        order = [("A", sessions[0].turn), ("B", sessions[1].turn), ("plain", plain_turn)]
        for name, turn in order[i % 3:] + order[:i % 3]:
            took = await turn(i)
            if i >= WARMUP:
                times[name].append(took)
    await plain.client.close()
    for session in sessions:
        await session.subscription.cancel()
        session.conn.close()
    for name, session in zip(("A", "B"), sessions):
        if session.failed or any(end != "processing_end" for end in session.ends):
            raise SystemExit(f"kernel {name} failed a turn: {session.failed[:1] or session.ends[-1:]}")
    m = {name: statistics.median(v) * 1000 for name, v in times.items()}
    return (f"A {names[0]!r}: {m['A']:.2f} ms ({m['A'] / m['plain']:.2f}x plain)   "
            f"B {names[1]!r}: {m['B']:.2f} ms ({m['B'] / m['plain']:.2f}x plain)   "
            f"plain {m['plain']:.2f} ms   B/A {m['B'] / m['A']:.3f}")


if __name__ == "__main__":
    main()

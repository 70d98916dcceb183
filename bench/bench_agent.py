"""The kernel's overhead per agent turn: a coding-agent session world vs a plain Python loop, same twin.

One agent turn is one user input answered in full: an LLM call that returns two parallel tool calls
(``read_file`` of a small file and ``shell`` ``true``), both tools run, and a second LLM call that
returns the final text. Through the kernel that is the session world's workflow: every command,
intent, receipt and session event journaled, the tools run as ``host.fs`` / ``host.exec`` effects,
the LLM calls as ``sys/llm.generate@1`` effects; the turn's time is the wall clock from
``World.send`` of the input to its ``processing_end`` event in the world's tail. The plain loop is
the same turn with nothing in between: ``Client.complete`` on the same twin with the same system
prompt, tool definitions and growing history, the file read with ``open`` and ``bash -c true`` run
with ``asyncio.create_subprocess_exec``, both tools concurrently. Kernel and plain turns alternate
(the order flips every turn), so a busy machine slows both alike; the ratio is of the medians.

The long session (``test_long_session_turns``) is 300 such turns, each reading a 20 KB file (one LLM call
asking for it, the read, one LLM call answering): the history passes the model's window (200k tokens)
several times, so both the kernel session and the plain loop compact it (a summary call near 85% of
the window, the newest quarter kept). It reports the medians of the first and the last 20 turns: per-turn
cost must not grow with the session.

Run with ``.venv/bin/python -m pytest bench/bench_agent.py -q --benchmark-disable-gc``; scale the
turn count with ``AOS_BENCH_SCALE``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

import benchlib
import pytest
from aos.adapters.llm import Client, Message, Request, ToolDefinition
from aos.adapters.llm.streaming import stream
from aos.adapters.llm.tools import Tool
from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall, Turn
from aos.agents import (
    COMMAND,
    Limits,
    build_world,
    coding_agent,
    input_event,
    transcript,
)
from aos.agents.session import COMPACT_PROMPT
from aos.kernel.client import Connection
from aos.kernel.world.records import record_from_value
from benchlib import Figures, Target

from aos.testing import KernelProcess

SCALE = float(os.environ.get("AOS_BENCH_SCALE", "1"))
PROVIDER = "anthropic"
KEY = "sk-bench-agent-0123456789"
TURNS = max(5, int(40 * SCALE))
WARMUP = 3
FINAL = "Done: the file is read and the command ran."
SMALL = "".join(f"line {i}: the quick brown fox\n" for i in range(20))


class Model:
    """Two parallel tool calls for a request whose last message is the user's; a final text after tool results."""

    def __init__(self, small_path: str) -> None:
        self.small_path = small_path
        self.n = 0

    def __call__(self, request: Any) -> ModelTurn:
        last = (request.body.get("messages") or [{}])[-1]
        content = last.get("content")
        if isinstance(content, list) and any(block.get("type") == "tool_result" for block in content):
            return ModelTurn(text=FINAL)
        self.n += 1
        return ModelTurn(tool_calls=[
            ScriptedCall("read_file", f'{{"file_path": "{self.small_path}"}}', id=f"toolu_r{self.n}"),
            ScriptedCall("shell", '{"command": "true"}', id=f"toolu_s{self.n}"),
        ])


class PlainAgent:
    """The same turn in a plain loop: call the twin, run both tools, call it again. With ``streaming`` it
    streams each call (as the session's ``llm.generate`` does) instead of ``Client.complete``."""

    def __init__(self, client: Client, config: dict[str, Any], streaming: bool = False) -> None:
        self.client = client
        self.streaming = streaming
        self.model = config["model"]
        self.tools = [ToolDefinition(t["name"], t["description"], t["parameters"]) for t in config["tools"]]
        self.messages = [Message.system(config["system"])]

    async def turn(self, text: str) -> str:
        self.messages.append(Message.user(text))
        while True:
            response = await self.call(list(self.messages))
            self.messages.append(response.message)
            calls = response.tool_calls
            if not calls:
                return response.text
            outputs = await asyncio.gather(*(self.run_tool(call.name, call.arguments) for call in calls))
            for call, output in zip(calls, outputs):
                self.messages.append(Message.tool_result(call.id, output))

    async def call(self, messages: list[Message]) -> Any:
        if not self.streaming:
            return await self.client.complete(Request(self.model, messages, tools=self.tools))
        tools = [Tool(t.name, t.description, t.parameters) for t in self.tools]  # as the kernel's adapter does
        result = stream(self.model, messages=messages, tools=tools, client=self.client, max_tool_rounds=0)
        async for _ in result:
            pass
        return await result.response()

    async def run_tool(self, name: str, arguments: Any) -> str:
        if name == "read_file":
            with open(arguments["file_path"]) as f:  # noqa: ASYNC230 - a small local file, as cheap as it gets
                return f.read()
        proc = await asyncio.create_subprocess_exec("bash", "-c", arguments["command"],
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return out.decode() + f"\n(exit {proc.returncode})"


@pytest.mark.timeout(300)
def test_agent_turn_overhead(benchmark: Any, figures: Figures) -> None:
    """Milliseconds per agent turn (LLM round + 2 parallel tools + final LLM call) through a kernel world vs a plain loop."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aosba-", dir="/tmp") as tmp:
        repo = os.path.join(tmp, "repo")
        os.makedirs(repo)
        small = os.path.join(repo, "small.txt")
        with open(small, "w") as f:
            f.write(SMALL)
        model = Model(small)
        twin = ProviderTwin(PROVIDER, api_key=KEY).start()
        twin.record = False
        twin.repeat(Turn(model))
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
        env.update({"ANTHROPIC_BASE_URL": twin.base_url, "ANTHROPIC_API_KEY": KEY})
        kernel = KernelProcess(os.path.join(tmp, "k"), env=env,
                               extra_args=["--grant-host", repo, "--health", "", "--idle-seconds", "3600"])
        os.makedirs(kernel.data_dir)
        kernel.start()
        try:
            async def main() -> None:
                async with await Connection.open(kernel.address) as conn:
                    admin = await conn.restore_kernel(kernel.admin_token)
                    doc, start = build_world(coding_agent(PROVIDER), repo, PROVIDER, None, session="main",
                                             task="turn 0", limits=Limits(enable_loop_detection=False))
                    world, _ = await (await admin.worlds("bench-agent")).create(doc, {}, "bench1", "agent bench")
                    ends: list[str] = []
                    changed = asyncio.Event()

                    async def on_record(seq: int, value: dict[str, Any]) -> None:
                        value.pop("at", None)
                        for event in transcript([record_from_value(value)], "main"):
                            if event.kind in ("processing_end", "error", "turn_limit", "loop_detection",
                                              "session_end"):
                                ends.append(event.kind)
                                changed.set()

                    async def until_ended(count: int) -> None:
                        while len(ends) < count:
                            changed.clear()
                            await asyncio.wait_for(changed.wait(), 30)
                        assert ends[count - 1] == "processing_end", ends

                    plain = PlainAgent(twin.client(), start["config"])
                    streamed = PlainAgent(twin.client(), start["config"], streaming=True)
                    subscription = await world.tail(0, on_record)
                    clock = time.perf_counter

                    async def kernel_turn(i: int) -> float:
                        begin = clock()
                        if i == 0:
                            await world.send(COMMAND, start)
                        else:
                            await world.send(COMMAND, input_event("main", f"turn {i}"))
                        await until_ended(i + 1)
                        return clock() - begin

                    async def plain_turn(i: int) -> float:
                        begin = clock()
                        assert await plain.turn(f"turn {i}") == FINAL
                        return clock() - begin

                    async def streamed_turn(i: int) -> float:
                        begin = clock()
                        assert await streamed.turn(f"turn {i}") == FINAL
                        return clock() - begin

                    kernel_times, plain_times, streamed_times = [], [], []
                    kernel_cpu = 0.0
                    for i in range(WARMUP + TURNS):
                        order = [kernel_turn, plain_turn, streamed_turn]
                        order = order[i % 3:] + order[:i % 3]  # each goes first in turn
                        times = {}
                        for fn in order:
                            cpu = benchlib.process_cpu(kernel.proc.pid)
                            times[fn] = await fn(i)
                            if fn is kernel_turn and i >= WARMUP:
                                kernel_cpu += benchlib.process_cpu(kernel.proc.pid) - cpu
                        if i >= WARMUP:
                            kernel_times.append(times[kernel_turn])
                            plain_times.append(times[plain_turn])
                            streamed_times.append(times[streamed_turn])
                    out["kernel_cpu"] = kernel_cpu / TURNS
                    out["streamed"] = streamed_times
                    await streamed.client.close()
                    await subscription.cancel()
                    records, next_seq = await world.read_raw(0, 0)
                    while len(records) < next_seq:
                        records += (await world.read_raw(len(records), 0))[0]
                    out["kernel"], out["plain"] = kernel_times, plain_times
                    out["events"] = [e.kind for e in transcript(records, "main")]
                    out["records"] = len(records)
                    await plain.client.close()

            benchmark.pedantic(lambda: benchlib.run_client(main), rounds=1, iterations=1)
        finally:
            kernel.kill()
            twin.stop()

    turns = WARMUP + TURNS
    events = out["events"]
    assert events.count("processing_end") == turns
    assert events.count("tool_call_start") == 2 * turns
    assert events.count("assistant_text_end") == 2 * turns
    kernel_ms = statistics.median(out["kernel"]) * 1000
    plain_ms = statistics.median(out["plain"]) * 1000
    figures.record("agent.turn.plain", "agent turn in a plain Python loop (2 LLM calls, 2 tools)", plain_ms,
                   "ms/turn", benchmark=benchmark)
    figures.record("agent.turn.kernel", "agent turn through a kernel session world, journaled", kernel_ms,
                   "ms/turn", baseline="agent.turn.plain", paired=plain_ms, target=Target("ratio", "<=", 2),
                   benchmark=benchmark)
    streamed_ms = statistics.median(out["streamed"]) * 1000
    figures.record("agent.turn.plain_stream", "agent turn in a plain loop that streams its LLM calls", streamed_ms,
                   "ms/turn", benchmark=benchmark)
    figures.record("agent.turn.kernel.vs_stream", "agent turn through a kernel world vs the streaming plain loop",
                   kernel_ms, "ms/turn", baseline="agent.turn.plain_stream", paired=streamed_ms, benchmark=benchmark)
    early, late = out["kernel"][:10], out["kernel"][-10:]
    growth = (statistics.median(late) - statistics.median(early)) * 1000 / max(1, TURNS - 10)
    figures.record("agent.turn.kernel.growth", "kernel turn time added per earlier turn in the session",
                   growth, "ms/turn", note="history-proportional cost", benchmark=benchmark)
    figures.record("agent.turn.kernel_cpu", "kernel process CPU per agent turn", out["kernel_cpu"] * 1000,
                   "ms/turn", benchmark=benchmark)
    figures.record("agent.turn.records", "journal records per agent turn", out["records"] / turns,
                   "records/turn", benchmark=benchmark)


LONG_TURNS = max(40, int(300 * SCALE))
LONG_OUTPUT = 20_000
WINDOW = coding_agent(PROVIDER).limits.context_window
EDGE = 20  # turns at each end of the long session that are compared


def big_file(i: int) -> str:
    line = "the quick brown fox jumps over the lazy dog, again and again and again. "
    return f"MARK {i}\n" + "".join(f"{line}{j:05d}\n" for j in range(LONG_OUTPUT // (len(line) + 6)))


class LongModel:
    """Reads the turn's file on a user message, answers after its result, writes a summary when asked."""

    def __init__(self, repo: str) -> None:
        self.repo = repo
        self.n = 0

    def __call__(self, request: Any) -> ModelTurn:
        last = (request.body.get("messages") or [{}])[-1]
        content = last.get("content")
        if COMPACT_PROMPT[:60] in (content if isinstance(content, str) else str(content)):
            return ModelTurn(text="Summary: the files read so far were as expected.")
        if isinstance(content, list) and any(block.get("type") == "tool_result" for block in content):
            return ModelTurn(text=FINAL)
        self.n += 1
        path = os.path.join(self.repo, f"f{self.n % 50}.txt")
        return ModelTurn(tool_calls=[ScriptedCall("read_file", f'{{"file_path": "{path}"}}', id=f"toolu_l{self.n}")])


class PlainCompactingAgent(PlainAgent):
    """The plain loop with the session's compaction policy, so both do the same LLM work."""

    def __init__(self, client: Client, config: dict[str, Any]) -> None:
        super().__init__(client, config)
        self.system = self.messages.pop(0)
        self.compactions = 0

    async def turn(self, text: str) -> str:
        self.messages.append(Message.user(text))
        while True:
            await self.compact_if_full()
            request = Request(self.model, [self.system, *self.messages], tools=self.tools)
            response = await self.client.complete(request)
            self.messages.append(response.message)
            if not response.tool_calls:
                return response.text
            outputs = await asyncio.gather(*(self.run_tool(c.name, c.arguments) for c in response.tool_calls))
            for call, output in zip(response.tool_calls, outputs):
                self.messages.append(Message.tool_result(call.id, output))

    async def run_tool(self, name: str, arguments: Any) -> str:
        text = await super().run_tool(name, arguments)
        return "".join(f"{n:6d}\t{line}" for n, line in enumerate(text.splitlines(keepends=True), 1))

    async def compact_if_full(self) -> None:
        sizes = [len(repr(m)) for m in self.messages]
        if (len(repr(self.system)) + sum(sizes)) // 4 <= 0.85 * WINDOW or len(self.messages) < 2:
            return
        keep, total = len(self.messages), 0
        for i in range(len(self.messages) - 1, -1, -1):
            total += sizes[i]
            if total > 0.25 * WINDOW * 4:
                break
            if self.messages[i].role.value != "tool":
                keep = i
        ask = Request(self.model, [self.system, *self.messages, Message.user(COMPACT_PROMPT)], tools=self.tools)
        summary = (await self.client.complete(ask)).text
        self.messages = [Message.user("[Summary]\n" + summary), *self.messages[keep:]]
        self.compactions += 1


@pytest.mark.timeout(900)
def test_long_session_turns(benchmark: Any, figures: Figures) -> None:
    """Per-turn milliseconds at the start and the end of a 300-turn session with 20 KB tool outputs, kernel vs plain."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aosbl-", dir="/tmp") as tmp:
        repo = os.path.join(tmp, "repo")
        os.makedirs(repo)
        for i in range(50):
            with open(os.path.join(repo, f"f{i}.txt"), "w") as f:
                f.write(big_file(i))
        twin = ProviderTwin(PROVIDER, api_key=KEY).start()
        twin.record = False
        twin.repeat(Turn(LongModel(repo)))
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
        env.update({"ANTHROPIC_BASE_URL": twin.base_url, "ANTHROPIC_API_KEY": KEY})
        kernel = KernelProcess(os.path.join(tmp, "k"), env=env,
                               extra_args=["--grant-host", repo, "--health", "", "--idle-seconds", "3600"])
        os.makedirs(kernel.data_dir)
        kernel.start()
        try:
            async def main() -> None:
                async with await Connection.open(kernel.address) as conn:
                    admin = await conn.restore_kernel(kernel.admin_token)
                    limits = Limits(enable_loop_detection=False, context_window=WINDOW)
                    doc, start = build_world(coding_agent(PROVIDER), repo, PROVIDER, None, session="main",
                                             task="turn 0", limits=limits)
                    world, _ = await (await admin.worlds("bench-agent-long")).create(doc, {}, "long1", "long")
                    ends: list[str] = []
                    compactions: list[int] = []
                    changed = asyncio.Event()

                    async def on_record(seq: int, value: dict[str, Any]) -> None:
                        value.pop("at", None)
                        for event in transcript([record_from_value(value)], "main"):
                            if event.kind == "context_compacted":
                                compactions.append(len(ends))
                            if event.kind in ("processing_end", "error", "session_end"):
                                ends.append(event.kind)
                                changed.set()

                    async def kernel_turn(i: int) -> float:
                        begin = time.perf_counter()
                        await world.send(COMMAND, start if i == 0 else input_event("main", f"turn {i}"))
                        while len(ends) < i + 1:
                            changed.clear()
                            await asyncio.wait_for(changed.wait(), 60)
                        assert ends[i] == "processing_end", ends[-3:]
                        return time.perf_counter() - begin

                    plain = PlainCompactingAgent(twin.client(), start["config"])

                    async def plain_turn(i: int) -> float:
                        begin = time.perf_counter()
                        assert await plain.turn(f"turn {i}") == FINAL
                        return time.perf_counter() - begin

                    subscription = await world.tail(0, on_record)
                    kernel_times, plain_times = [], []
                    for i in range(LONG_TURNS):
                        pair = [kernel_turn, plain_turn] if i % 2 == 0 else [plain_turn, kernel_turn]
                        times = {fn: await fn(i) for fn in pair}
                        kernel_times.append(times[kernel_turn])
                        plain_times.append(times[plain_turn])
                    await subscription.cancel()
                    out.update(kernel=kernel_times, plain=plain_times, compactions=compactions,
                               plain_compactions=plain.compactions)
                    await plain.client.close()

            benchmark.pedantic(lambda: benchlib.run_client(main), rounds=1, iterations=1)
        finally:
            kernel.kill()
            twin.stop()

    assert out["compactions"] and out["plain_compactions"], "the session never reached the window"
    ms = {name: [t * 1000 for t in out[name]] for name in ("kernel", "plain")}
    first = {name: statistics.median(v[:EDGE]) for name, v in ms.items()}
    last = {name: statistics.median(v[-EDGE:]) for name, v in ms.items()}
    note = f"{LONG_TURNS} turns, {len(out['compactions'])} compactions"
    figures.record("agent.long.plain.first", f"long session, plain loop, first {EDGE} turns", first["plain"],
                   "ms/turn", note=note, benchmark=benchmark)
    figures.record("agent.long.kernel.first", f"long session, kernel, first {EDGE} turns", first["kernel"],
                   "ms/turn", baseline="agent.long.plain.first", paired=first["plain"], benchmark=benchmark)
    figures.record("agent.long.plain.last", f"long session, plain loop, last {EDGE} turns", last["plain"],
                   "ms/turn", benchmark=benchmark)
    figures.record("agent.long.kernel.last", f"long session, kernel, last {EDGE} turns", last["kernel"],
                   "ms/turn", baseline="agent.long.plain.last", paired=last["plain"], benchmark=benchmark)
    figures.record("agent.long.kernel.growth", "long session, kernel last / first 20 turns",
                   last["kernel"] / first["kernel"], "x", note="1.0 = flat", benchmark=benchmark)
    # the plain loop's turns grow with the history too (bigger requests until a compaction), so the
    # kernel's own cost is what it adds to the plain turn run beside it: flat means the same at both ends
    added = [k - p for k, p in zip(ms["kernel"], ms["plain"])]
    figures.record("agent.long.kernel.added.first", f"long session, kernel time added to the plain turn, "
                   f"first {EDGE} turns", statistics.median(added[:EDGE]), "ms/turn", benchmark=benchmark)
    figures.record("agent.long.kernel.added.last", f"long session, kernel time added to the plain turn, "
                   f"last {EDGE} turns", statistics.median(added[-EDGE:]), "ms/turn", note="flat: as the first",
                   benchmark=benchmark)

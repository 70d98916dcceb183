"""LLM layer overhead against the OpenAI twin on 127.0.0.1.

Measures, in one run: the per-call overhead of ``Client.complete()`` and of a
streamed call over a raw httpx request to the same twin (as ratios; each
ratio is paired, raw and client calls alternating, so a busy shared machine
slows both sides alike), the time to the first stream event, and a 3-round
tool loop with 3 parallel tools per round, whose tools must overlap in time.
Run with ``.venv/bin/python -m pytest bench/bench_llm.py -q``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from aos.adapters.llm import Client, Message, Request, StreamEventType, Tool, generate
from aos.adapters.llm.http import dumps
from aos.adapters.llm.providers import openai as openai_codec
from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall
from benchlib import Figures, Target

TEXT = "The quick brown fox jumps over the lazy dog. " * 4
REQUEST = Request(model="gpt-5.2-mini", messages=[Message.system("be brief"), Message.user("hello")])
PAIRED_ROUNDS = 200


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture(scope="module")
def twin() -> Iterator[ProviderTwin]:
    t = ProviderTwin("openai").start()
    t.record = False
    t.repeat(ModelTurn(text=TEXT, chunks=[TEXT[i : i + 12] for i in range(0, len(TEXT), 12)]))
    yield t
    t.stop()


class Calls:
    """The four calls under test, all against the same twin."""

    def __init__(self, raw: httpx.AsyncClient, client: Client) -> None:
        self.raw, self.client = raw, client
        # the same bytes our adapter sends, so the baseline differs only in the layer under test
        self.body = dumps(openai_codec.encode_request(REQUEST, stream=False).body)
        self.stream_body = dumps(openai_codec.encode_request(REQUEST, stream=True).body)

    async def raw_complete(self) -> Any:
        resp = await self.raw.post("/responses", content=self.body)
        return json.loads(resp.content)

    async def client_complete(self) -> Any:
        return await self.client.complete(REQUEST)

    async def raw_stream(self) -> int:
        n = 0
        async with self.raw.stream("POST", "/responses", content=self.stream_body) as resp:
            async for chunk in resp.aiter_bytes():
                n += len(chunk)
        return n

    async def client_stream(self) -> int:
        n = 0
        async for event in self.client.stream(REQUEST):
            n += 1
            if event.type == StreamEventType.FINISH:
                assert event.response.text == TEXT
        return n


@pytest.fixture(scope="module")
def calls(twin: ProviderTwin, loop: asyncio.AbstractEventLoop) -> Iterator[Calls]:
    raw = httpx.AsyncClient(
        base_url=twin.base_url, headers={"authorization": f"Bearer {twin.api_key}", "content-type": "application/json"}
    )
    c = Calls(raw, twin.client())

    async def warm_up() -> None:
        # open pooled connections and fill caches before anything is timed
        for _ in range(30):
            await c.raw_complete()
            await c.client_complete()
            await c.raw_stream()
            await c.client_stream()

    loop.run_until_complete(warm_up())
    yield c
    loop.run_until_complete(raw.aclose())
    loop.run_until_complete(c.client.close())


def _paired(
    loop: asyncio.AbstractEventLoop, base: Callable[[], Awaitable[Any]], test: Callable[[], Awaitable[Any]]
) -> tuple[float, float]:
    """Median seconds per call of ``base`` and ``test``, measured alternately."""

    async def run() -> tuple[float, float]:
        a, b = [], []
        for _ in range(PAIRED_ROUNDS):
            t0 = time.perf_counter()
            await base()
            t1 = time.perf_counter()
            await test()
            b.append(time.perf_counter() - t1)
            a.append(t1 - t0)
        return statistics.median(a), statistics.median(b)

    return loop.run_until_complete(run())


def test_complete_overhead(benchmark: Any, figures: Figures, loop: asyncio.AbstractEventLoop, calls: Calls) -> None:
    """Client.complete() (encode, send, decode into a Response) against a raw httpx POST + json.loads."""
    out = benchmark(lambda: loop.run_until_complete(calls.client_complete()))
    assert out.text == TEXT
    raw, ours = _paired(loop, calls.raw_complete, calls.client_complete)
    figures.record("llm.complete.raw", "raw httpx POST /v1/responses (paired)", raw * 1e3, "ms", benchmark=benchmark)
    figures.record(
        "llm.complete", "Client.complete() on the twin", ours * 1e3, "ms",
        baseline="llm.complete.raw", paired=raw * 1e3, target=Target("ratio", "<=", 1.5), benchmark=benchmark,
    )  # fmt: skip


def test_stream_overhead(benchmark: Any, figures: Figures, loop: asyncio.AbstractEventLoop, calls: Calls) -> None:
    """Client.stream() (SSE parsing, typed events through FINISH) against a raw streamed read of every byte."""
    assert benchmark(lambda: loop.run_until_complete(calls.client_stream())) > 5
    raw, ours = _paired(loop, calls.raw_stream, calls.client_stream)
    figures.record("llm.stream.raw", "raw httpx streamed POST (paired)", raw * 1e3, "ms", benchmark=benchmark)
    figures.record(
        "llm.stream", "Client.stream() to FINISH, 23 SSE events", ours * 1e3, "ms",
        baseline="llm.stream.raw", paired=raw * 1e3, target=Target("ratio", "<=", 2.0), benchmark=benchmark,
    )  # fmt: skip


def test_time_to_first_event(benchmark: Any, figures: Figures, loop: asyncio.AbstractEventLoop, calls: Calls) -> None:
    """Time from calling stream() to the first typed event (STREAM_START) and to the first text delta."""
    firsts: list[float] = []
    first_text: list[float] = []

    async def call() -> None:
        t0 = time.perf_counter()
        first: float | None = None
        text: float | None = None
        async for event in calls.client.stream(REQUEST):
            now = time.perf_counter() - t0
            first = now if first is None else first
            if event.type == StreamEventType.TEXT_DELTA and text is None:
                text = now
        assert first is not None and text is not None
        firsts.append(first)
        first_text.append(text)

    benchmark(lambda: loop.run_until_complete(call()))
    figures.record(
        "llm.stream.first_event", "stream(): first event (STREAM_START), median", statistics.median(firsts) * 1e3,
        "ms", target=Target("value", "<=", 5.0), benchmark=benchmark,
    )  # fmt: skip
    figures.record(
        "llm.stream.first_text", "stream(): first TEXT_DELTA, median", statistics.median(first_text) * 1e3, "ms",
        benchmark=benchmark,
    )  # fmt: skip


TOOL_SECONDS = 0.05
NUM = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def test_tool_loop_parallel(benchmark: Any, figures: Figures, loop: asyncio.AbstractEventLoop) -> None:
    """3 rounds x 3 parallel tools (50 ms each), then text: the tools of each round overlap in time."""
    spans: list[tuple[int, float, float]] = []

    async def work(n: int) -> int:
        start = time.perf_counter()
        await asyncio.sleep(TOOL_SECONDS)
        spans.append((n // 10, start, time.perf_counter()))
        return n

    def calls_of(r: int) -> list[ScriptedCall]:
        return [ScriptedCall("work", json.dumps({"n": r * 10 + i})) for i in range(3)]

    with ProviderTwin("openai") as twin:

        async def run() -> Any:
            twin.script(*[ModelTurn(tool_calls=calls_of(r)) for r in range(3)], ModelTurn(text="done"))
            client = twin.client()
            try:
                tools = [Tool("work", "", NUM, execute=work)]
                return await generate("m", "go", client=client, tools=tools, max_tool_rounds=3)
            finally:
                await client.close()

        result = benchmark.pedantic(lambda: loop.run_until_complete(run()), rounds=5, iterations=1)
    assert len(result.steps) == 4
    overlaps = []
    for r in range(3):
        mine = [s for s in spans[-9:] if s[0] == r]  # the final benchmark round's three tools of round r
        assert len(mine) == 3
        overlaps.append(min(e for _, _, e in mine) - max(s for _, s, _ in mine))
    assert min(overlaps) > 0, f"tools of a round did not overlap: {overlaps}"
    figures.record(
        "llm.toolloop", "3 rounds x 3 parallel 50 ms tools + final text (wall)", benchmark.stats.stats.median * 1e3,
        "ms", note=f"serial tools alone take {9 * TOOL_SECONDS * 1e3:.0f} ms", target=Target("value", "<=", 300),
        benchmark=benchmark,
    )  # fmt: skip
    figures.record(
        "llm.toolloop.overlap", "time all 3 tools of a round run together (min over rounds)", min(overlaps) * 1e3,
        "ms", target=Target("value", ">=", 40), benchmark=benchmark,
    )  # fmt: skip

"""The OpenAI-compatible Chat Completions adapter against its twin."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aos.adapters.llm import Message, Request, StreamEventType, Tool, generate
from aos.adapters.llm.testing import Faults, ModelTurn, ScriptedCall, Turn, TwinRequest

NUM = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def test_complete_and_stream(make_twin: Any) -> None:
    """complete() maps choices/usage; stream() joins content deltas and ends on [DONE] despite split frames."""
    twin = make_twin("openai_compatible")
    twin.script(
        ModelTurn(text="plain answer", input_tokens=4, output_tokens=2),
        Turn(ModelTurn(text="streamed answer"), faults=Faults(chunk_sizes=[2, 5], crlf=True)),
    )

    async def go() -> Any:
        client = twin.client()
        resp = await client.complete(Request(model="local", messages=[Message.system("s"), Message.user("x")]))
        events = [e async for e in client.stream(Request(model="local", messages=[Message.user("x")]))]
        await client.close()
        return resp, events

    resp, events = asyncio.run(go())
    assert resp.text == "plain answer" and resp.finish_reason.reason == "stop" and resp.usage.total_tokens == 6
    assert twin.requests[0].body["messages"][0] == {"role": "system", "content": "s"}
    assert twin.requests[1].body["stream_options"] == {"include_usage": True}
    assert "".join(e.delta or "" for e in events if e.type == StreamEventType.TEXT_DELTA) == "streamed answer"
    assert events[-1].type == StreamEventType.FINISH and events[-1].usage.output_tokens == 5
    twin.assert_done()


def test_streamed_tool_loop(make_twin: Any) -> None:
    """Tool-call deltas keyed by index assemble into calls; results go back as role=tool messages."""
    twin = make_twin("openai_compatible")

    def expect(req: TwinRequest) -> None:
        msgs = req.body["messages"]
        assert msgs[1]["tool_calls"][0]["id"] == "call_000"
        assert [(m["role"], m["tool_call_id"], m["content"]) for m in msgs[2:]] == [
            ("tool", "call_000", "4"),
            ("tool", "call_001", "9"),
        ]

    twin.script(
        ModelTurn(
            tool_calls=[ScriptedCall("square", json.dumps({"n": 2})), ScriptedCall("square", json.dumps({"n": 3}))]
        ),
        Turn(ModelTurn(text="4 and 9"), expect=expect),
    )

    async def go() -> str:
        client = twin.client()
        out = await generate(
            "local", "squares", client=client, tools=[Tool("square", "", NUM, execute=lambda n: n * n)]
        )
        await client.close()
        return out.text

    assert asyncio.run(go()) == "4 and 9"
    twin.assert_done()

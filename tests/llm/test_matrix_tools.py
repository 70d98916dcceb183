"""Conformance matrix rows L4, L7-L14 and L24: tool calls, reasoning state and caching."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aos.adapters.llm import (
    ContentKind,
    ContentPart,
    Message,
    Request,
    Role,
    StreamEventType,
    Tool,
    ToolCall,
    ToolDefinition,
    generate,
    stream,
)
from aos.adapters.llm.testing import (
    ModelTurn,
    ProviderTwin,
    ScriptedCall,
    Turn,
    TwinRequest,
)

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def weather_tool(log: list[str] | None = None) -> Tool:
    def get_weather(city: str) -> str:
        if log is not None:
            log.append(city)
        return f"sunny in {city}"

    return Tool("get_weather", "Weather for a city", CITY, execute=get_weather)


def _run(twin: ProviderTwin, streaming: bool, **kwargs: Any) -> Any:
    """generate() or stream() (drained) against the twin; returns (text, steps)."""

    async def go() -> Any:
        client = twin.client()
        try:
            if streaming:
                result = stream("model-x", client=client, **kwargs)
                events = [e async for e in result]
                resp = await result.response()
                return resp.text, result.steps, events
            out = await generate("model-x", client=client, **kwargs)
            return out.text, out.steps, out
        finally:
            await client.close()

    return asyncio.run(go())


def _tool_outputs(provider: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    """(call id or function name, output) for every tool result in a request body, in order."""
    if provider == "openai":
        return [(i["call_id"], i["output"]) for i in body["input"] if i.get("type") == "function_call_output"]
    if provider == "anthropic":
        return [
            (b["tool_use_id"], b["content"])
            for m in body["messages"]
            for b in m["content"]
            if b["type"] == "tool_result"
        ]
    return [
        (p["functionResponse"]["name"], p["functionResponse"]["response"])
        for c in body["contents"]
        for p in c["parts"]
        if "functionResponse" in p
    ]


def test_l4_anthropic_merges_same_role_messages(make_twin: Any) -> None:
    """L4: consecutive user messages and tool results collapse into strictly alternating turns."""
    twin = make_twin("anthropic")
    calls = [ToolCall("toolu_1", "get_weather", {"city": "Oslo"}), ToolCall("toolu_2", "get_weather", {"city": "Rome"})]
    history = [
        Message.user("first"),
        Message.user("second"),
        Message(Role.ASSISTANT, [ContentPart(ContentKind.TOOL_CALL, tool_call=c) for c in calls]),
        Message.tool_result("toolu_1", "cold"),
        Message.tool_result("toolu_2", "warm"),
        Message.user("and now?"),
    ]

    def expect(req: TwinRequest) -> None:
        msgs = req.body["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
        assert [b["text"] for b in msgs[0]["content"]] == ["first", "second"]
        assert [b["type"] for b in msgs[2]["content"]] == ["tool_result", "tool_result", "text"]
        assert [b.get("tool_use_id") for b in msgs[2]["content"][:2]] == ["toolu_1", "toolu_2"]

    twin.script(Turn(ModelTurn(text="ok"), expect=expect))

    async def go() -> None:
        client = twin.client()
        await client.complete(Request(model="m", messages=history, tools=[ToolDefinition("get_weather", "", CITY)]))
        await client.close()

    asyncio.run(go())
    twin.assert_done()


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_l7_single_tool_call_round_trip(twin: ProviderTwin, streaming: bool) -> None:
    """L7: the result echoes the id the provider needs (OpenAI call_id not fc_ item id,
    Anthropic tool_use_id, Gemini function name with the string wrapped as {"result": ...})."""

    def expect(req: TwinRequest) -> None:
        body = req.body
        outputs = _tool_outputs(twin.provider, body)
        if twin.provider == "openai":
            assert outputs == [("call_000", "sunny in Oslo")]
            call = next(i for i in body["input"] if i.get("type") == "function_call")
            assert call["call_id"] == "call_000" and json.loads(call["arguments"]) == {"city": "Oslo"}
            assert "fc_000" not in req.raw.decode()
        elif twin.provider == "anthropic":
            assert outputs == [("toolu_000", "sunny in Oslo")]
            assert body["messages"][-1]["role"] == "user"
            assert body["messages"][-2]["content"][0]["id"] == "toolu_000"
        else:
            assert outputs == [("get_weather", {"result": "sunny in Oslo"})]
            assert body["contents"][-2]["role"] == "model"
            assert body["contents"][-2]["parts"][0]["functionCall"] == {"name": "get_weather", "args": {"city": "Oslo"}}

    twin.script(
        ModelTurn(tool_calls=[ScriptedCall("get_weather", '{"city": "Oslo"}')]),
        Turn(ModelTurn(text="It is sunny."), expect=expect),
    )
    text, steps, _ = _run(twin, streaming, prompt="weather in Oslo?", tools=[weather_tool()])
    assert text == "It is sunny."
    assert len(steps) == 2 and steps[0].tool_results[0].content == "sunny in Oslo"
    if twin.provider == "gemini":
        assert steps[0].tool_calls[0].id.startswith("call_")
    twin.assert_done()


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_l8_parallel_calls_one_continuation(twin: ProviderTwin, streaming: bool) -> None:
    """L8: three calls run concurrently (each waits until all three have started) and their
    results go back in call order in exactly one continuation request."""
    all_started = asyncio.Barrier(3)

    async def slow_weather(city: str) -> str:
        async with asyncio.timeout(5):  # serial execution would never get all three to the barrier
            await all_started.wait()
        return f"sunny in {city}"

    tool = Tool("get_weather", "", CITY, execute=slow_weather)
    cities = ["Oslo", "Rome", "Lima"]

    def expect(req: TwinRequest) -> None:
        outputs = _tool_outputs(twin.provider, req.body)
        assert [o[1] if twin.provider != "gemini" else o[1]["result"] for o in outputs] == [
            f"sunny in {c}" for c in cities
        ]
        if twin.provider == "openai":
            assert [o[0] for o in outputs] == ["call_000", "call_001", "call_002"]

    twin.script(
        ModelTurn(tool_calls=[ScriptedCall("get_weather", json.dumps({"city": c})) for c in cities]),
        Turn(ModelTurn(text="done"), expect=expect),
    )
    text, steps, _ = _run(twin, streaming, prompt="3 cities", tools=[tool])
    assert text == "done"
    assert [c.arguments["city"] for c in steps[0].tool_calls] == cities
    assert not any(r.is_error for r in steps[0].tool_results)
    assert len(twin.requests) == 2
    twin.assert_done()


def test_l9_streamed_tool_argument_deltas(twin: ProviderTwin) -> None:
    """L9: TOOL_CALL_START/DELTA/END correlate by the call id; OpenAI deltas keyed by item_id
    come out under call_id; Anthropic partial_json is joined and parsed; Gemini has no deltas."""
    args = [json.dumps({"city": "Oslo", "unit": "celsius"}), json.dumps({"city": "Rome", "unit": "kelvin"})]
    twin.script(ModelTurn(tool_calls=[ScriptedCall("get_weather", a) for a in args]))

    async def go() -> list[Any]:
        client = twin.client()
        events = [
            e
            async for e in client.stream(
                Request(model="m", messages=[Message.user("x")], tools=[ToolDefinition("get_weather", "", CITY)])
            )
        ]
        await client.close()
        return events

    events = asyncio.run(go())
    starts = [e.tool_call.id for e in events if e.type == StreamEventType.TOOL_CALL_START]
    ends = {e.tool_call.id: e.tool_call for e in events if e.type == StreamEventType.TOOL_CALL_END}
    assert len(starts) == 2 and set(starts) == set(ends)
    deltas: dict[str, str] = {}
    for e in events:
        if e.type == StreamEventType.TOOL_CALL_DELTA:
            deltas[e.tool_call.id] = deltas.get(e.tool_call.id, "") + (e.delta or "")
    if twin.provider == "gemini":
        assert deltas == {}
    else:
        assert [deltas[i] for i in starts] == args
    if twin.provider == "openai":
        assert starts == ["call_000", "call_001"]  # never the fc_ item ids
    assert [ends[i].arguments for i in starts] == [json.loads(a) for a in args]
    assert events[-1].finish_reason.reason == "tool_calls"
    twin.assert_done()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_l10_malformed_tool_json_becomes_error_result(provider: str, make_twin: Any) -> None:
    """L10: arguments that are not JSON yield an is_error tool result sent back to the model, no crash."""
    twin = make_twin(provider)
    ran: list[str] = []

    def expect(req: TwinRequest) -> None:
        ((_, output),) = _tool_outputs(provider, req.body)
        assert "Invalid arguments" in output

    twin.script(
        ModelTurn(tool_calls=[ScriptedCall("get_weather", '{"city":')]),
        Turn(ModelTurn(text="sorry"), expect=expect),
    )
    text, steps, _ = _run(twin, True, prompt="x", tools=[weather_tool(ran)])
    assert text == "sorry" and ran == []
    assert steps[0].tool_results[0].is_error
    twin.assert_done()


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_l11_reasoning_tokens_and_thinking_round_trip(twin: ProviderTwin, streaming: bool) -> None:
    """L11: reasoning tokens are reported apart from output tokens; Anthropic thinking text and its
    signature (streamed as signature_delta) and redacted thinking data come back byte for byte."""
    thinking = "Let me think \u2014 \u00fcber carefully.\nStep 2: \u2603"
    signature = "EqQBCkYIARgCIkB+/sig==\u00e9"
    redacted = "EmwKAhgBEgy3va3pzix/LafPsn4a"

    def expect(req: TwinRequest) -> None:
        if twin.provider == "anthropic":
            assistant = req.body["messages"][1]["content"]
            assert assistant[0] == {"type": "thinking", "thinking": thinking, "signature": signature}
            assert assistant[1] == {"type": "redacted_thinking", "data": redacted}
            assert json.dumps(thinking, ensure_ascii=False).encode() in req.raw  # the exact bytes

    twin.script(
        ModelTurn(
            tool_calls=[ScriptedCall("get_weather", '{"city": "Oslo"}')],
            reasoning=thinking,
            reasoning_signature=signature,
            redacted_reasoning=redacted,
            reasoning_tokens=42,
            output_tokens=50,
        ),
        Turn(ModelTurn(text="ok"), expect=expect),
    )
    _, steps, extra = _run(twin, streaming, prompt="x", tools=[weather_tool()], reasoning_effort="low")
    first = steps[0].response
    if twin.provider == "anthropic":
        thinking_parts = [p.thinking for p in first.message.content if p.thinking is not None]
        assert (thinking_parts[0].text, thinking_parts[0].signature) == (thinking, signature)
        assert thinking_parts[1].redacted and thinking_parts[1].signature == redacted
        assert first.usage.reasoning_tokens and first.usage.reasoning_tokens > 0
    else:
        assert first.usage.reasoning_tokens == 42 and first.usage.output_tokens == 50
        assert first.reasoning == thinking
    if streaming:
        kinds = [e.type for e in extra]
        assert StreamEventType.REASONING_START in kinds and StreamEventType.REASONING_END in kinds
        joined = "".join(e.reasoning_delta or "" for e in extra[: kinds.index(StreamEventType.STEP_FINISH)])
        assert joined == thinking
    twin.assert_done()


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_l12_gemini_thought_signature_echoed(make_twin: Any, streaming: bool) -> None:
    """L12: a functionCall's thoughtSignature is sent back on the same part, unchanged."""
    twin = make_twin("gemini")
    sig = "CiQBVKhc7n\u00e9+/AAA=="

    def expect(req: TwinRequest) -> None:
        part = req.body["contents"][1]["parts"][0]
        assert part["functionCall"]["name"] == "get_weather"
        assert part["thoughtSignature"] == sig

    twin.script(
        ModelTurn(tool_calls=[ScriptedCall("get_weather", '{"city": "Oslo"}', signature=sig)]),
        Turn(ModelTurn(text="ok"), expect=expect),
    )
    text, _, _ = _run(twin, streaming, prompt="x", tools=[weather_tool()])
    assert text == "ok"
    twin.assert_done()


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_l13_openai_reasoning_replayed_with_encrypted_content(make_twin: Any, streaming: bool) -> None:
    """L13: with store=false the reasoning item is replayed with its encrypted_content, and
    include asks for reasoning.encrypted_content on every request."""
    twin = make_twin("openai")
    blob = "gAAAAABo-encrypted-reasoning-state=="

    def first(req: TwinRequest) -> None:
        assert req.body["store"] is False
        assert req.body["include"] == ["reasoning.encrypted_content"]

    def second(req: TwinRequest) -> None:
        first(req)
        items = req.body["input"]
        kinds = [i.get("type") for i in items]
        assert kinds == ["message", "reasoning", "function_call", "function_call_output"]
        assert items[1]["id"] == "rs_001" and items[1]["encrypted_content"] == blob

    twin.script(
        Turn(
            ModelTurn(
                reasoning="plan", reasoning_signature=blob, tool_calls=[ScriptedCall("get_weather", '{"city": "Oslo"}')]
            ),
            expect=first,
        ),
        Turn(ModelTurn(text="ok"), expect=second),
    )
    text, _, _ = _run(twin, streaming, prompt="x", tools=[weather_tool()], reasoning_effort="medium")
    assert text == "ok"
    twin.assert_done()


def test_l14_cache_usage_mapping(twin: ProviderTwin) -> None:
    """L14: cache read (and Anthropic write) token counts map into Usage."""
    twin.script(ModelTurn(text="ok", cache_read_tokens=900, cache_write_tokens=100, input_tokens=1000))

    async def go() -> Any:
        client = twin.client()
        resp = await client.complete(Request(model="m", messages=[Message.user("x")]))
        await client.close()
        return resp

    usage = asyncio.run(go()).usage
    assert usage.cache_read_tokens == 900
    assert usage.cache_write_tokens == (100 if twin.provider == "anthropic" else None)


def test_l14_anthropic_cache_breakpoints_and_opt_out(make_twin: Any) -> None:
    """L14: cache_control sits on the last system block, last tool and the second-to-last message,
    with the prompt-caching beta header; auto_cache=false removes all of it."""
    twin = make_twin("anthropic")
    history = [
        Message.system("sys one"),
        Message.system("sys two"),
        Message.user("q1"),
        Message.assistant("a1"),
        Message.user("q2"),
    ]
    tools = [ToolDefinition("a_tool", "", CITY), ToolDefinition("b_tool", "", CITY)]
    twin.script(ModelTurn(text="ok"), ModelTurn(text="ok"))

    async def go() -> None:
        client = twin.client()
        await client.complete(Request(model="m", messages=history, tools=tools))
        await client.complete(
            Request(model="m", messages=history, tools=tools, provider_options={"anthropic": {"auto_cache": False}})
        )
        await client.close()

    asyncio.run(go())
    on, off = twin.requests[0], twin.requests[1]
    body = on.body
    eph = {"type": "ephemeral"}
    assert "cache_control" not in body["system"][0] and body["system"][1]["cache_control"] == eph
    assert "cache_control" not in body["tools"][0] and body["tools"][1]["cache_control"] == eph
    assert body["messages"][1]["content"][-1]["cache_control"] == eph  # "a1": second-to-last message
    assert "cache_control" not in json.dumps(body["messages"][2])
    assert "prompt-caching-2024-07-31" in on.headers["anthropic-beta"].split(",")
    assert b"cache_control" not in off.raw and "anthropic-beta" not in off.headers


def test_l24_generate_loop_steps_usage_and_limits(twin: ProviderTwin) -> None:
    """L24: three tool rounds then text give 4 steps whose usage sums to total_usage;
    an unknown tool becomes an error result, not an exception."""
    rounds = [
        ModelTurn(
            tool_calls=[ScriptedCall("get_weather", json.dumps({"city": f"C{i}"}))],
            input_tokens=10 + i,
            output_tokens=i + 1,
        )
        for i in range(2)
    ]
    rounds.append(ModelTurn(tool_calls=[ScriptedCall("no_such_tool", "{}")], input_tokens=20, output_tokens=7))
    twin.script(*rounds, ModelTurn(text="final", input_tokens=30, output_tokens=9))
    _, steps, result = _run(twin, False, prompt="go", tools=[weather_tool()], max_tool_rounds=5)
    assert len(steps) == 4 and result.text == "final"
    assert result.total_usage.input_tokens == 10 + 11 + 20 + 30
    assert result.total_usage.output_tokens == 1 + 2 + 7 + 9
    assert result.usage.input_tokens == 30  # usage is the final step's
    unknown = steps[2].tool_results[0]
    assert unknown.is_error and "Unknown tool" in unknown.content
    twin.assert_done()


def test_l24_max_tool_rounds_zero_makes_one_call(twin: ProviderTwin) -> None:
    """L24: max_tool_rounds=0 returns the calls without executing them: exactly one LLM call."""
    ran: list[str] = []
    twin.script(ModelTurn(tool_calls=[ScriptedCall("get_weather", '{"city": "Oslo"}')]))
    _, steps, result = _run(twin, False, prompt="go", tools=[weather_tool(ran)], max_tool_rounds=0)
    assert len(twin.requests) == 1 and len(steps) == 1 and ran == []
    assert result.tool_calls[0].name == "get_weather" and result.finish_reason.reason == "tool_calls"


def test_l24_max_tool_rounds_bounds_calls(twin: ProviderTwin) -> None:
    """L24: with max_tool_rounds=2 a model that always calls tools gets at most 3 LLM calls."""
    twin.script(*[ModelTurn(tool_calls=[ScriptedCall("get_weather", '{"city": "X"}')]) for _ in range(3)])
    _, steps, _ = _run(twin, False, prompt="go", tools=[weather_tool()], max_tool_rounds=2)
    assert len(twin.requests) == 3 and len(steps) == 3
    twin.assert_done()

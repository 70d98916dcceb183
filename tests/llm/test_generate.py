"""The high-level API: generate() arguments, tools, stop conditions, timeouts, generate_object (L25)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aos.adapters.llm import (
    InvalidRequestError,
    Message,
    NoObjectGeneratedError,
    RequestTimeoutError,
    RetryPolicy,
    StreamEventType,
    TimeoutConfig,
    Tool,
    ToolCall,
    generate,
    generate_object,
    stream,
    stream_object,
)
from aos.adapters.llm.testing import (
    Faults,
    ModelTurn,
    ProviderTwin,
    ScriptedCall,
    Turn,
    TwinRequest,
)

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
NUM = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": False}


def _gen(twin: ProviderTwin, *args: Any, **kwargs: Any) -> Any:
    async def go() -> Any:
        client = twin.client()
        try:
            return await generate("m", *args, client=client, **kwargs)
        finally:
            await client.close()

    return asyncio.run(go())


def test_prompt_and_messages_are_exclusive(make_twin: Any) -> None:
    """generate() takes prompt or messages: both, or neither, is an InvalidRequestError before any request."""
    twin = make_twin("openai")
    with pytest.raises(InvalidRequestError):
        _gen(twin, "hi", messages=[Message.user("hi")])
    with pytest.raises(InvalidRequestError):
        _gen(twin)
    assert twin.requests == []


def test_messages_and_system(make_twin: Any) -> None:
    """generate(messages=..., system=...) sends the system text and the whole history."""
    twin = make_twin("anthropic")

    def expect(req: TwinRequest) -> None:
        assert req.body["system"][0]["text"] == "be brief"
        assert [m["role"] for m in req.body["messages"]] == ["user", "assistant", "user"]

    twin.script(Turn(ModelTurn(text="ok"), expect=expect))
    out = _gen(twin, messages=[Message.user("a"), Message.assistant("b"), Message.user("c")], system="be brief")
    assert out.text == "ok"
    twin.assert_done()


def test_tool_argument_validation_exceptions_and_context(make_twin: Any) -> None:
    """Schema-invalid arguments and raising handlers give is_error results (handler not run for invalid ones);
    handlers receive tool_call_id and messages when they ask for them."""
    twin = make_twin("openai")
    seen: dict[str, Any] = {}

    def square(n: int, tool_call_id: str, messages: list[Message]) -> int:
        seen["id"], seen["history"] = tool_call_id, len(messages)
        return n * n

    def explode(n: int) -> int:
        raise RuntimeError("kaboom")

    tools = [Tool("square", "", NUM, execute=square), Tool("explode", "", NUM, execute=explode)]
    twin.script(
        ModelTurn(
            tool_calls=[
                ScriptedCall("square", '{"n": "seven"}'),
                ScriptedCall("square", '{"n": 7}'),
                ScriptedCall("explode", '{"n": 1}'),
            ]
        ),
        ModelTurn(text="done"),
    )
    out = _gen(twin, "go", tools=tools)
    bad, good, boom = out.steps[0].tool_results
    assert bad.is_error and "expected integer" in bad.content
    assert (good.is_error, good.content) == (False, 49) and seen == {"id": "call_001", "history": 1}
    assert boom.is_error and "kaboom" in boom.content
    sent = [i for i in twin.requests[1].body["input"] if i["type"] == "function_call_output"]
    assert [s["output"] for s in sent][1] == "49"


def test_repair_tool_call_fixes_arguments(make_twin: Any) -> None:
    """repair_tool_call gets invalid arguments plus the problems and may return fixed arguments."""
    twin = make_twin("openai")
    twin.script(ModelTurn(tool_calls=[ScriptedCall("square", '{"n": "3"}')]), ModelTurn(text="ok"))

    def repair(call: ToolCall, problems: list[str]) -> dict[str, Any]:
        assert problems
        return {"n": int(call.arguments["n"])}

    out = _gen(twin, "go", tools=[Tool("square", "", NUM, execute=lambda n: n * n)], repair_tool_call=repair)
    assert out.steps[0].tool_results[0].content == 9


def test_passive_tools_return_calls(make_twin: Any) -> None:
    """A tool without execute is passive: its calls come back to the caller and the loop stops."""
    twin = make_twin("gemini")
    twin.script(ModelTurn(tool_calls=[ScriptedCall("ask_user", '{"n": 1}')]))
    out = _gen(twin, "go", tools=[Tool("ask_user", "", NUM)], max_tool_rounds=5)
    assert len(twin.requests) == 1 and out.tool_calls[0].name == "ask_user" and out.tool_results == []


def test_stop_when_ends_the_loop(make_twin: Any) -> None:
    """stop_when(steps) returning true ends the loop even with tool budget left."""
    twin = make_twin("openai")
    twin.script(*[ModelTurn(tool_calls=[ScriptedCall("square", '{"n": 2}')]) for _ in range(2)])
    out = _gen(
        twin,
        "go",
        tools=[Tool("square", "", NUM, execute=lambda n: n * n)],
        max_tool_rounds=10,
        stop_when=lambda steps: len(steps) >= 2,
    )
    assert len(out.steps) == 2 and len(twin.requests) == 2
    twin.assert_done()


def test_stream_emits_step_finish_between_steps(make_twin: Any) -> None:
    """stream() with active tools emits STEP_FINISH between steps and keeps every step's result."""
    twin = make_twin("anthropic")
    twin.script(ModelTurn(tool_calls=[ScriptedCall("square", '{"n": 3}')]), ModelTurn(text="nine"))

    async def go() -> Any:
        client = twin.client()
        result = stream("m", "go", client=client, tools=[Tool("square", "", NUM, execute=lambda n: n * n)])
        kinds = [e.type async for e in result]
        await client.close()
        return kinds, result

    kinds, result = asyncio.run(go())
    assert kinds.count(StreamEventType.STEP_FINISH) == 1 and kinds.count(StreamEventType.FINISH) == 2
    assert kinds.index(StreamEventType.STEP_FINISH) < len(kinds) - 1
    assert [s.tool_results[0].content for s in result.steps[:1]] == [9] and len(result.steps) == 2


@pytest.mark.parametrize("which", ["per_step", "total"])
def test_timeouts(make_twin: Any, which: str) -> None:
    """A stalled provider trips the per-step or total timeout as RequestTimeoutError (not retried)."""
    twin = make_twin("openai")
    twin.script(Turn(ModelTurn(text="never"), faults=Faults(stall_after=0)))
    # long enough that the request surely reaches the twin first on a loaded machine: a client that gave
    # up while still connecting would leave the twin no stalled request to see hung up
    timeout = TimeoutConfig(**{which: 1.0})
    with pytest.raises(RequestTimeoutError):
        _gen(twin, "go", timeout=timeout, retry_policy=RetryPolicy(max_retries=0))
    assert len(twin.requests) == 1
    assert twin.wait_for(lambda t: t.disconnects == 1, timeout=15)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_l25_generate_object(provider: str, make_twin: Any) -> None:
    """L25: OpenAI json_schema, Gemini responseSchema, Anthropic a forced tool; output is parsed and validated."""
    twin = make_twin(provider)

    def expect(req: TwinRequest) -> None:
        body = req.body
        if provider == "openai":
            assert body["text"]["format"] == {"type": "json_schema", "name": "person", "schema": PERSON, "strict": True}
        elif provider == "gemini":
            cfg = body["generationConfig"]
            assert cfg["responseMimeType"] == "application/json" and cfg["responseSchema"] == PERSON
        else:
            assert body["tool_choice"] == {"type": "tool", "name": "structured_output"}
            assert body["tools"][0]["input_schema"] == PERSON

    alice = json.dumps({"name": "Alice", "age": 30})
    reply = (
        ModelTurn(tool_calls=[ScriptedCall("structured_output", alice)])
        if provider == "anthropic"
        else ModelTurn(text=alice)
    )
    twin.script(Turn(reply, expect=expect))

    async def go() -> Any:
        client = twin.client()
        out = await generate_object("m", "Alice is 30", schema=PERSON, schema_name="person", client=client)
        await client.close()
        return out.output

    assert asyncio.run(go()) == {"name": "Alice", "age": 30}
    twin.assert_done()


@pytest.mark.parametrize(
    "bad", ['{"name": "Alice", "age":', '{"name": "Alice", "age": "thirty"}'], ids=["not-json", "schema-mismatch"]
)
def test_l25_generate_object_failure_not_retried(make_twin: Any, bad: str) -> None:
    """L25: unparseable or schema-violating output raises NoObjectGeneratedError after one request."""
    twin = make_twin("openai")
    twin.script(ModelTurn(text=bad))

    async def go() -> None:
        client = twin.client()
        try:
            await generate_object("m", "Alice is 30", schema=PERSON, client=client)
        finally:
            await client.close()

    with pytest.raises(NoObjectGeneratedError):
        asyncio.run(go())
    assert len(twin.requests) == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_stream_object_partials_then_final(provider: str, make_twin: Any) -> None:
    """stream_object yields growing partial objects and ends with the complete validated one."""
    twin = make_twin(provider)
    alice = json.dumps({"name": "Alice Liddell", "age": 30})
    if provider == "anthropic":
        twin.script(ModelTurn(tool_calls=[ScriptedCall("structured_output", alice)]))
    else:
        twin.script(ModelTurn(text=alice, chunks=[alice[i : i + 7] for i in range(0, len(alice), 7)]))

    async def go() -> list[Any]:
        client = twin.client()
        out = [o async for o in stream_object("m", "Alice", schema=PERSON, client=client)]
        await client.close()
        return out

    objects = asyncio.run(go())
    assert objects[-1] == {"name": "Alice Liddell", "age": 30}
    if provider != "gemini":  # Gemini streams text chunks too, but one chunk may hold several of ours
        assert len(objects) >= 2 and objects[0] != objects[-1]
    assert all(isinstance(o, dict) for o in objects)
    twin.assert_done()


def test_stream_object_invalid_raises(make_twin: Any) -> None:
    """stream_object raises NoObjectGeneratedError when the finished output violates the schema."""
    twin = make_twin("openai")
    twin.script(ModelTurn(text='{"name": "Alice", "age": "old"}'))

    async def go() -> None:
        client = twin.client()
        try:
            async for _ in stream_object("m", "Alice", schema=PERSON, client=client):
                pass
        finally:
            await client.close()

    with pytest.raises(NoObjectGeneratedError):
        asyncio.run(go())


def test_partial_json_prefixes() -> None:
    """Every prefix of a JSON document parses to a value that only grows toward the full one."""
    from aos.adapters.llm.partial_json import parse_partial

    full = '{"name": "Alice \\"A\\" Smith", "age": 30, "tags": ["a", "b"], "ok": true, "n": null}'
    values = [parse_partial(full[:i]) for i in range(len(full) + 1)]
    assert values[0] is None and values[-1] == json.loads(full)
    assert values[full.index('"Al') + 3] == {"name": "Al"}
    sizes = [len(v) for v in values if isinstance(v, dict)]
    assert sizes == sorted(sizes), "keys never disappear as the text grows"

"""Conformance matrix rows L1-L3, L5, L6, L15-L18, L26 against each provider twin."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from aos.adapters.llm import (
    ContentKind,
    ContentPart,
    ImageData,
    Message,
    Request,
    Role,
    StreamAccumulator,
    StreamEventType,
    ToolChoice,
    ToolDefinition,
    stream,
)
from aos.adapters.llm.testing import Faults, ModelTurn, ProviderTwin, Turn

RAW_STOP = {"openai": "completed", "anthropic": "end_turn", "gemini": "STOP"}
WEATHER = ToolDefinition(
    "get_weather",
    "Weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def _complete(twin: ProviderTwin, request: Request) -> Any:
    async def go() -> Any:
        client = twin.client()
        try:
            return await client.complete(request)
        finally:
            await client.close()

    return asyncio.run(go())


def _sent(twin: ProviderTwin) -> dict[str, Any]:
    body = twin.requests[-1].body
    assert isinstance(body, dict)
    return body


def test_l1_simple_complete(twin: ProviderTwin) -> None:
    """L1: text, unified and raw finish reason, mapped usage and the raw body come back."""
    twin.script(ModelTurn(text="Hello there", input_tokens=12, output_tokens=3))
    resp = _complete(twin, Request(model="model-x", messages=[Message.user("hi")]))
    assert resp.text == "Hello there"
    assert (resp.finish_reason.reason, resp.finish_reason.raw) == ("stop", RAW_STOP[twin.provider])
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.total_tokens) == (12, 3, 15)
    assert resp.provider == twin.provider
    assert isinstance(resp.raw, dict) and resp.raw  # the provider's own body is kept
    twin.assert_done()


def test_l2_stream_text_with_split_frames(twin: ProviderTwin) -> None:
    """L2: split, CRLF and heartbeat-laden frames still give START, TEXT_START, deltas, TEXT_END, FINISH,
    and the joined deltas equal the accumulated and the FINISH response text."""
    text = "Stre\u00e4ming h\u00e9llo \u2603 world"
    twin.script(
        Turn(
            ModelTurn(text=text, chunks=[text[:5], text[5:13], text[13:]]),
            faults=Faults(chunk_sizes=[1, 3, 7, 2], crlf=True, heartbeat=True),
        )
    )

    async def go() -> list[Any]:
        client = twin.client()
        events = [e async for e in client.stream(Request(model="m", messages=[Message.user("hi")]))]
        await client.close()
        return events

    events = asyncio.run(go())
    kinds = [e.type for e in events]
    assert kinds[0] == StreamEventType.STREAM_START
    assert kinds[1] == StreamEventType.TEXT_START
    assert kinds[-2:] == [StreamEventType.TEXT_END, StreamEventType.FINISH]
    assert set(kinds[2:-2]) == {StreamEventType.TEXT_DELTA}
    acc = StreamAccumulator()
    for e in events:
        acc.process(e)
    joined = "".join(e.delta or "" for e in events if e.type == StreamEventType.TEXT_DELTA)
    assert joined == text == acc.response().text == events[-1].response.text
    assert events[-1].finish_reason.reason == "stop"
    twin.assert_done()


def test_l2_high_level_stream_text(twin: ProviderTwin) -> None:
    """L2: the high-level stream()'s text_stream concatenates to response().text."""
    twin.script(ModelTurn(text="abc def ghi"))

    async def go() -> tuple[str, str]:
        client = twin.client()
        result = stream("m", "hi", client=client)
        pieces = [d async for d in result.text_stream]
        resp = await result.response()
        await client.close()
        return "".join(pieces), resp.text

    joined, text = asyncio.run(go())
    assert joined == text == "abc def ghi"


def test_l3_system_and_developer_extraction(twin: ProviderTwin) -> None:
    """L3: SYSTEM and DEVELOPER go to the provider's system slot, never into the message list."""
    twin.script(ModelTurn(text="ok"))
    msgs = [Message.system("Be terse."), Message.developer("Use metric."), Message.user("hi")]
    _complete(twin, Request(model="m", messages=msgs))
    body = _sent(twin)
    if twin.provider == "openai":
        assert "Be terse." in body["instructions"] and "Use metric." in body["instructions"]
        assert [i.get("role") for i in body["input"]] == ["user"]
    elif twin.provider == "anthropic":
        assert [b["text"] for b in body["system"]] == ["Be terse.", "Use metric."]
        assert [m["role"] for m in body["messages"]] == ["user"]
    else:
        text = body["systemInstruction"]["parts"][0]["text"]
        assert "Be terse." in text and "Use metric." in text
        assert [c["role"] for c in body["contents"]] == ["user"]


def test_l5_tool_definitions(twin: ProviderTwin) -> None:
    """L5: tools are sent in each provider's native definition shape."""
    twin.script(ModelTurn(text="ok"))
    _complete(twin, Request(model="m", messages=[Message.user("hi")], tools=[WEATHER]))
    body = _sent(twin)
    if twin.provider == "openai":
        assert body["tools"] == [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": WEATHER.parameters,
            }
        ]
    elif twin.provider == "anthropic":
        tool = dict(body["tools"][0])
        tool.pop("cache_control", None)
        assert tool == {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER.parameters}
    else:
        assert body["tools"] == [
            {
                "functionDeclarations": [
                    {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER.parameters}
                ]
            }
        ]


EXPECTED_CHOICE = {
    "openai": ["auto", "none", "required", {"type": "function", "name": "get_weather"}],
    "anthropic": [{"type": "auto"}, None, {"type": "any"}, {"type": "tool", "name": "get_weather"}],
    "gemini": [
        {"mode": "AUTO"},
        {"mode": "NONE"},
        {"mode": "ANY"},
        {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
    ],
}


def test_l6_tool_choice_modes(twin: ProviderTwin) -> None:
    """L6: auto/none/required/named translate per provider; Anthropic 'none' omits the tools."""
    choices = [ToolChoice("auto"), ToolChoice("none"), ToolChoice("required"), ToolChoice("named", "get_weather")]
    twin.script(*[ModelTurn(text="ok") for _ in choices])
    for choice, expected in zip(choices, EXPECTED_CHOICE[twin.provider], strict=True):
        _complete(twin, Request(model="m", messages=[Message.user("hi")], tools=[WEATHER], tool_choice=choice))
        body = _sent(twin)
        if twin.provider == "openai":
            assert body["tool_choice"] == expected
        elif twin.provider == "anthropic":
            assert body.get("tool_choice") == expected
            assert ("tools" in body) == (expected is not None)
        else:
            assert body["toolConfig"]["functionCallingConfig"] == expected
    twin.assert_done()


def test_l15_max_tokens(twin: ProviderTwin) -> None:
    """L15: Anthropic defaults max_tokens to 4096; an explicit value maps to each provider's field."""
    twin.script(ModelTurn(text="ok"), ModelTurn(text="ok"))
    _complete(twin, Request(model="m", messages=[Message.user("hi")]))
    unset = _sent(twin)
    _complete(twin, Request(model="m", messages=[Message.user("hi")], max_tokens=321))
    body = _sent(twin)
    if twin.provider == "openai":
        assert "max_output_tokens" not in unset and body["max_output_tokens"] == 321
    elif twin.provider == "anthropic":
        assert unset["max_tokens"] == 4096 and body["max_tokens"] == 321
    else:
        assert "generationConfig" not in unset and body["generationConfig"]["maxOutputTokens"] == 321


def test_l16_reasoning_effort(twin: ProviderTwin) -> None:
    """L16: reasoning_effort maps to each provider's knob and is omitted when None."""
    twin.script(ModelTurn(text="ok"), ModelTurn(text="ok"))
    _complete(twin, Request(model="m", messages=[Message.user("hi")]))
    unset = _sent(twin)
    _complete(twin, Request(model="m", messages=[Message.user("hi")], reasoning_effort="high"))
    body = _sent(twin)
    if twin.provider == "openai":
        assert "reasoning" not in unset and body["reasoning"] == {"effort": "high"}
    elif twin.provider == "anthropic":
        assert "thinking" not in unset
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 16384}
        assert body["max_tokens"] > body["thinking"]["budget_tokens"]
    else:
        assert "generationConfig" not in unset
        assert body["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 24576


def test_l17_provider_options_and_beta_headers(twin: ProviderTwin) -> None:
    """L17: each adapter merges only its own provider_options; Anthropic beta headers are comma-joined."""
    options = {
        "openai": {"service_tier": "flex"},
        "anthropic": {
            "top_k": 5,
            "beta_headers": ["interleaved-thinking-2025-05-14", "token-efficient-tools-2025-02-19"],
        },
        "gemini": {"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]},
    }
    twin.script(ModelTurn(text="ok"))
    _complete(twin, Request(model="m", messages=[Message.user("hi")], provider_options=options))
    body, headers = _sent(twin), twin.requests[-1].headers
    if twin.provider == "openai":
        assert body["service_tier"] == "flex" and "top_k" not in body
    elif twin.provider == "anthropic":
        assert body["top_k"] == 5 and "beta_headers" not in body and "service_tier" not in body
        betas = headers["anthropic-beta"].split(",")
        assert betas[:2] == ["interleaved-thinking-2025-05-14", "token-efficient-tools-2025-02-19"]
    else:
        assert body["safetySettings"] == options["gemini"]["safetySettings"] and "service_tier" not in body


def test_l18_images_url_base64_and_path(twin: ProviderTwin, tmp_path: Any) -> None:
    """L18: URL, inline bytes and a local file path all reach the provider in its image shape."""
    path = tmp_path / "dot.png"
    path.write_bytes(PNG)
    parts = [
        ContentPart(ContentKind.TEXT, text="what is this?"),
        ContentPart(ContentKind.IMAGE, image=ImageData(url="https://example.invalid/cat.jpg", media_type="image/jpeg")),
        ContentPart(ContentKind.IMAGE, image=ImageData(data=PNG)),
        ContentPart(ContentKind.IMAGE, image=ImageData(url=str(path))),
    ]
    twin.script(ModelTurn(text="a dot"))
    _complete(twin, Request(model="m", messages=[Message(Role.USER, parts)]))
    body = _sent(twin)
    b64 = base64.b64encode(PNG).decode()
    if twin.provider == "openai":
        content = body["input"][0]["content"]
        assert content[0] == {"type": "input_text", "text": "what is this?"}
        assert content[1] == {"type": "input_image", "image_url": "https://example.invalid/cat.jpg"}
        assert content[2] == content[3] == {"type": "input_image", "image_url": f"data:image/png;base64,{b64}"}
    elif twin.provider == "anthropic":
        content = body["messages"][0]["content"]
        assert content[1]["source"] == {"type": "url", "url": "https://example.invalid/cat.jpg"}
        assert (
            content[2]["source"] == content[3]["source"] == {"type": "base64", "media_type": "image/png", "data": b64}
        )
    else:
        parts_sent = body["contents"][0]["parts"]
        assert parts_sent[1] == {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.invalid/cat.jpg"}}
        assert parts_sent[2] == parts_sent[3] == {"inlineData": {"mimeType": "image/png", "data": b64}}


RATE_HEADERS = {
    "openai": {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29000",
        "x-ratelimit-reset-requests": "120ms",
    },
    "anthropic": {
        "anthropic-ratelimit-requests-limit": "500",
        "anthropic-ratelimit-requests-remaining": "499",
        "anthropic-ratelimit-tokens-limit": "30000",
        "anthropic-ratelimit-tokens-remaining": "29000",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:00Z",
    },
}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_l26_rate_limit_headers(provider: str, make_twin: Any) -> None:
    """L26: x-ratelimit-* / anthropic-ratelimit-* headers populate Response.rate_limit (Gemini sends none)."""
    twin = make_twin(provider)
    twin.script(ModelTurn(text="ok", headers=RATE_HEADERS[provider]))
    resp = _complete(twin, Request(model="m", messages=[Message.user("hi")]))
    rl = resp.rate_limit
    assert rl is not None
    assert (rl.requests_limit, rl.requests_remaining, rl.tokens_limit, rl.tokens_remaining) == (500, 499, 30000, 29000)
    assert rl.reset_at in ("120ms", "2026-01-01T00:00:00Z")


def test_audio_is_rejected_or_inlined(twin: ProviderTwin) -> None:
    """8.3: audio is inlined where the API takes it (Gemini) and rejected before sending elsewhere."""
    from aos.adapters.llm import AudioData, InvalidRequestError

    audio = ContentPart(ContentKind.AUDIO, audio=AudioData(data=b"RIFF....WAVE", media_type="audio/wav"))
    request = Request(model="m", messages=[Message(Role.USER, [ContentPart(ContentKind.TEXT, text="listen"), audio])])
    if twin.provider == "gemini":
        twin.script(ModelTurn(text="heard"))
        _complete(twin, request)
        assert _sent(twin)["contents"][0]["parts"][1] == {
            "inlineData": {"mimeType": "audio/wav", "data": base64.b64encode(b"RIFF....WAVE").decode()}
        }
    else:
        with pytest.raises(InvalidRequestError):
            _complete(twin, request)
        assert twin.requests == []


def test_foreign_reasoning_is_not_replayed(twin: ProviderTwin) -> None:
    """1.2: thinking produced by another provider is never sent with its signature; it may become plain context."""
    from aos.adapters.llm import ThinkingData

    foreign = "gemini" if twin.provider != "gemini" else "anthropic"
    thought = ContentPart(
        ContentKind.THINKING, thinking=ThinkingData("I pondered.", signature="SIG-FOREIGN", provider=foreign, id="rs_x")
    )
    history = [
        Message.user("q"),
        Message(Role.ASSISTANT, [thought, ContentPart(ContentKind.TEXT, text="a")]),
        Message.user("q2"),
    ]
    twin.script(ModelTurn(text="ok"))
    _complete(twin, Request(model="m", messages=history))
    raw = twin.requests[-1].raw.decode()
    assert "SIG-FOREIGN" not in raw and "rs_x" not in raw


def test_stop_sequences_sent_or_warned(twin: ProviderTwin) -> None:
    """stop_sequences reach Anthropic and Gemini; OpenAI Responses cannot take them, so the response warns."""
    twin.script(ModelTurn(text="ok"))
    resp = _complete(twin, Request(model="m", messages=[Message.user("x")], stop_sequences=["END"]))
    body = _sent(twin)
    if twin.provider == "openai":
        assert "stop" not in json.dumps(body) and [w.code for w in resp.warnings] == ["unsupported_parameter"]
    elif twin.provider == "anthropic":
        assert body["stop_sequences"] == ["END"] and resp.warnings == []
    else:
        assert body["generationConfig"]["stopSequences"] == ["END"] and resp.warnings == []


def test_pdf_documents(twin: ProviderTwin) -> None:
    """8.3: a PDF document part is sent in each provider's document shape."""
    from aos.adapters.llm import DocumentData

    pdf = b"%PDF-1.4 tiny"
    b64 = base64.b64encode(pdf).decode()
    doc = ContentPart(
        ContentKind.DOCUMENT, document=DocumentData(data=pdf, media_type="application/pdf", file_name="a.pdf")
    )
    twin.script(ModelTurn(text="read it"))
    _complete(
        twin, Request(model="m", messages=[Message(Role.USER, [ContentPart(ContentKind.TEXT, text="summarise"), doc])])
    )
    body = _sent(twin)
    if twin.provider == "openai":
        assert body["input"][0]["content"][1] == {
            "type": "input_file",
            "filename": "a.pdf",
            "file_data": f"data:application/pdf;base64,{b64}",
        }
    elif twin.provider == "anthropic":
        assert body["messages"][0]["content"][1] == {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": b64},
        }
    else:
        assert body["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "application/pdf", "data": b64}}

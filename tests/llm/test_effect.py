"""The llm.generate effect adapter: frames, receipts, CAS references and secret hygiene."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

import pytest
from aos.adapters.llm.effect import LlmGenerateAdapter
from aos.adapters.llm.testing import (
    ErrorReply,
    ModelTurn,
    ScriptedCall,
    Turn,
    TwinRequest,
)

KEY = "sk-test-SECRET-0123456789abcdef"


class Secrets:
    """A secret store holding one key; records which names were asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(self, name: str) -> str:
        self.asked.append(name)
        return KEY


def _run(adapter: LlmGenerateAdapter, params: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], Secrets]:
    frames: list[dict[str, Any]] = []
    secrets = Secrets()
    receipt = asyncio.run(adapter.run(params, secrets, frames.append))
    return receipt, frames, secrets


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_stream_frames_and_receipt(provider: str, make_twin: Any) -> None:
    """Deltas go out as frames, the receipt carries the response, and the key comes from the secret store."""
    twin = make_twin(provider, api_key=KEY)
    twin.script(ModelTurn(text="Hello from the twin", chunks=["Hello ", "from ", "the twin"]))
    adapter = LlmGenerateAdapter(base_urls={provider: twin.base_url})
    receipt, frames, secrets = _run(
        adapter, {"provider": provider, "model": "m", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert receipt["status"] == "ok", receipt
    assert receipt["response"]["text"] == "Hello from the twin"
    assert [f["delta"] for f in frames if f["type"] == "text_delta"] == ["Hello ", "from ", "the twin"]
    assert secrets.asked == [f"{provider.upper()}_API_KEY"]
    assert KEY not in json.dumps(receipt)
    twin.assert_done()


def test_blob_references_are_resolved(make_twin: Any) -> None:
    """Message content given as a CAS reference is fetched through blob_get and sent inline."""
    twin = make_twin("anthropic", api_key=KEY)
    doc = ("a large design document \u2603 " * 2000).encode()
    ref = "sha256:" + hashlib.sha256(doc).hexdigest()
    store = {ref: doc}
    fetched: list[str] = []

    async def blob_get(h: str) -> bytes:
        fetched.append(h)
        return store[h]

    def expect(req: TwinRequest) -> None:
        content = req.body["messages"][0]["content"]
        assert content[0]["text"] == "summarise:" and content[1]["text"] == doc.decode()

    twin.script(Turn(ModelTurn(text="short"), expect=expect))
    adapter = LlmGenerateAdapter(blob_get=blob_get, base_urls={"anthropic": twin.base_url})
    params = {
        "provider": "anthropic",
        "model": "m",
        "stream": False,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"kind": "text", "text": "summarise:"},
                    {"kind": "blob", "ref": ref, "media_type": "text/markdown"},
                ],
            }
        ],
    }
    receipt, _, _ = _run(adapter, params)
    assert receipt["status"] == "ok" and fetched == [ref]
    twin.assert_done()


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_key_echoed_by_provider_is_scrubbed(
    provider: str, stream: bool, make_twin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider error body that echoes the API key never lets the key into the receipt or the logs."""
    twin = make_twin(provider, api_key=KEY)
    twin.script(ErrorReply(401, "Incorrect API key provided: {api_key}. Check it."))
    adapter = LlmGenerateAdapter(base_urls={provider: twin.base_url})
    with caplog.at_level(logging.DEBUG):
        receipt, _, _ = _run(
            adapter,
            {"provider": provider, "model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]},
        )
    assert receipt["status"] == "error"
    assert receipt["error"]["code"] == "LLMAuthentication" and receipt["error"]["retryable"] is False
    assert "[REDACTED]" in receipt["error"]["message"]
    assert KEY not in json.dumps(receipt)
    assert caplog.records, "the failure is logged"
    assert all(KEY not in r.getMessage() for r in caplog.records)
    assert twin.requests[0].headers.get("authorization", "").endswith(KEY) or KEY in twin.requests[0].headers.values()


def test_retry_then_success_and_history_round_trip(make_twin: Any) -> None:
    """A 429 is retried inside the effect; the receipt's message, fed back as history, replays
    the thinking block and its signature verbatim."""
    twin = make_twin("anthropic", api_key=KEY)
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    def expect(req: TwinRequest) -> None:
        assistant = req.body["messages"][1]
        assert assistant["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": "sig/+="}
        assert assistant["content"][1]["type"] == "tool_use"
        assert req.body["messages"][2]["content"][0]["tool_use_id"] == "toolu_000"

    twin.script(
        ErrorReply(429, "slow", headers={"retry-after": "2"}),
        ModelTurn(reasoning="hmm", reasoning_signature="sig/+=", tool_calls=[ScriptedCall("look", '{"q": "x"}')]),
        Turn(ModelTurn(text="done"), expect=expect),
    )
    adapter = LlmGenerateAdapter(base_urls={"anthropic": twin.base_url}, retry_sleep=fake_sleep)
    tools = [
        {"name": "look", "description": "", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
    ]
    first, _, _ = _run(
        adapter,
        {"provider": "anthropic", "model": "m", "tools": tools, "messages": [{"role": "user", "content": "go"}]},
    )
    assert first["status"] == "ok" and sleeps == [2.0]
    assert first["response"]["finish_reason"]["reason"] == "tool_calls"
    call = first["response"]["tool_calls"][0]
    history = [
        {"role": "user", "content": "go"},
        first["response"]["message"],
        {
            "role": "tool",
            "content": [
                {
                    "kind": "tool_result",
                    "tool_result": {"tool_call_id": call["id"], "content": "found", "is_error": False},
                }
            ],
        },
    ]
    second, _, _ = _run(adapter, {"provider": "anthropic", "model": "m", "tools": tools, "messages": history})
    assert second["response"]["text"] == "done"
    twin.assert_done()


def test_bad_params_become_error_receipts() -> None:
    """An unknown provider or a missing model is an error receipt, not an exception."""
    adapter = LlmGenerateAdapter()
    receipt, _, _ = _run(adapter, {"provider": "nope", "model": "m", "messages": []})
    assert receipt["status"] == "error" and receipt["error"]["code"] == "LLMConfiguration"
    receipt, _, _ = _run(adapter, {"provider": "openai", "messages": [], "base_url": "http://127.0.0.1:9/v1"})
    assert receipt["status"] == "error" and receipt["error"]["code"] == "LLMInvalidRequest"


def test_shared_http_client_is_reused_not_closed(make_twin: Any) -> None:
    """An injected httpx client serves several effects (keys ride per request) and stays open afterwards."""
    import httpx

    twin = make_twin("gemini", api_key=KEY)
    twin.script(ModelTurn(text="one"), ModelTurn(text="two"))

    async def go() -> tuple[list[str], bool]:
        async with httpx.AsyncClient() as shared:
            adapter = LlmGenerateAdapter(base_urls={"gemini": twin.base_url}, http_client=shared)
            texts = []
            for _ in range(2):
                receipt = await adapter.run(
                    {"provider": "gemini", "model": "m", "messages": [{"role": "user", "content": "x"}]},
                    Secrets(),
                    lambda f: None,
                )
                texts.append(receipt["response"]["text"])
            return texts, shared.is_closed

    texts, closed = asyncio.run(go())
    assert texts == ["one", "two"] and closed is False
    assert all(r.headers.get("x-goog-api-key") == KEY for r in twin.requests)
    twin.assert_done()


def test_history_chunks_are_read_once_and_a_chunk_is_not_a_message(make_twin: Any) -> None:
    """A history by reference with sealed chunks: each request gets every message in order (the second
    one from the chunk's cached message list), and a tail ref naming a chunk is a bad request."""
    from aos.adapters.llm.effect import BlobCache
    from aos.agents import history
    from aos.kernel.world import cbor

    h = history.new("be brief", [])
    for i in range(2 * history.CHUNK + 3):
        history.append(h, {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"})
    assert h["chunks"], "the history sealed a chunk"
    store: dict[str, bytes] = {}

    async def blob_put(data: bytes) -> str:
        store[cbor.sha256_text(data)] = data
        return cbor.sha256_text(data)

    async def blob_get(ref: str) -> bytes:
        return store[ref]

    seen: list[list[str]] = []

    def expect(req: TwinRequest) -> None:
        seen.append([m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
                     for m in req.body["messages"]])

    twin = make_twin("anthropic", api_key=KEY)
    twin.script(Turn(ModelTurn(text="one"), expect=expect), Turn(ModelTurn(text="two"), expect=expect))
    adapter = LlmGenerateAdapter(blob_get=blob_get, blob_put=blob_put, cache=BlobCache(),
                                 base_urls={"anthropic": twin.base_url})
    params = {"provider": "anthropic", "model": "m", "stream": False, "context": history.context(h),
              "blobs": dict(h["unsent"])}
    first, _, _ = _run(adapter, params)
    second, _, _ = _run(adapter, {k: v for k, v in params.items() if k != "blobs"})
    assert first["status"] == second["status"] == "ok", (first, second)
    assert seen[0] == seen[1] == [f"message {i}" for i in range(2 * history.CHUNK + 3)]
    chunk_as_message = {**params["context"], "tail": [h["chunks"][0][0]]}
    bad, _, _ = _run(adapter, {"provider": "anthropic", "model": "m", "stream": False, "context": chunk_as_message})
    assert bad["status"] == "error" and "is not a message" in bad["error"]["message"]
    twin.assert_done()

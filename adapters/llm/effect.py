"""The ``llm.generate`` effect adapter: how a world calls an LLM.

One effect is one LLM call (with retries), never a tool loop: in a world each
tool call is its own effect, emitted by the agent workflow. Stream deltas go
out as stream frames; the final response is the receipt. Failures are
receipts too (``status: "error"``), because a receipt is what the journal
records and the workflow reacts to.

The API key is resolved from the secret store at dispatch, lives only inside
this call, and is scrubbed from everything that leaves it: frames, receipts
(providers echo keys in 401 bodies) and log records.

Params::

    {"provider": "anthropic", "model": "claude-sonnet-4-5",
     "api_key_secret": "ANTHROPIC_API_KEY",   # default: <PROVIDER>_API_KEY
     "system": "...",                          # optional
     "messages": [{"role": "user", "content": "hi"},
                  {"role": "user", "content": [{"kind": "blob", "ref": "sha256:...",
                                                "media_type": "text/markdown"}]}],
     "tools": [{"name": ..., "description": ..., "parameters": {...}}],
     "options": {"temperature", "max_tokens", "reasoning_effort", "tool_choice",
                 "stop_sequences", "provider_options", "max_retries", "timeout"},
     "stream": true}
"""

from __future__ import annotations

import base64
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from . import adapter as adapters
from .catalog import estimate_cost
from .client import Client
from .errors import ConfigurationError, InvalidRequestError, SDKError
from .generate import generate
from .http import AdapterTimeout
from .retry import RetryPolicy
from .serial import message_from_dict, response_to_dict
from .streaming import StreamResult, stream
from .tools import Tool
from .types import Message, StreamEvent, StreamEventType, ToolChoice

log = logging.getLogger(__name__)

_ADAPTERS: dict[str, type[adapters.HttpAdapter]] = {
    "openai": adapters.OpenAIAdapter,
    "anthropic": adapters.AnthropicAdapter,
    "gemini": adapters.GeminiAdapter,
    "openai_compatible": adapters.OpenAICompatibleAdapter,
}
REDACTED = "[REDACTED]"


class SecretResolver(Protocol):
    def resolve(self, name: str) -> str | Awaitable[str]: ...


BlobGet = Callable[[str], bytes | Awaitable[bytes]]
EmitFrame = Callable[[dict[str, Any]], Any]


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def scrub(value: Any, secret: str) -> Any:
    """``value`` with every occurrence of ``secret`` replaced, recursively."""
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, REDACTED)
    if isinstance(value, dict):
        return {scrub(k, secret): scrub(v, secret) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, secret) for v in value]
    return value


def _frame(event: StreamEvent) -> dict[str, Any] | None:
    t = event.type
    if t == StreamEventType.TEXT_DELTA:
        return {"type": "text_delta", "delta": event.delta, "text_id": event.text_id}
    if t == StreamEventType.REASONING_DELTA:
        return {"type": "reasoning_delta", "delta": event.reasoning_delta}
    if (
        t in (StreamEventType.TOOL_CALL_START, StreamEventType.TOOL_CALL_DELTA, StreamEventType.TOOL_CALL_END)
        and event.tool_call
    ):
        frame: dict[str, Any] = {
            "type": StreamEventType(t).value,
            "id": event.tool_call.id,
            "name": event.tool_call.name,
        }
        if t == StreamEventType.TOOL_CALL_DELTA:
            frame["delta"] = event.delta
        return frame
    if t == StreamEventType.STREAM_START:
        return {"type": "stream_start"}
    return None


@dataclass
class LlmGenerateAdapter:
    """Carries out ``llm.generate`` effects.

    ``blob_get`` reads message content stored in the CAS by reference;
    ``base_urls`` overrides provider endpoints (proxies, twins in tests).
    """

    blob_get: BlobGet | None = None
    base_urls: dict[str, str] = field(default_factory=dict)
    timeout: AdapterTimeout | None = None
    http_client: httpx.AsyncClient | None = None
    retry_sleep: Callable[[float], Awaitable[None]] | None = None

    async def run(self, params: dict[str, Any], secrets: SecretResolver, emit_frame: EmitFrame) -> dict[str, Any]:
        key = ""
        try:
            provider = params.get("provider")
            if provider not in _ADAPTERS:
                raise ConfigurationError(f"llm.generate: unknown provider {provider!r}")
            key = await _maybe_await(secrets.resolve(params.get("api_key_secret") or f"{provider.upper()}_API_KEY"))
            try:
                return await self._call(params, provider, key, emit_frame)
            except (KeyError, ValueError, TypeError) as e:
                # malformed params are the workflow's bug; report them, do not crash the host
                raise InvalidRequestError(f"llm.generate: bad params: {type(e).__name__}: {e}") from e
        except SDKError as e:
            receipt = {"status": "error", "error": self._error(e)}
            log.warning("llm.generate failed: %s", scrub(f"{e.code}: {e}", key))
            return scrub(receipt, key)  # type: ignore[no-any-return]

    def _error(self, e: SDKError) -> dict[str, Any]:
        return {
            "code": e.code,
            "message": str(e),
            "retryable": e.retryable,
            "status_code": getattr(e, "status_code", None),
            "retry_after": getattr(e, "retry_after", None),
        }

    async def _call(self, params: dict[str, Any], provider: str, key: str, emit_frame: EmitFrame) -> dict[str, Any]:
        opts = dict(params.get("options") or {})
        adapter = _ADAPTERS[provider](
            key,
            params.get("base_url") or self.base_urls.get(provider),
            timeout=self.timeout,
            http_client=self.http_client,
        )
        client = Client({provider: adapter})
        policy = RetryPolicy(max_retries=int(opts.pop("max_retries", 2)))
        if self.retry_sleep is not None:
            policy.sleep = self.retry_sleep
        tool_choice = opts.pop("tool_choice", None)
        kwargs: dict[str, Any] = dict(
            messages=await self._messages(params.get("messages") or []),
            system=params.get("system"),
            tools=[
                Tool(t["name"], t.get("description", ""), t.get("parameters") or {"type": "object", "properties": {}})
                for t in params.get("tools") or []
            ],
            tool_choice=ToolChoice(**tool_choice) if isinstance(tool_choice, dict) else tool_choice,
            max_tool_rounds=0,  # tools are effects of their own in a world
            provider=provider,
            client=client,
            retry_policy=policy,
            **{
                k: opts[k]
                for k in (
                    "temperature",
                    "top_p",
                    "max_tokens",
                    "stop_sequences",
                    "reasoning_effort",
                    "provider_options",
                    "timeout",
                    "metadata",
                )
                if k in opts
            },
        )
        try:
            if params.get("stream", True):
                result: StreamResult = stream(params["model"], **kwargs)
                async for event in result:
                    frame = _frame(event)
                    if frame is not None:
                        await _maybe_await(emit_frame(scrub(frame, key)))
                response = await result.response()
            else:
                response = (await generate(params["model"], **kwargs)).response
        finally:
            await client.close()
        receipt: dict[str, Any] = {"status": "ok", "response": response_to_dict(response)}
        cost = estimate_cost(params["model"], response.usage, provider) if params.get("cost", False) else None
        if cost is not None:
            receipt["cost_usd"] = cost
        return scrub(receipt, key)  # type: ignore[no-any-return]

    async def _messages(self, raw: list[dict[str, Any]]) -> list[Message]:
        out = []
        for m in raw:
            content = m.get("content", "")
            if isinstance(content, list) and any(p.get("kind") == "blob" for p in content):
                m = dict(m, content=[await self._resolve_blob(p) if p.get("kind") == "blob" else p for p in content])
            msg = message_from_dict(m)
            out.append(msg)
        return out

    async def _resolve_blob(self, part: dict[str, Any]) -> dict[str, Any]:
        if self.blob_get is None:
            raise InvalidRequestError("llm.generate: message content by reference needs a blob store")
        data: bytes = await _maybe_await(self.blob_get(part["ref"]))
        media = part.get("media_type", "text/plain")
        if media.startswith("image/"):
            return {"kind": "image", "image": {"data_b64": base64.b64encode(data).decode(), "media_type": media}}
        return {"kind": "text", "text": data.decode("utf-8")}


__all__ = ["LlmGenerateAdapter", "SecretResolver", "scrub"]

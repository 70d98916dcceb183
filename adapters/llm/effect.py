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
     "stream": true}                           # default: while the world's frames are watched

Without ``stream`` the kernel streams only while someone watches the world's
frames (``World.tail`` with frames: aos-shell, the console); otherwise it makes
one plain request. The receipt holds the same response either way.

History by reference (what agent sessions send, ``aos.agents.history``)::

    {"provider": ..., "model": ..., "options": {...},
     "context": {"prefix": "sha256:...",          # blob {"system"?, "tools"}
                 "chunks": ["sha256:...", ...],    # blobs: lists of message refs
                 "tail": ["sha256:...", ...]},     # message blobs
     "blobs": {"sha256:...": value, ...},          # content first named by this intent
     "messages": [...]}                            # optional, after the context's messages

A blob is the canonical CBOR of its value, addressed by its hash. The
adapter checks each inline blob against its ref, stores it in the world's
CAS (awaited before the receipt, so an ok receipt means they are durable;
the kernel's store joins them to the receipt's own journal write) and
assembles the request from CAS. Decoded blobs and their ``Message``
objects are cached (``BlobCache``): they are immutable, and a session's
next request differs from its last only by the newest messages.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
from collections import OrderedDict
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

from aos.kernel.world import cbor

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
BlobPut = Callable[[bytes], str | Awaitable[str]]
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


class BlobCache:
    """Decoded history blobs (and the ``Message`` built from each) by ``(scope, ref)``,
    least recently used first out, bounded by the blobs' encoded size. ``scope`` is the
    universe: a world only reads its own universe's CAS, through the cache too."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[tuple[str, str], list[Any]] = OrderedDict()  # [value, size, Message|None]

    def get(self, scope: str, ref: str) -> list[Any] | None:
        item = self._items.get((scope, ref))
        if item is not None:
            self._items.move_to_end((scope, ref))
        return item

    def put(self, scope: str, ref: str, value: Any, size: int) -> list[Any]:
        item = self._items.get((scope, ref))
        if item is None:
            item = self._items[(scope, ref)] = [value, size, None]
            self.size += size
            while self.size > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self.size -= old[1]
        return item


@dataclass
class LlmGenerateAdapter:
    """Carries out ``llm.generate`` effects.

    ``blob_get`` reads message content stored in the CAS by reference and
    ``blob_put`` stores the inline blobs of a history by reference (``cache``
    keeps decoded blobs across calls, under ``scope``); ``base_urls``
    overrides provider endpoints (proxies, twins in tests).
    """

    blob_get: BlobGet | None = None
    blob_put: BlobPut | None = None
    cache: BlobCache | None = None
    scope: str = ""
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
        stored: asyncio.Future[None] | None = None
        system, tools = params.get("system"), params.get("tools") or []
        messages = await self._messages(params.get("messages") or [])
        if params.get("context") is not None:
            stored, prefix, history = await self._context(params)
            system, tools = prefix.get("system", system), prefix.get("tools", tools)
            messages = history + messages
        try:
            return await self._generate(params, provider, key, emit_frame, system, tools, messages)
        finally:
            if stored is not None:
                await stored  # the inline blobs are durable before any receipt says ok

    async def _generate(self, params: dict[str, Any], provider: str, key: str, emit_frame: EmitFrame,
                        system: str | None, tools: list[dict[str, Any]], messages: list[Message]) -> dict[str, Any]:
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
            messages=messages,
            system=system,
            tools=[
                Tool(t["name"], t.get("description", ""), t.get("parameters") or {"type": "object", "properties": {}})
                for t in tools
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
        if cost is not None:  # world values have no floats: whole micro-dollars
            receipt["cost_micro_usd"] = int(round(cost * 1_000_000))
        return scrub(receipt, key)  # type: ignore[no-any-return]

    async def _context(self, params: dict[str, Any]) -> tuple[asyncio.Future[None] | None, dict[str, Any],
                                                             list[Message]]:
        """Store the inline blobs (in the background) and assemble the history from blobs."""
        cache = self.cache if self.cache is not None else BlobCache(0)
        ctx, inline = params["context"], params.get("blobs") or {}
        datas = []
        for ref, value in inline.items():
            data = cbor.encode(value)
            if cbor.sha256_text(data) != ref:
                raise InvalidRequestError(f"llm.generate: inline blob {ref} does not match its content")
            cache.put(self.scope, ref, cbor.decode_trusted(data), len(data))
            datas.append(data)
        stored = None
        if datas:
            if self.blob_put is None:
                raise InvalidRequestError("llm.generate: a history by reference needs a blob store")
            stored = asyncio.ensure_future(self._store(datas))
        try:
            prefix = await self._blob(cache, ctx["prefix"])
            messages = []
            for chunk in ctx.get("chunks") or []:
                messages.extend(await self._chunk(cache, chunk))
            for ref in ctx.get("tail") or []:
                messages.append(await self._message(cache, ref))
        except BaseException:
            if stored is not None:
                stored.cancel()
            raise
        if not isinstance(prefix, dict):
            raise InvalidRequestError("llm.generate: the context prefix is not a {system, tools} blob")
        return stored, prefix, messages

    async def _store(self, datas: list[bytes]) -> None:
        assert self.blob_put is not None
        await asyncio.gather(*(_maybe_await(self.blob_put(d)) for d in datas))

    async def _blob(self, cache: BlobCache, ref: str) -> Any:
        item = cache.get(self.scope, ref)
        if item is not None:
            return item[0]
        if self.blob_get is None:
            raise InvalidRequestError("llm.generate: a history by reference needs a blob store")
        try:
            data: bytes = await _maybe_await(self.blob_get(ref))
        except Exception as e:  # noqa: BLE001 - unknown or corrupt blob: the workflow's request is bad
            raise InvalidRequestError(f"llm.generate: history blob {ref}: {e}") from e
        return cache.put(self.scope, ref, cbor.decode(data), len(data))[0]

    async def _chunk(self, cache: BlobCache, ref: str) -> list[Message]:
        """A sealed chunk's messages, kept with the chunk's blob: a chunk never changes, and a long
        history is mostly chunks, so each request reads one entry per chunk instead of one per message."""
        refs = await self._blob(cache, ref)
        item = cache.get(self.scope, ref)
        assert item is not None
        if item[2] is None:
            if not isinstance(refs, list):
                raise InvalidRequestError(f"llm.generate: history blob {ref} is not a chunk of message refs")
            item[2] = [await self._message(cache, r) for r in refs]
        return list(item[2])

    async def _message(self, cache: BlobCache, ref: str) -> Message:
        await self._blob(cache, ref)
        item = cache.get(self.scope, ref)
        assert item is not None
        if not isinstance(item[0], dict):  # (a chunk's item holds its message list: not a message either)
            raise InvalidRequestError(f"llm.generate: history blob {ref} is not a message")
        if item[2] is None:
            item[2] = (await self._messages([item[0]]))[0]
        return item[2]  # type: ignore[no-any-return]

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

"""Provider adapters: one pure codec module plus the shared HTTP shell.

An adapter never retries (ULS 6.6) and holds no per-request state, so one
instance is safe under concurrent use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any, Protocol

import httpx

from .errors import RequestTimeoutError, SDKError
from .http import AdapterTimeout, HttpTransport
from .providers import anthropic, gemini, openai, openai_compat
from .types import Request, Response, StreamEvent, StreamEventType


class ProviderAdapter(Protocol):
    name: str

    async def complete(self, request: Request) -> Response: ...

    def stream(self, request: Request) -> AsyncIterator[StreamEvent]: ...

    async def close(self) -> None: ...


class HttpAdapter:
    """The generic adapter; the provider classes below only pick the codec."""

    codec: ModuleType

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        default_headers: dict[str, str] | None = None,
        timeout: AdapterTimeout | float | None = None,
        http_client: httpx.AsyncClient | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or self.codec.NAME
        if isinstance(timeout, (int, float)):
            timeout = AdapterTimeout(request=float(timeout))
        self.timeout = timeout or AdapterTimeout()
        headers = {**(default_headers or {}), **self.codec.auth_headers(api_key)}
        self._http = HttpTransport(
            self.name, base_url or self.codec.DEFAULT_BASE_URL, headers, self.timeout, http_client
        )

    async def complete(self, request: Request) -> Response:
        call = self.codec.encode_request(request, stream=False)
        body, headers = await self._http.post_json(call)
        resp: Response = self.codec.decode_response(body, headers)
        resp.provider = self.name
        resp.warnings.extend(call.warnings)
        return resp

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        """Typed events ending in FINISH or ERROR.

        Errors before the first event (HTTP status, connect) are raised, so a
        caller may retry them; after that every failure is an ERROR event.
        """
        call = self.codec.encode_request(request, stream=True)
        headers, events = await self._http.open_sse(call)
        decoder = self.codec.StreamDecoder(headers)
        gap = self.timeout.stream_read
        try:
            while True:
                try:
                    async with asyncio.timeout(gap):
                        sse = await anext(events)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    err = RequestTimeoutError(f"{self.name}: no stream event for {gap:g}s")
                    yield StreamEvent(StreamEventType.ERROR, error=err)
                    return
                except SDKError as e:
                    yield StreamEvent(StreamEventType.ERROR, error=e)
                    return
                out = decoder.decode_stream_event(sse)
                for event in out:
                    if event.response is not None:
                        event.response.provider = self.name
                        event.response.warnings.extend(call.warnings)
                    if event.type == StreamEventType.FINISH:
                        # read to the end of the body first, so the connection goes back to the pool
                        await _drain(events, gap)
                    yield event
                    if event.type in (StreamEventType.FINISH, StreamEventType.ERROR):
                        return
            for event in decoder.end():
                if event.response is not None:
                    event.response.provider = self.name
                    event.response.warnings.extend(call.warnings)
                yield event
        finally:
            await events.aclose()

    async def close(self) -> None:
        await self._http.aclose()

    def supports_tool_choice(self, mode: str) -> bool:
        return mode in ("auto", "none", "required", "named")


async def _drain(events: AsyncIterator[object], gap: float) -> None:
    try:
        async with asyncio.timeout(gap):
            async for _ in events:
                pass
    except (TimeoutError, SDKError):
        pass  # the response is complete; a bad tail only costs the pooled connection


class OpenAIAdapter(HttpAdapter):
    codec = openai


class AnthropicAdapter(HttpAdapter):
    codec = anthropic

    def __init__(self, api_key: str, base_url: str | None = None, **kwargs: Any) -> None:
        # accept both the bare host (Anthropic SDK style) and a URL ending in /v1
        if base_url and base_url.rstrip("/").endswith("/v1"):
            base_url = base_url.rstrip("/")[:-3]
        super().__init__(api_key, base_url, **kwargs)


class GeminiAdapter(HttpAdapter):
    codec = gemini

    def __init__(self, api_key: str, base_url: str | None = None, **kwargs: Any) -> None:
        if base_url and base_url.rstrip("/").endswith("/v1beta"):
            base_url = base_url.rstrip("/")[:-7]
        super().__init__(api_key, base_url, **kwargs)


class OpenAICompatibleAdapter(HttpAdapter):
    codec = openai_compat

"""The I/O shell: the only module that touches the network.

Provider modules are pure (``encode_request`` -> ``HttpCall``; bytes and JSON
in, typed values out). This module sends an ``HttpCall`` with httpx and turns
transport failures into the error hierarchy at the boundary.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import httpx

from .errors import (
    NetworkError,
    RequestTimeoutError,
    SDKError,
    StreamError,
    error_from_http,
)
from .sse import SseEvent, SseParser
from .types import Warning


@dataclass
class HttpCall:
    """One request, fully described by a provider's pure encoder (no auth yet)."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    # request fields the provider cannot take; they end up on Response.warnings
    warnings: list[Warning] = field(default_factory=list)


@dataclass
class AdapterTimeout:
    connect: float = 10.0
    request: float = 120.0
    stream_read: float = 30.0  # the longest allowed gap between stream events


def dumps(body: Any) -> bytes:
    # ensure_ascii=False keeps provider strings (thinking text, signatures) byte-identical
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _decode_body(raw: bytes) -> tuple[Any, str]:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text), text
    except ValueError:
        return None, text


class HttpTransport:
    """A pooled httpx client bound to one provider's base URL."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: dict[str, str],
        timeout: AdapterTimeout,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.provider = provider
        self.timeout = timeout
        self._headers = headers
        self._owned = client is None
        self._client = client or httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout.request, connect=timeout.connect),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )
        self._base_url = base_url.rstrip("/")

    def _request(self, call: HttpCall) -> httpx.Request:
        headers = {"content-type": "application/json", **self._headers, **call.headers}
        return self._client.build_request(
            "POST", self._base_url + call.path, content=dumps(call.body), headers=headers, params=call.params or None
        )

    def _error(self, resp: httpx.Response, raw: bytes) -> SDKError:
        body, text = _decode_body(raw)
        return error_from_http(self.provider, resp.status_code, body, dict(resp.headers), text)

    async def post_json(self, call: HttpCall) -> tuple[Any, dict[str, str]]:
        """Send and return (decoded JSON body, headers); raise a typed error otherwise."""
        try:
            resp = await self._client.send(self._request(call))
        except httpx.TimeoutException as e:
            raise RequestTimeoutError(f"{self.provider}: request timed out", cause=e) from None
        except httpx.HTTPError as e:
            raise NetworkError(f"{self.provider}: {type(e).__name__}", cause=e) from None
        if resp.status_code >= 400:
            raise self._error(resp, resp.content)
        body, text = _decode_body(resp.content)
        if body is None:
            raise NetworkError(f"{self.provider}: response is not JSON: {text[:200]}")
        return body, dict(resp.headers)

    async def open_sse(self, call: HttpCall) -> tuple[dict[str, str], AsyncGenerator[SseEvent, None]]:
        """Open a stream. HTTP errors raise here, before any event exists."""
        try:
            resp = await self._client.send(self._request(call), stream=True)
        except httpx.TimeoutException as e:
            raise RequestTimeoutError(f"{self.provider}: connect timed out", cause=e) from None
        except httpx.HTTPError as e:
            raise NetworkError(f"{self.provider}: {type(e).__name__}", cause=e) from None
        if resp.status_code >= 400:
            try:
                raw = await resp.aread()
            except httpx.HTTPError:
                raw = b""
            finally:
                await resp.aclose()
            raise self._error(resp, raw)
        return dict(resp.headers), self._events(resp)

    async def _events(self, resp: httpx.Response) -> AsyncGenerator[SseEvent, None]:
        parser = SseParser()
        try:
            async for chunk in resp.aiter_bytes():
                for event in parser.feed(chunk):
                    yield event
        except httpx.HTTPError as e:
            # the connection died after the stream started: never retried (ULS 6.6)
            raise StreamError(f"{self.provider}: stream broken: {type(e).__name__}", cause=e) from None
        finally:
            await resp.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()

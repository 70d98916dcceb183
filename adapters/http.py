"""``http.request``: one HTTP(S) request to a host the grant lists.

How it works. The URL's host (and port, the scheme's default if absent) is
checked against the grant's ``hosts`` before anything touches the network:
an entry ``"host"`` allows that host on any port, ``"host:port"`` (``"[::1]:8080"``
for IPv6) only that port, ``"*"`` any host. Redirects are not followed
unless ``follow_redirects`` is set; then each hop is checked against the
grant the same way, and headers that carried secrets are dropped when the
origin changes. The request goes through a fresh ``httpx.AsyncClient`` with
``trust_env=False`` (host proxy variables and netrc are ignored), under one
overall deadline. The response body is streamed and kept up to a cap.

A header value ``{"secret": "NAME"}`` is resolved through ``call.secrets``;
the value is scrubbed (``[redacted]``) from everything in the receipt,
including response headers and body, in case the server echoes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ._common import (
    Fail,
    Scrubber,
    decode_text,
    effect_name,
    grant_num,
    p_bool,
    p_int,
    p_seconds,
    p_str,
    resolve_secret,
    secret_ref,
)
from .base import EffectCall, FrameSink, Receipt

MiB = 1024 * 1024
DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 300.0  # grant ``max_timeout_s`` overrides
DEFAULT_BODY_BYTES = 1 * MiB
MAX_BODY_BYTES = 16 * MiB  # grant ``max_body_bytes`` overrides
MAX_REDIRECTS = 5
_DEFAULT_PORT = {"http": 80, "https": 443}
_TOKEN = set("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _entry(entry: str) -> tuple[str, int | None]:
    """``"host"`` / ``"host:port"`` / ``"[v6]:port"`` / ``"v6"`` -> (host, port or None)."""
    e = entry.strip().lower()
    if e.startswith("["):
        host, _, rest = e[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif e.count(":") == 1:
        host, port = e.split(":")
    else:
        host, port = e, ""
    return host.rstrip("."), (int(port) if port.isdigit() else None)


def host_allowed(url: httpx.URL, hosts: Sequence[str]) -> bool:
    host = url.host.lower().rstrip(".")
    port = url.port or _DEFAULT_PORT.get(url.scheme)
    for entry in hosts:
        if entry.strip() == "*":
            return True
        h, p = _entry(entry)
        if h == host and (p is None or p == port):
            return True
    return False


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORT.get(url.scheme)


class HttpAdapter:
    """Carries out ``http.request`` effects under a ``{"hosts": [...]}`` grant.

    ``transport`` is for tests and embedding (an ``httpx`` transport); by
    default each request opens its own connections.
    """

    kinds: tuple[str, ...] = ("http.request",)

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport

    async def run(self, call: EffectCall, emit_frame: FrameSink) -> Receipt:
        if effect_name(call.kind) != "http.request":
            return Receipt.fail("unsupported", f"http adapter does not handle {call.kind!r}")
        scrub = Scrubber()
        try:
            receipt = await self._request(call, scrub)
        except Fail as f:
            receipt = f.receipt()
        return scrub.receipt(receipt)

    async def _request(self, call: EffectCall, scrub: Scrubber) -> Receipt:
        grant, params = call.grant, call.params
        hosts = grant.get("hosts")
        if not isinstance(hosts, (list, tuple)) or not all(isinstance(h, str) for h in hosts):
            raise Fail("bad_grant", "http grant needs 'hosts', a list of host or host:port entries")
        methods = grant.get("methods")

        method = p_str(params, "method", "GET").upper()
        if not method or not set(method) <= _TOKEN:
            raise Fail("invalid_params", f"bad HTTP method {method!r}")
        if methods is not None and method not in {str(m).upper() for m in methods}:
            raise Fail("not_allowed", f"method {method} is not allowed by the grant")
        try:
            url = httpx.URL(p_str(params, "url"))
        except httpx.InvalidURL as e:
            raise Fail("invalid_params", f"bad url: {e}") from None
        if url.scheme not in _DEFAULT_PORT or not url.host:
            raise Fail("invalid_params", "url must be an absolute http:// or https:// URL")
        if not host_allowed(url, hosts):
            raise Fail("not_allowed", f"host {url.netloc.decode('ascii', 'replace')!r} is not allowed by the grant")

        headers: list[tuple[str, str]] = []
        secret_names: set[str] = set()
        raw_headers = params.get("headers") or {}
        if not isinstance(raw_headers, Mapping):
            raise Fail("invalid_params", "'headers' must be a map of names to text or {\"secret\": NAME}")
        for name, value in raw_headers.items():
            if not isinstance(name, str) or not name or not set(name) <= _TOKEN:
                raise Fail("invalid_params", f"bad header name {name!r}")
            ref = secret_ref(value)
            if ref is not None:
                value = resolve_secret(call, ref)
                scrub.add(value)
                secret_names.add(name.lower())
            elif not isinstance(value, str):
                raise Fail("invalid_params", f"header {name!r} must be text or {{\"secret\": NAME}}")
            if "\r" in value or "\n" in value or "\0" in value:
                raise Fail("invalid_params", f"header {name!r} contains a line break")
            headers.append((name, value))
        if p_bool(params, "send_idempotency_key", False):
            headers.append(("Idempotency-Key", call.idempotency_key))

        body = params.get("body")
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        elif body is not None and not isinstance(body, bytes):
            raise Fail("invalid_params", "'body' must be text or bytes")

        timeout = p_seconds(params, "timeout_s", DEFAULT_TIMEOUT_S, float(grant_num(grant, "max_timeout_s", MAX_TIMEOUT_S)))
        max_cap = int(grant_num(grant, "max_body_bytes", MAX_BODY_BYTES))
        cap = min(p_int(params, "max_body_bytes", min(DEFAULT_BODY_BYTES, max_cap)), max_cap)
        encoding = p_str(params, "encoding", "utf-8", choices=("utf-8", "bytes"))
        follow = p_bool(params, "follow_redirects", False)

        try:
            async with asyncio.timeout(timeout):
                async with httpx.AsyncClient(
                    trust_env=False, follow_redirects=False, timeout=httpx.Timeout(timeout), transport=self._transport
                ) as client:
                    return await self._exchange(client, method, url, headers, secret_names, body, hosts, follow, cap, encoding, scrub)
        except (TimeoutError, httpx.TimeoutException):
            return Receipt("timeout", {}, "timeout", f"{method} {url.host} got no complete answer within {timeout:g}s")
        except httpx.UnsupportedProtocol as e:
            raise Fail("invalid_params", f"unsupported url: {e}") from None
        except (httpx.TransportError, httpx.StreamError, httpx.DecodingError) as e:
            detail = str(e) or type(e).__name__
            return Receipt.fail("connection_error", f"{method} {url.host}: {detail}".splitlines()[0])

    async def _exchange(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: httpx.URL,
        headers: list[tuple[str, str]],
        secret_names: set[str],
        body: bytes | None,
        hosts: Sequence[str],
        follow: bool,
        cap: int,
        encoding: str,
        scrub: Scrubber,
    ) -> Receipt:
        origin = _origin(url)
        for hop in range(MAX_REDIRECTS + 1):
            request = client.build_request(method, url, headers=headers, content=body)
            response = await client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if follow and response.is_redirect and location is not None:
                    if hop == MAX_REDIRECTS:
                        return Receipt.fail("too_many_redirects", f"more than {MAX_REDIRECTS} redirects")
                    try:
                        url = url.join(location)
                    except httpx.InvalidURL:
                        return Receipt.fail("invalid_redirect", "the server redirected to a malformed URL")
                    if url.scheme not in _DEFAULT_PORT or not host_allowed(url, hosts):
                        return Receipt.fail("not_allowed", f"redirect to {url.host!r} is not allowed by the grant")
                    if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                        method, body = ("HEAD" if method == "HEAD" else "GET"), None
                        headers = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length")]
                    if _origin(url) != origin:  # never carry a secret to another origin
                        headers = [(k, v) for k, v in headers if k.lower() not in secret_names]
                    continue
                keep = max(scrub.longest - 1, 0)
                data = bytearray()
                truncated = False
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > cap + keep:
                        truncated = True
                        break
                truncated = truncated or len(data) > cap
                raw = scrub.bytes(bytes(data))[:cap]
            finally:
                await response.aclose()
            payload: dict[str, Any] = {
                "status": response.status_code,
                "url": str(url),
                "headers": [[k.decode("latin-1").lower(), v.decode("latin-1")] for k, v in response.headers.raw],
                "body": raw if encoding == "bytes" else decode_text(raw, truncated),
                "encoding": encoding,
                "truncated": truncated,
            }
            if response.status_code >= 400:
                return Receipt.fail("http_status", f"{method} {url.host} answered {response.status_code}", **payload)
            return Receipt.ok(**payload)
        raise AssertionError("unreachable")

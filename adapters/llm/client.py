"""The core client (ULS 2): routing by provider, middleware, no retries.

Routing: ``request.provider``, else the default provider, else
``ConfigurationError`` (the client never guesses from the model name).
Middleware is an onion: requests pass through in registration order,
responses come back in reverse; streaming middleware wraps the iterator.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from .adapter import AnthropicAdapter, GeminiAdapter, OpenAIAdapter, ProviderAdapter
from .errors import ConfigurationError
from .types import Request, Response, StreamEvent

CompleteNext = Callable[[Request], Awaitable[Response]]
StreamNext = Callable[[Request], AsyncIterator[StreamEvent]]


@runtime_checkable
class StreamMiddleware(Protocol):
    """A middleware that also wraps streams. A plain async function
    ``fn(request, next) -> Response`` is a complete-only middleware."""

    async def complete(self, request: Request, next: CompleteNext) -> Response: ...

    def stream(self, request: Request, next: StreamNext) -> AsyncIterator[StreamEvent]: ...


Middleware = Callable[[Request, CompleteNext], Awaitable[Response]] | StreamMiddleware


class Client:
    def __init__(
        self,
        providers: Mapping[str, ProviderAdapter] | None = None,
        default_provider: str | None = None,
        middleware: list[Middleware] | None = None,
    ) -> None:
        self.providers: dict[str, ProviderAdapter] = dict(providers or {})
        self.default_provider = default_provider or next(iter(self.providers), None)
        self.middleware: list[Middleware] = list(middleware or [])

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> Client:
        """Register each provider whose key is set; the first one is the default."""
        env = os.environ if env is None else env
        providers: dict[str, ProviderAdapter] = {}
        if env.get("OPENAI_API_KEY"):
            headers = {}
            if env.get("OPENAI_ORG_ID"):
                headers["openai-organization"] = env["OPENAI_ORG_ID"]
            if env.get("OPENAI_PROJECT_ID"):
                headers["openai-project"] = env["OPENAI_PROJECT_ID"]
            providers["openai"] = OpenAIAdapter(
                env["OPENAI_API_KEY"], env.get("OPENAI_BASE_URL"), default_headers=headers
            )
        if env.get("ANTHROPIC_API_KEY"):
            providers["anthropic"] = AnthropicAdapter(env["ANTHROPIC_API_KEY"], env.get("ANTHROPIC_BASE_URL"))
        gemini_key = env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY")
        if gemini_key:
            providers["gemini"] = GeminiAdapter(gemini_key, env.get("GEMINI_BASE_URL"))
        return cls(providers, **kwargs)

    def register_adapter(self, name: str, adapter: ProviderAdapter) -> None:
        self.providers[name] = adapter
        if self.default_provider is None:
            self.default_provider = name

    def use(self, middleware: Middleware) -> None:
        self.middleware.append(middleware)

    def adapter_for(self, request: Request) -> ProviderAdapter:
        name = request.provider or self.default_provider
        if name is None:
            raise ConfigurationError("no provider on the request and no default provider")
        adapter = self.providers.get(name)
        if adapter is None:
            raise ConfigurationError(f"provider {name!r} is not registered (have {sorted(self.providers)})")
        return adapter

    async def complete(self, request: Request) -> Response:
        """One call, no retries."""

        async def call(req: Request) -> Response:
            return await self.adapter_for(req).complete(req)

        handler: CompleteNext = call
        for mw in reversed(self.middleware):
            handler = _wrap_complete(mw, handler)
        return await handler(request)

    def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        """An event iterator, returned at once; it must be consumed or closed."""

        def call(req: Request) -> AsyncIterator[StreamEvent]:
            return self.adapter_for(req).stream(req)

        handler: StreamNext = call
        for mw in reversed(self.middleware):
            if isinstance(mw, StreamMiddleware):
                handler = _wrap_stream(mw, handler)
        return handler(request)

    async def close(self) -> None:
        for adapter in self.providers.values():
            await adapter.close()


def _wrap_complete(mw: Middleware, nxt: CompleteNext) -> CompleteNext:
    if isinstance(mw, StreamMiddleware):
        return lambda req: mw.complete(req, nxt)
    return lambda req: mw(req, nxt)


def _wrap_stream(mw: StreamMiddleware, nxt: StreamNext) -> StreamNext:
    return lambda req: mw.stream(req, nxt)


_default_client: Client | None = None


def set_default_client(client: Client | None) -> None:
    global _default_client
    _default_client = client


def get_default_client() -> Client:
    """The module default client, built from the environment on first use."""
    global _default_client
    if _default_client is None:
        _default_client = Client.from_env()
    return _default_client

"""The core client: setup from env and by hand, routing, middleware, the module default client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aos.adapters.llm import (
    AnthropicAdapter,
    Client,
    ConfigurationError,
    GeminiAdapter,
    Message,
    OpenAIAdapter,
    Request,
    Response,
    StreamEvent,
    StreamEventType,
    generate,
    get_default_client,
    set_default_client,
)
from aos.adapters.llm.testing import ModelTurn, ProviderTwin

ENV_NAMES = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    "gemini": ("GEMINI_API_KEY", "GEMINI_BASE_URL"),
}


def test_from_env_registers_present_providers_in_order() -> None:
    """from_env registers only providers with keys, the first one is the default, GOOGLE_API_KEY is a fallback."""
    client = Client.from_env({"ANTHROPIC_API_KEY": "a", "GOOGLE_API_KEY": "g"})
    assert list(client.providers) == ["anthropic", "gemini"] and client.default_provider == "anthropic"
    assert isinstance(client.providers["gemini"], GeminiAdapter)
    full = Client.from_env({"GEMINI_API_KEY": "g", "OPENAI_API_KEY": "o", "ANTHROPIC_API_KEY": "a"})
    assert list(full.providers) == ["openai", "anthropic", "gemini"] and full.default_provider == "openai"
    assert Client.from_env({}).providers == {}


def test_from_env_reaches_the_provider(twin: ProviderTwin) -> None:
    """Keys and base URLs from the environment authenticate against each provider's twin."""
    key_var, url_var = ENV_NAMES[twin.provider]
    twin.script(ModelTurn(text="env ok"))

    async def go() -> str:
        client = Client.from_env({key_var: twin.api_key, url_var: twin.base_url})
        resp = await client.complete(Request(model="m", messages=[Message.user("x")]))
        await client.close()
        return resp.text

    assert asyncio.run(go()) == "env ok"


def test_routing_by_provider_and_default(make_twin: Any) -> None:
    """request.provider picks the adapter; without it the default provider is used."""
    o, a = make_twin("openai"), make_twin("anthropic")
    o.script(ModelTurn(text="from openai"), ModelTurn(text="default openai"))
    a.script(ModelTurn(text="from anthropic"))

    async def go() -> list[str]:
        client = Client(
            {"openai": OpenAIAdapter(o.api_key, o.base_url), "anthropic": AnthropicAdapter(a.api_key, a.base_url)},
            default_provider="openai",
        )
        out = []
        for provider in ("openai", "anthropic", None):
            out.append(
                (await client.complete(Request(model="m", messages=[Message.user("x")], provider=provider))).text
            )
        await client.close()
        return out

    assert asyncio.run(go()) == ["from openai", "from anthropic", "default openai"]
    o.assert_done()
    a.assert_done()


def test_configuration_error_without_provider() -> None:
    """No provider and no default, or an unregistered name, raise ConfigurationError (the client never guesses)."""

    async def go(client: Client, provider: str | None) -> None:
        await client.complete(Request(model="gpt-5.2", messages=[Message.user("x")], provider=provider))

    with pytest.raises(ConfigurationError):
        asyncio.run(go(Client(), None))
    with pytest.raises(ConfigurationError):
        asyncio.run(go(Client({"openai": OpenAIAdapter("k", "http://127.0.0.1:9/v1")}), "anthropic"))


class Recorder:
    """A middleware wrapping both complete and stream, logging its position in the onion."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def complete(self, request: Request, next: Any) -> Response:
        self.log.append(f"{self.name}>")
        resp: Response = await next(request)
        self.log.append(f"<{self.name}")
        return resp

    async def stream(self, request: Request, next: Any) -> AsyncIterator[StreamEvent]:
        self.log.append(f"{self.name}>")
        async for event in next(request):
            if event.type == StreamEventType.FINISH:
                self.log.append(f"<{self.name}")
            yield event


def test_middleware_onion_order(make_twin: Any) -> None:
    """Requests pass middleware in registration order and responses return in reverse, for complete and stream."""
    twin = make_twin("openai")
    twin.script(ModelTurn(text="a"), ModelTurn(text="b"))
    log: list[str] = []

    async def plain(request: Request, next: Any) -> Response:
        log.append("p>")
        resp: Response = await next(request)
        log.append("<p")
        return resp

    async def go() -> None:
        client = twin.client()
        client.use(Recorder("A", log))
        client.use(plain)
        client.use(Recorder("B", log))
        await client.complete(Request(model="m", messages=[Message.user("x")]))
        log.append("|")
        _ = [e async for e in client.stream(Request(model="m", messages=[Message.user("x")]))]
        await client.close()

    asyncio.run(go())
    assert log == ["A>", "p>", "B>", "<B", "<p", "<A", "|", "A>", "B>", "<B", "<A"]


def test_module_default_client_lazy_from_env(twin: ProviderTwin, monkeypatch: pytest.MonkeyPatch) -> None:
    """generate() without client= uses the module default, built lazily from the environment or set explicitly."""
    key_var, url_var = ENV_NAMES[twin.provider]
    for names in ENV_NAMES.values():
        for n in names:
            monkeypatch.delenv(n, raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv(key_var, twin.api_key)
    monkeypatch.setenv(url_var, twin.base_url)
    twin.script(ModelTurn(text="lazy"), ModelTurn(text="explicit"))

    async def go() -> list[str]:
        texts = [(await generate("m", "x")).text]
        lazy = get_default_client()
        assert list(lazy.providers) == [twin.provider]
        await lazy.close()
        explicit = twin.client()
        set_default_client(explicit)
        assert get_default_client() is explicit
        texts.append((await generate("m", "x")).text)
        await explicit.close()
        return texts

    set_default_client(None)
    try:
        assert asyncio.run(go()) == ["lazy", "explicit"]
    finally:
        set_default_client(None)
    twin.assert_done()


def test_concurrent_requests_share_one_adapter(twin: ProviderTwin) -> None:
    """One client and adapter serve many concurrent calls (no per-request state)."""
    twin.script(*[ModelTurn(text="same") for _ in range(8)])

    async def go() -> list[str]:
        client = twin.client()
        resps = await asyncio.gather(
            *(client.complete(Request(model="m", messages=[Message.user(str(i))])) for i in range(8))
        )
        await client.close()
        return [r.text for r in resps]

    assert asyncio.run(go()) == ["same"] * 8
    twin.assert_done()

"""Fixtures for the LLM suite: provider twins on 127.0.0.1, never the internet."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from aos.adapters.llm.testing import ProviderTwin

PROVIDERS = ["openai", "anthropic", "gemini"]


@pytest.fixture
def make_twin() -> Iterator[Callable[..., ProviderTwin]]:
    started: list[ProviderTwin] = []

    def make(provider: str, **kwargs: object) -> ProviderTwin:
        twin = ProviderTwin(provider, **kwargs).start()  # type: ignore[arg-type]
        started.append(twin)
        return twin

    yield make
    for twin in started:
        twin.stop()


@pytest.fixture(params=PROVIDERS)
def twin(request: pytest.FixtureRequest, make_twin: Callable[..., ProviderTwin]) -> ProviderTwin:
    """One twin per provider of the conformance matrix (O, A, G)."""
    return make_twin(request.param)

"""The model catalog, litellm-backed cost accounting, and the package's public surface."""

from __future__ import annotations

import aos.adapters.llm as llm
import pytest
from aos.adapters.llm import Usage
from aos.adapters.llm.catalog import (
    catalog_cost,
    estimate_cost,
    get_latest_model,
    get_model_info,
    list_models,
)


def test_catalog_lookups() -> None:
    """get_model_info finds ids and aliases, list_models filters by provider, unknown ids are None."""
    info = get_model_info("claude-sonnet")
    assert info is not None and info.id == "claude-sonnet-4-5" and info.provider == "anthropic"
    assert {m.provider for m in list_models("gemini")} == {"gemini"}
    assert len(list_models()) == sum(len(list_models(p)) for p in ("openai", "anthropic", "gemini"))
    assert get_model_info("nonexistent-model-xyz") is None
    latest = get_latest_model("openai", "reasoning")
    assert latest is not None and latest.provider == "openai" and latest.supports_reasoning


def test_cost_from_litellm_local_map() -> None:
    """Cost comes from litellm's bundled map (no network): cached input is cheaper, unknown models cost None."""
    pytest.importorskip("litellm", reason="litellm comes with the 'llm' extra: pip install -e '.[llm]'")
    full = estimate_cost("claude-sonnet-4-5", Usage(input_tokens=10_000, output_tokens=1_000))
    cached = estimate_cost(
        "claude-sonnet-4-5", Usage(input_tokens=10_000, output_tokens=1_000, cache_read_tokens=8_000)
    )
    assert full is not None and cached is not None and 0 < cached < full
    assert abs(full - (10_000 * 3 + 1_000 * 15) / 1e6) < 1e-9
    assert estimate_cost("nonexistent-model-xyz", Usage(1, 1)) is None


def test_catalog_cost_fallback() -> None:
    """Without litellm, cost comes from the catalog's list prices; unknown models cost None."""
    assert catalog_cost("gpt-5.2", Usage(input_tokens=1_000_000, output_tokens=100_000)) == pytest.approx(1.75 + 1.4)
    assert catalog_cost("nonexistent-model-xyz", Usage(1, 1)) is None


def test_public_names_exported_once() -> None:
    """Every name in __all__ exists and is listed once; every error class subclasses AosError."""
    from aos.errors import AosError

    assert len(llm.__all__) == len(set(llm.__all__))
    for name in llm.__all__:
        assert hasattr(llm, name), name
    assert issubclass(llm.SDKError, AosError)
    codes = [
        getattr(llm, n).code
        for n in llm.__all__
        if isinstance(getattr(llm, n), type) and issubclass(getattr(llm, n), llm.SDKError)
    ]
    assert len(codes) == len(set(codes)), "each wire-visible error class has its own code"

"""The model catalog (ULS 2.9) and cost accounting.

The catalog is advisory: unknown model ids pass through every API
untouched. It lives in this module as data (no separate data file, so it
needs no package-data entry). Prices come from litellm's bundled cost map
when litellm is installed (the ``llm`` extra); it is imported lazily,
because importing it takes seconds, and with ``LITELLM_LOCAL_MODEL_COST_MAP``
set, because otherwise the import fetches the map from the network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from .types import Usage


@dataclass(frozen=True)
class ModelInfo:
    id: str
    provider: str
    display_name: str
    context_window: int
    max_output: int
    supports_tools: bool = True
    supports_vision: bool = True
    supports_reasoning: bool = False
    input_cost_per_million: float | None = None
    output_cost_per_million: float | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)


# newest first within each provider: get_latest_model() relies on this order
_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        "claude-opus-4-6",
        "anthropic",
        "Claude Opus 4.6",
        200_000,
        64_000,
        supports_reasoning=True,
        input_cost_per_million=5.0,
        output_cost_per_million=25.0,
        aliases=("claude-opus",),
    ),
    ModelInfo(
        "claude-sonnet-4-5",
        "anthropic",
        "Claude Sonnet 4.5",
        200_000,
        64_000,
        supports_reasoning=True,
        input_cost_per_million=3.0,
        output_cost_per_million=15.0,
        aliases=("claude-sonnet",),
    ),
    ModelInfo(
        "claude-haiku-4-5",
        "anthropic",
        "Claude Haiku 4.5",
        200_000,
        64_000,
        supports_reasoning=True,
        input_cost_per_million=1.0,
        output_cost_per_million=5.0,
        aliases=("claude-haiku",),
    ),
    ModelInfo(
        "gpt-5.2",
        "openai",
        "GPT-5.2",
        400_000,
        128_000,
        supports_reasoning=True,
        input_cost_per_million=1.75,
        output_cost_per_million=14.0,
    ),
    ModelInfo(
        "gpt-5.2-codex",
        "openai",
        "GPT-5.2 Codex",
        400_000,
        128_000,
        supports_reasoning=True,
        input_cost_per_million=1.75,
        output_cost_per_million=14.0,
    ),
    ModelInfo(
        "gpt-5.2-mini",
        "openai",
        "GPT-5.2 mini",
        400_000,
        128_000,
        supports_reasoning=True,
        input_cost_per_million=0.25,
        output_cost_per_million=2.0,
    ),
    ModelInfo(
        "gemini-3.1-pro-preview",
        "gemini",
        "Gemini 3.1 Pro (preview)",
        1_048_576,
        65_536,
        supports_reasoning=True,
        input_cost_per_million=2.0,
        output_cost_per_million=12.0,
    ),
    ModelInfo(
        "gemini-3-flash-preview",
        "gemini",
        "Gemini 3 Flash (preview)",
        1_048_576,
        65_536,
        supports_reasoning=True,
        input_cost_per_million=0.5,
        output_cost_per_million=3.0,
    ),
)


def list_models(provider: str | None = None) -> list[ModelInfo]:
    return [m for m in _MODELS if provider is None or m.provider == provider]


def get_model_info(model_id: str) -> ModelInfo | None:
    for m in _MODELS:
        if model_id == m.id or model_id in m.aliases:
            return m
    return None


def get_latest_model(provider: str, capability: str | None = None) -> ModelInfo | None:
    """The newest catalog model of ``provider``, optionally with a capability
    (``tools``, ``vision`` or ``reasoning``)."""
    for m in list_models(provider):
        if capability is None or getattr(m, f"supports_{capability}", False):
            return m
    return None


@cache
def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        return None
    litellm.suppress_debug_info = True  # it prints a banner to stdout for unknown models
    return litellm


def estimate_cost(model: str, usage: Usage, provider: str | None = None) -> float | None:
    """USD cost of ``usage`` on ``model``: litellm's local cost map first (it
    knows cache-read pricing), then the catalog's prices; None if unknown."""
    cost = litellm_cost(model, usage, provider)
    return cost if cost is not None else catalog_cost(model, usage)


def litellm_cost(model: str, usage: Usage, provider: str | None = None) -> float | None:
    litellm = _litellm()
    if litellm is None:
        return None
    name = f"gemini/{model}" if provider == "gemini" and "/" not in model else model
    try:
        prompt, completion = litellm.cost_per_token(
            model=name,
            prompt_tokens=usage.input_tokens,
            completion_tokens=usage.output_tokens,
            cache_read_input_tokens=usage.cache_read_tokens or 0,
            cache_creation_input_tokens=usage.cache_write_tokens or 0,
        )
    except Exception:  # noqa: BLE001 - litellm raises bare Exceptions for unknown models
        return None
    return float(prompt + completion)


def catalog_cost(model: str, usage: Usage) -> float | None:
    """Cost from the catalog's list prices (no cache discounts)."""
    info = get_model_info(model)
    if info is None or info.input_cost_per_million is None or info.output_cost_per_million is None:
        return None
    return (usage.input_tokens * info.input_cost_per_million + usage.output_tokens * info.output_cost_per_million) / 1e6

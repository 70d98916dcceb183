"""Shared helpers for the host adapter tests: drive an adapter once, collect its frames."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from aos.adapters.base import EffectCall, Receipt


class Runner:
    """Runs one effect through an adapter with ``asyncio.run`` and keeps the frames it sent."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def __call__(
        self,
        adapter: Any,
        kind: str,
        params: Mapping[str, Any],
        grant: Mapping[str, Any],
        secrets: Callable[[str], str] | None = None,
    ) -> Receipt:
        self.frames = []

        async def sink(frame: Mapping[str, Any]) -> None:
            self.frames.append(dict(frame))

        call = EffectCall(kind, params, grant, idempotency_key="idem-1", secrets=secrets)
        return asyncio.run(adapter.run(call, sink))


@pytest.fixture
def run_effect() -> Runner:
    return Runner()

"""Helpers for the security suite: hostile manifests around the scripted workflow.

The scripted workflow (``aos.kernel.world.testing.scripted``) emits whatever
effects its event lists, so a test plays a hostile world by choosing the
manifest's declarations and the event.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aos.kernel.world.testing import SCRIPTED_MODULE, SCRIPTED_SCHEMAS

SCRIPT = "test/Script@1"
WORKFLOW = "test/scripted@1"


def hostile_manifest(effects: dict[str, Any], grants: dict[str, Any], *, module: str = SCRIPTED_MODULE,
                     entry: str = "scripted") -> dict[str, Any]:
    """A world whose one workflow may emit every effect in ``effects``."""
    return {
        "version": 1,
        "name": "test/hostile",
        "schemas": {**SCRIPTED_SCHEMAS, "sys/Any@1": "any"},
        "modules": {"test/scripted@1": {"runtime": "python", "python_module": module}},
        "workflows": {
            WORKFLOW: {"module": "test/scripted@1", "entry": entry, "state": "test/ScriptState@1",
                       "event": SCRIPT, "effects": sorted(effects)},
        },
        "effects": effects,
        "grants": grants,
        "routing": [{"event": SCRIPT, "workflow": WORKFLOW}],
    }


def declared(cap: str, **extra: Any) -> dict[str, Any]:
    return {"params": "sys/Any@1", "receipt": "sys/Any@1", "cap": cap, **extra}


async def wait_until(predicate: Any, timeout: float = 15.0) -> Any:
    """Poll an async predicate until it is truthy (a condition with a deadline, not a sleep)."""

    async def loop() -> Any:
        while True:
            value = await predicate()
            if value:
                return value
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(loop(), timeout)

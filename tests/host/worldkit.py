"""Helpers for world tests against a real kernel: bundles, raw journals, replay checks."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

from aos.cli_world import load_bundle_doc
from aos.kernel.world import World, decode_record, load_runtimes, parse_manifest, replay
from aos.kernel.world.testing import TEST_PYTHON

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")


def bundle(name: str, grant_root: str | None = None) -> tuple[dict[str, Any], dict[str, bytes]]:
    return load_bundle_doc(os.path.join(EXAMPLES, name), grant_root)


def wasm_module(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


async def raw_journal(admin: Any, universe: str, world_id: str) -> list[bytes]:
    """The world's whole journal as stored (through its World capability)."""
    world = await (await admin.worlds(universe)).open(world_id)
    records, next_seq = await world.read_raw(0, 0)
    while len(records) < next_seq:
        more, next_seq = await world.read_raw(len(records), 0)
        records += more
    return records


async def assert_replays(admin: Any, universe: str, world: Any, world_id: str,
                         doc: dict[str, Any], wasm: dict[str, bytes]) -> str:
    """Replay the world's whole journal from genesis in a fresh ``World``: it must
    derive every journaled record byte for byte and end in the live state."""
    live_hash, _ = await world.snapshot()
    manifest = parse_manifest(doc)
    fresh = World(manifest, load_runtimes(manifest, wasm, python=TEST_PYTHON), world_id)
    records = [decode_record(raw) for raw in await raw_journal(admin, universe, world_id)]
    assert replay(fresh, records) == ()  # nothing derived that the journal lacks
    assert fresh.state_hash() == live_hash
    return live_hash


async def wait_for(predicate, timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll an async predicate until it returns something truthy (a condition, not a guess)."""

    async def loop() -> Any:
        while True:
            value = await predicate()
            if value:
                return value
            await asyncio.sleep(interval)

    return await asyncio.wait_for(loop(), timeout)


async def decoded_journal(admin: Any, universe: str, world_id: str) -> list[Any]:
    """The world's whole raw journal as record objects (``decode_record``), index = journal seq."""
    return [decode_record(raw) for raw in await raw_journal(admin, universe, world_id)]


async def wait_for_state(world: Any, workflow: str, condition, key: Any = None, timeout: float = 15.0) -> Any:
    """Poll a workflow's state until ``condition(state)`` holds; returns that state."""

    async def check() -> Any:
        state = await world.state(workflow, key)
        return state if state is not None and condition(state) else None

    return await wait_for(check, timeout)

"""Portal mail between worlds on different hosts (and universes): real etcd, moto S3, a scheduler and
three host kernels in subprocesses. The receiving world sees every message exactly once: on its host,
while it moves, after its host is killed, across universes only under a grant; only a host's Kernel
capability may deliver.
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from aos.errors import AosError, InvalidArgument, PermissionDenied, WorldMoved
from aos.kernel.client import Connection, run
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.testing import LocalCluster
from aos.kernel.storage.objects import S3Objects, make_client
from aos.kernel.storage.testing import AWS_VARIABLES_TO_CLEAR, MotoServer
from aos.kernel.world import cbor
from aos.kernel.world.testing import SCRIPTED_MODULE, SCRIPTED_SCHEMAS

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host"))
from worldkit import assert_replays  # noqa: E402

SCRIPT = "test/Script@1"
WORKFLOW = "test/scripted@1"
PORTAL = "sys/portal.send@1"
HOSTS = ("host0", "host1", "host2")


def manifest(worlds: list[str] | None = None) -> dict[str, Any]:
    """The scripted workflow (it emits the effects its event lists) with portal.send granted
    (``worlds``: the grant's list; None = any world of its own universe)."""
    grant: dict[str, Any] = {"cap": "portal"}
    if worlds is not None:
        grant["params"] = {"worlds": worlds}
    return {
        "version": 1,
        "name": "test/portal",
        "schemas": {**SCRIPTED_SCHEMAS, "sys/Any@1": "any",
                    "sys/PortalSend@1": {"record": {"dest_world": "text", "schema": "text", "value": "any"}}},
        "modules": {WORKFLOW: {"runtime": "python", "python_module": SCRIPTED_MODULE}},
        "workflows": {WORKFLOW: {"module": WORKFLOW, "entry": "scripted", "state": "test/ScriptState@1",
                                 "event": SCRIPT, "effects": [PORTAL]}},
        "effects": {PORTAL: {"params": "sys/PortalSend@1", "receipt": "sys/Any@1", "cap": "portal"}},
        "grants": {"portal": grant},
        "routing": [{"event": SCRIPT, "workflow": WORKFLOW}],
    }


def sends(dest: str, ids: list[str]) -> dict[str, Any]:
    """A Script event that sends one portal message (a Script event ``{id}``) per id to ``dest``."""
    return {"effects": [{"effect": PORTAL, "params": {"dest_world": dest, "schema": SCRIPT, "value": {"id": i}}}
                        for i in ids]}


@pytest.fixture
def cluster(etcd: str, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    for name in AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    bucket = f"aos-{uuid.uuid4().hex[:12]}"
    S3Objects(make_client(), bucket).ensure_bucket()
    with tempfile.TemporaryDirectory(prefix="aosp-", dir="/tmp") as root:
        c = LocalCluster(root, hosts=3, storage=f"s3://{bucket}/c", env=dict(os.environ), capacity=10,
                         host_args=[["--python-module", SCRIPTED_MODULE]] * 3)
        try:
            c.start(etcd)
            for kernel in c.kernels:
                c.wait_joined(kernel)
            yield c
        finally:
            c.stop()


async def until(check: Any, timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    last: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            value = await check()
            if value:
                return value
        except AosError as exc:
            last = exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout}s (last error: {last})")


def session(c: LocalCluster) -> Any:
    return SchedulerSession.open(c.scheduler.address, c.scheduler.admin_token)


async def where(s: SchedulerSession, universe: str, world: str) -> str:
    placement = await (await s.universe(universe)).where(world)
    return str(placement["hostId"]) if placement["state"] == "running" else ""


async def pair(s: SchedulerSession, sender_grant: list[str] | None = None, receiver_universe: str = "u",
               sender_host: str = "host0", receiver_host: str = "host1") -> None:
    """Universe u (and the receiver's), world ``s`` pinned on ``sender_host`` and world ``r`` running on
    ``receiver_host`` (unpinned, so it can move)."""
    await until(lambda: _hosts(s, 3))
    for universe in {"u", receiver_universe}:
        await s.scheduler.create_universe(universe)
    await (await s.universe("u")).create_world(manifest(sender_grant), None, "s", pin=sender_host)
    await (await s.universe(receiver_universe)).create_world(manifest(), None, "r")
    if await where(s, receiver_universe, "r") != receiver_host:
        await s.scheduler.move(receiver_universe, "r", receiver_host)
    await until(lambda: _running_on(s, receiver_universe, "r", receiver_host))


async def _hosts(s: SchedulerSession, n: int) -> bool:
    return len((await s.scheduler.status())["hosts"]) == n


async def _running_on(s: SchedulerSession, universe: str, world: str, host: str) -> bool:
    if await where(s, universe, world) != host:
        return False
    await (await s.open_world(universe, world)).state(WORKFLOW)  # serving there, not only assigned
    return True


async def received(s: SchedulerSession, universe: str = "u") -> collections.Counter[str]:
    """How many times each message id reached world r, from its journal."""
    world = await s.open_world(universe, "r")
    records, _ = await world.journal(0, 0)
    return collections.Counter(r["value"]["id"] for r in records
                               if r["kind"] == "event" and isinstance(r.get("value"), dict) and "id" in r["value"])


def all_received(s: SchedulerSession, ids: list[str], universe: str = "u") -> Any:
    async def check() -> collections.Counter[str] | None:
        got = await received(s, universe)
        return got if set(got) >= set(ids) else None

    return check


async def sender_receipts(s: SchedulerSession) -> list[Any]:
    return list((await (await s.open_world("u", "s")).state(WORKFLOW))["receipts"])


def receipts_for(s: SchedulerSession, n: int) -> Any:
    async def check() -> list[Any] | None:
        got = await sender_receipts(s)
        return got if len(got) >= n else None

    return check


def test_a_world_on_another_host_gets_each_message_once_and_replays(cluster: LocalCluster) -> None:
    ids = [f"m{i}" for i in range(5)]

    async def main() -> tuple[Any, ...]:
        async with await session(cluster) as s:
            await pair(s)
            await (await s.open_world("u", "s")).send(SCRIPT, sends("r", ids))
            got = await until(all_received(s, ids))
            receipts = await until(receipts_for(s, len(ids)))
            host = await where(s, "u", "r")
            # the receiving world replays byte for byte, on the host that runs it
            kernel = cluster.kernels[int(host.removeprefix("host"))]
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                world = await (await admin.worlds("u")).open("r")
                await assert_replays(admin, "u", world, "r", manifest(), {})
            return got, receipts, host

    got, receipts, host = run(main())
    assert host == "host1"
    assert got == {i: 1 for i in ids}
    assert [r[:2] for r in receipts] == [[PORTAL, "ok"]] * len(ids)
    assert all(r[2] == {"accepted": True} for r in receipts)

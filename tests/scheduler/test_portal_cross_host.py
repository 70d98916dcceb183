"""Portal mail between worlds on different hosts (and universes): real etcd, moto S3, a scheduler and
three host kernels in subprocesses. The receiving world sees every message exactly once: on its host,
while it moves, after its host is killed, across universes only under a grant; only a host's Kernel
capability may deliver.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from aos.errors import AosError, InvalidArgument, PermissionDenied, WorldMoved
from aos.kernel.client import Connection, run
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.testing import EtcdProcess, LocalCluster, shared_storage_cluster, until
from aos.kernel.storage.testing import MotoServer
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


@contextlib.contextmanager
def running_cluster(etcd: str, moto_server: MotoServer) -> Iterator[LocalCluster]:
    """etcd (a fresh prefix), a scheduler and 3 hosts on one moto bucket, each running the scripted workflow."""
    with shared_storage_cluster(etcd, moto_server, prefix="aosp-", hosts=3, capacity=10,
                                host_args=[["--python-module", SCRIPTED_MODULE]] * 3) as c:
        yield c


@pytest.fixture(scope="module")
def cluster(etcd_server: EtcdProcess, moto_server: MotoServer) -> Iterator[LocalCluster]:
    """One cluster for the tests that kill nothing (each uses universes of its own)."""
    with running_cluster(f"{etcd_server.url}/t{uuid.uuid4().hex[:12]}", moto_server) as c:
        yield c


@pytest.fixture
def own_cluster(etcd: str, moto_server: MotoServer) -> Iterator[LocalCluster]:
    """A cluster of the test's own (it kills a host)."""
    with running_cluster(etcd, moto_server) as c:
        yield c


def session(c: LocalCluster) -> Any:
    return SchedulerSession.open(c.scheduler.address, c.scheduler.admin_token)


async def where(s: SchedulerSession, universe: str, world: str) -> str:
    placement = await (await s.universe(universe)).where(world)
    return str(placement["hostId"]) if placement["state"] == "running" else ""


async def pair(s: SchedulerSession, u: str, sender_grant: list[str] | None = None, receiver_universe: str = "",
               sender_host: str = "host0", receiver_host: str = "host1") -> None:
    """Universe ``u`` (and the receiver's), world ``s`` pinned on ``sender_host`` and world ``r`` running on
    ``receiver_host`` (unpinned, so it can move)."""
    receiver_universe = receiver_universe or u
    await until(lambda: _hosts(s, 3))
    for universe in {u, receiver_universe}:
        await s.scheduler.create_universe(universe)
    await (await s.universe(u)).create_world(manifest(sender_grant), None, "s", pin=sender_host)
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


async def received(s: SchedulerSession, universe: str) -> collections.Counter[str]:
    """How many times each message id reached world r, from its journal."""
    world = await s.open_world(universe, "r")
    records, _ = await world.journal(0, 0)
    return collections.Counter(r["value"]["id"] for r in records
                               if r["kind"] == "event" and isinstance(r.get("value"), dict) and "id" in r["value"])


def all_received(s: SchedulerSession, universe: str, ids: list[str]) -> Any:
    async def check() -> collections.Counter[str] | None:
        got = await received(s, universe)
        return got if set(got) >= set(ids) else None

    return check


async def sender_receipts(s: SchedulerSession, u: str, world: str = "s") -> list[Any]:
    return list((await (await s.open_world(u, world)).state(WORKFLOW))["receipts"])


def receipts_for(s: SchedulerSession, u: str, n: int, world: str = "s") -> Any:
    async def check() -> list[Any] | None:
        got = await sender_receipts(s, u, world)
        return got if len(got) >= n else None

    return check



async def replays_on_its_host(c: LocalCluster, s: SchedulerSession, universe: str) -> str:
    """World r replays byte for byte from its journal, read on the host that runs it; returns that host."""
    host = await where(s, universe, "r")
    kernel = c.kernels[int(host.removeprefix("host"))]
    async with await Connection.open(kernel.address) as conn:
        admin = await conn.restore_kernel(kernel.admin_token)
        world = await (await admin.worlds(universe)).open("r")
        await assert_replays(admin, universe, world, "r", manifest(), {})
    return host


def assert_all_sent(receipts: list[Any], n: int) -> None:
    assert len(receipts) == n
    assert all(r[:2] == [PORTAL, "ok"] for r in receipts), receipts


def test_a_world_on_another_host_gets_each_message_once_and_replays(cluster: LocalCluster) -> None:
    ids = [f"m{i}" for i in range(5)]

    async def main() -> tuple[Any, ...]:
        async with await session(cluster) as s:
            await pair(s, "p1")
            await (await s.open_world("p1", "s")).send(SCRIPT, sends("r", ids))
            got = await until(all_received(s, "p1", ids))
            receipts = await until(receipts_for(s, "p1", len(ids)))
            return got, receipts, await replays_on_its_host(cluster, s, "p1")

    got, receipts, host = run(main())
    assert host == "host1"
    assert got == {i: 1 for i in ids}
    assert_all_sent(receipts, len(ids))
    assert all(r[2] == {"accepted": True} for r in receipts)


def test_messages_sent_while_the_receiver_moves_arrive_once(cluster: LocalCluster) -> None:
    ids = [f"m{i}" for i in range(30)]

    async def main() -> tuple[Any, ...]:
        async with await session(cluster) as s:
            await pair(s, "p2")
            sender = await s.open_world("p2", "s")
            move: asyncio.Task[Any] | None = None
            for i, one in enumerate(ids):
                await sender.send(SCRIPT, sends("r", [one]))
                if i == 5:  # the rest go out while the receiver is released and acquired elsewhere
                    move = asyncio.ensure_future(s.scheduler.move("p2", "r", "host2"))
            assert move is not None
            await move
            got = await until(all_received(s, "p2", ids))
            receipts = await until(receipts_for(s, "p2", len(ids)))
            host = await until(lambda: _running_on(s, "p2", "r", "host2"))
            return got, receipts, host, await replays_on_its_host(cluster, s, "p2")

    got, receipts, _, host = run(main())
    assert host == "host2"
    assert got == {i: 1 for i in ids}  # none lost, none doubled
    assert_all_sent(receipts, len(ids))


def test_across_universes_only_under_a_grant_that_names_the_universe(cluster: LocalCluster) -> None:
    async def main() -> tuple[Any, ...]:
        async with await session(cluster) as s:
            await pair(s, "p3", receiver_universe="p3other")
            plain = await s.open_world("p3", "s")  # its grant reaches its own universe only
            _, refused = await plain.send_with_outcome(SCRIPT, sends("p3other/r", ["no"]))
            other = await (await s.universe("p3")).create_world(manifest(["p3other/elsewhere"]), None, "s2",
                                                                pin="host0")
            _, refused_too = await (await s.open_world("p3", "s2")).send_with_outcome(
                SCRIPT, sends("p3other/r", ["no2"]))
            await (await s.universe("p3")).create_world(manifest(["p3other/*"]), None, "s3", pin="host0")
            await (await s.open_world("p3", "s3")).send(SCRIPT, sends("p3other/r", ["yes"]))
            got = await until(all_received(s, "p3other", ["yes"]))
            receipts = await until(receipts_for(s, "p3", 1, "s3"))
            plain_receipts = await until(receipts_for(s, "p3", 1))
            return refused, refused_too, got, receipts, plain_receipts, other

    refused, refused_too, got, receipts, plain_receipts, _ = run(main())
    assert refused["rejected"] == 1 and refused["intents"] == 0
    assert refused_too["rejected"] == 1 and refused_too["intents"] == 0
    assert plain_receipts[0][1] == "error" and "another universe" in str(plain_receipts[0][2])
    assert got == {"yes": 1}
    assert_all_sent(receipts, 1)


def test_only_a_hosts_kernel_capability_delivers(cluster: LocalCluster) -> None:
    value = cbor.encode({"id": "direct"})

    async def main() -> tuple[Any, ...]:
        async with await session(cluster) as s:
            await pair(s, "p4")
            kernel = cluster.kernels[1]  # runs p4/r
            intro = await (await s.universe("p4")).introduce("r")
            async with await Connection.open(kernel.address) as conn:
                errors: list[str] = []
                for token in ("forged-" + "0" * 40, intro["token"]):
                    try:
                        await conn.restore_kernel(token)
                    except AosError as exc:
                        errors.append(exc.code)
                admin = await conn.restore_kernel(kernel.admin_token)
                delegated = await admin.delegate()
                assert await delegated.deliver_portal("p4", "p4/x", "r", "direct-1", SCRIPT, value) is True
                again = await delegated.deliver_portal("p4", "p4/x", "r", "direct-1", SCRIPT, value)
                await delegated.revoker.revoke()
                with pytest.raises(AosError) as revoked:
                    await delegated.deliver_portal("p4", "p4/x", "r", "direct-2", SCRIPT, value)
                with pytest.raises(WorldMoved):  # p4/s runs on host0
                    await admin.deliver_portal("p4", "p4/x", "s", "direct-3", SCRIPT, value)
                with pytest.raises(InvalidArgument):
                    await admin.deliver_portal("p4", "p4/x", "r", "direct-4", SCRIPT, b"\xff\xfe")
                with pytest.raises(InvalidArgument):
                    await admin.deliver_portal("p4", "p4/x", "no/such", "direct-5", SCRIPT, value)
            got = await until(all_received(s, "p4", ["direct"]))
            return errors, again, revoked.value.code, got

    errors, again, revoked, got = run(main())
    assert errors == ["InvalidToken", "PermissionDenied"]  # a forged token; a world's token is no Kernel
    assert again is False  # the same message id again: not delivered twice
    assert revoked == "Revoked"
    assert got == {"direct": 1}


def test_messages_reach_the_receiver_after_its_host_is_killed(own_cluster: LocalCluster) -> None:
    first, rest = [f"a{i}" for i in range(5)], [f"b{i}" for i in range(10)]

    async def before() -> None:
        async with await session(own_cluster) as s:
            await pair(s, "p5")
            sender = await s.open_world("p5", "s")
            for one in first:
                await sender.send(SCRIPT, sends("r", [one]))

    run(before())
    own_cluster.kernels[1].kill()  # SIGKILL the receiver's host, with mail in flight or just accepted

    async def after() -> tuple[Any, ...]:
        async with await session(own_cluster) as s:
            sender = await s.open_world("p5", "s")
            for one in rest:
                await sender.send(SCRIPT, sends("r", [one]))
            got = await until(all_received(s, "p5", first + rest), timeout=90)
            receipts = await until(receipts_for(s, "p5", len(first + rest)), timeout=90)
            return got, receipts, await replays_on_its_host(own_cluster, s, "p5")

    got, receipts, host = run(after())
    assert host in ("host0", "host2")
    assert got == {i: 1 for i in first + rest}
    assert_all_sent(receipts, len(first + rest))


def test_a_sender_whose_host_is_killed_sends_each_message_once_from_its_next_host(own_cluster: LocalCluster) -> None:
    ids = [f"c{i}" for i in range(20)]

    async def before() -> None:
        async with await session(own_cluster) as s:
            await until(lambda: _hosts(s, 3))
            await s.scheduler.create_universe("p6")
            universe = await s.universe("p6")
            for name, host in (("s", "host0"), ("r", "host1")):  # unpinned: the sender fails over too
                await universe.create_world(manifest(), None, name)
                if await where(s, "p6", name) != host:
                    await s.scheduler.move("p6", name, host)
                await until(lambda: _running_on(s, "p6", name, host))
            # 20 intents journaled with the event; SIGKILL right after: some delivered, some not yet
            await (await s.open_world("p6", "s")).send(SCRIPT, sends("r", ids))

    run(before())
    own_cluster.kernels[0].kill()

    async def after() -> tuple[Any, ...]:
        async with await session(own_cluster) as s:
            got = await until(all_received(s, "p6", ids), timeout=90)
            receipts = await until(receipts_for(s, "p6", len(ids)), timeout=90)
            return got, receipts, await where(s, "p6", "s")

    got, receipts, sender_host = run(after())
    assert sender_host in ("host1", "host2")
    assert got == {i: 1 for i in ids}  # the open intents ran again there, with their idempotency keys
    assert_all_sent(receipts, len(ids))

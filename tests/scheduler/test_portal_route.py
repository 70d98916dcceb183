"""Where portal mail goes (``portal.route``, pure over the host's mirrors of etcd) and which portal
grants reach another universe (``grants.portal_reaches`` and admission)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest

from aos.kernel.client import Connection, run
from aos.kernel.scheduler.layout import HostRecord, Keys, Placement
from aos.kernel.scheduler.portal import find_placement, route
from aos.kernel.scheduler.view import ClusterView
from aos.kernel.world.grants import CHECKS, portal_reaches
from aos.kernel.world.manifest import EffectDef, GrantDef


def views(*placements: Placement, live: tuple[str, ...] = ("a", "b")) -> tuple[ClusterView, ClusterView]:
    slots, peers = ClusterView(Keys()), ClusterView(Keys())
    for i, p in enumerate(placements):
        slots.slots[i] = {p.key: p}
    for host in live:
        peers.hosts[host] = HostRecord(host, f"tcp:127.0.0.1:{1000 + len(host)}", 10)
        peers.hostcaps[host] = f"token-{host}"
    return slots, peers


def test_mail_goes_to_the_host_the_world_is_placed_on() -> None:
    slots, peers = views(Placement("u", "w", host="b", epoch=2))
    assert route(slots, peers, "a", "u", "w").kind == "host"
    assert route(slots, peers, "a", "u", "w").token == "token-b"
    assert route(slots, peers, "b", "u", "w").kind == "here"
    assert find_placement(slots, "u", "w") is not None


def test_mail_waits_for_a_world_without_a_live_host() -> None:
    placing = views(Placement("u", "w", host="", reason="no room"))
    assert route(*placing, "a", "u", "w").kind == "wait"
    dead = views(Placement("u", "w", host="c", epoch=3))  # c's lease lapsed: no host record, no token
    assert route(*dead, "a", "u", "w").kind == "wait"
    assert route(None, None, "a", "u", "w").kind == "wait"  # not joined yet


def test_mail_for_a_world_no_one_knows_is_unknown_and_universes_are_apart() -> None:
    slots, peers = views(Placement("u", "w", host="b"))
    assert route(slots, peers, "a", "u", "nope").kind == "unknown"
    assert route(slots, peers, "a", "v", "w").kind == "unknown"  # v/w is not u/w


@pytest.mark.parametrize("worlds, dest, reaches", [
    (None, "v/w", False),           # no list: its own universe only
    (["w"], "v/w", False),          # a bare name is a world of its own universe
    (["v/w"], "v/w", True),
    (["v/*"], "v/w", True),
    (["v/x"], "v/w", False),
    (["x/*"], "v/w", False),
    (["*"], "v/w", False),          # "*" is not a universe
])
def test_a_portal_grant_reaches_another_universe_only_by_naming_it(worlds: list[str] | None, dest: str,
                                                                    reaches: bool) -> None:
    assert portal_reaches(worlds, dest) is reaches
    grant = GrantDef("portal", "portal", {} if worlds is None else {"worlds": worlds})
    effect = EffectDef("sys/portal.send@1", "sys/PortalSend@1", "sys/Any@1", "portal")
    why = CHECKS["portal"](grant, effect, {"dest_world": dest, "schema": "s", "value": 1})
    assert (why is None) is reaches


def test_same_universe_portal_grants_are_unchanged() -> None:
    effect = EffectDef("sys/portal.send@1", "sys/PortalSend@1", "sys/Any@1", "portal")
    check = CHECKS["portal"]
    assert check(GrantDef("p", "portal", {}), effect, {"dest_world": "w"}) is None
    assert check(GrantDef("p", "portal", {"worlds": ["w"]}), effect, {"dest_world": "w"}) is None
    assert check(GrantDef("p", "portal", {"worlds": ["x"]}), effect, {"dest_world": "w"}) is not None


def test_across_universes_on_one_kernel_under_a_grant(kernel: Any) -> None:
    """Without a cluster, portal mail to ``U/W`` goes into that universe's world on the same kernel,
    once, and only from a world whose grant names the universe."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_portal_cross_host import SCRIPT, WORKFLOW, manifest, sends

    async def main() -> tuple[Any, ...]:
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            receiver, _ = await (await admin.worlds("v")).create(manifest(), world_id="r")
            plain, _ = await (await admin.worlds("u")).create(manifest(), world_id="s")
            granted, _ = await (await admin.worlds("u")).create(manifest(["v/*"]), world_id="s2")
            _, refused = await plain.send_with_outcome(SCRIPT, sends("v/r", ["no"]))
            await granted.send(SCRIPT, sends("v/r", ["yes"]))

            async def arrived() -> Any:
                state = await receiver.state(WORKFLOW)
                receipts = (await granted.state(WORKFLOW))["receipts"]
                return (state, receipts) if state and receipts else None

            state, receipts = await until(arrived)
            return refused, state, receipts

    refused, state, receipts = run(main())
    assert refused["rejected"] == 1
    assert state["n"] == 1
    assert receipts == [["sys/portal.send@1", "ok", {"accepted": True}]]


async def until(check: Any, timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met in {timeout}s")

"""Placement as a pure function: capacity, pins and labels hold for any input,
the result does not depend on input order, a good placement is left alone, and
rebalancing moves each world at most once and only towards fair shares.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from aos.kernel.scheduler.place import Assignment, HostSpec, Unplaced, WorldSpec, eligible, labels_of, place, place_new

HOST_IDS = ["h0", "h1", "h2", "h3", "h4"]
ZONES = ["a", "b"]


@st.composite
def hosts(draw: st.DrawFn) -> list[HostSpec]:
    ids = draw(st.lists(st.sampled_from(HOST_IDS), min_size=0, max_size=5, unique=True))
    return [HostSpec(i, draw(st.integers(0, 12)), labels_of({"zone": draw(st.sampled_from(ZONES))}),
                     draining=draw(st.booleans()) and draw(st.booleans()))
            for i in ids]


@st.composite
def worlds(draw: st.DrawFn) -> list[WorldSpec]:
    n = draw(st.integers(0, 30))
    out = []
    for i in range(n):
        labels = labels_of({"zone": draw(st.sampled_from(ZONES))}) if draw(st.integers(0, 3)) == 0 else ()
        pin = draw(st.sampled_from(HOST_IDS)) if draw(st.integers(0, 5)) == 0 else ""
        current = draw(st.sampled_from(["", *HOST_IDS]))
        out.append(WorldSpec(f"u/w{i}", draw(st.sampled_from([1.0, 1.0, 2.0, 3.0])), labels, pin, current))
    return out


def check_invariants(result: Assignment, ws: list[WorldSpec], hs: list[HostSpec]) -> None:
    by_id = {h.id: h for h in hs}
    totals = dict.fromkeys(by_id, 0.0)
    for world in ws:
        host = result.hosts.get(world.key)
        if host is None:
            continue
        assert eligible(world, by_id[host]), (world, host)
        totals[host] += world.load
    for host_id, total in totals.items():
        assert total <= by_id[host_id].capacity, (host_id, total)
    placed_or_not = set(result.hosts) | {u.world for u in result.unplaced}
    assert placed_or_not == {w.key for w in ws}
    assert not set(result.hosts) & {u.world for u in result.unplaced}


@settings(max_examples=300, deadline=None)
@given(worlds(), hosts(), st.booleans())
def test_never_over_capacity_and_constraints_hold(ws: list[WorldSpec], hs: list[HostSpec], rebalance: bool) -> None:
    """No host gets more load than its capacity, and every world lands only on a host it is eligible for."""
    check_invariants(place(ws, hs, rebalance=rebalance), ws, hs)


@settings(max_examples=200, deadline=None)
@given(worlds(), hosts(), st.booleans(), st.randoms(use_true_random=False))
def test_stable_under_input_order(ws: list[WorldSpec], hs: list[HostSpec], rebalance: bool, rnd: random.Random) -> None:
    """Shuffling the hosts or the worlds gives the same assignment."""
    first = place(ws, hs, rebalance=rebalance)
    ws2, hs2 = ws[:], hs[:]
    rnd.shuffle(ws2)
    rnd.shuffle(hs2)
    second = place(ws2, hs2, rebalance=rebalance)
    assert first.hosts == second.hosts
    assert first.moves == second.moves


def applied(ws: list[WorldSpec], result: Assignment) -> list[WorldSpec]:
    return [WorldSpec(w.key, w.load, w.labels, w.pin, result.hosts.get(w.key, "")) for w in ws]


@settings(max_examples=200, deadline=None)
@given(worlds(), hosts())
def test_a_placement_is_a_fixed_point(ws: list[WorldSpec], hs: list[HostSpec]) -> None:
    """Placing again what was just placed moves no placed world (a world left waiting may take room then)."""
    once = place(ws, hs)
    again = place(applied(ws, once), hs)
    assert [m for m in again.moves if m.source] == []
    if not once.unplaced:
        assert again.moves == () and again.hosts == once.hosts


@settings(max_examples=200, deadline=None)
@given(worlds(), hosts())
def test_rebalancing_converges(ws: list[WorldSpec], hs: list[HostSpec]) -> None:
    """Rebalancing round after round (as the leader does) reaches a placement it leaves alone."""
    current = applied(ws, place(ws, hs))
    for _ in range(len(ws) + 2):
        result = place(current, hs, rebalance=True)
        if not result.moves:
            return
        current = applied(current, result)
    raise AssertionError("rebalancing did not settle")


@settings(max_examples=200, deadline=None)
@given(worlds(), hosts())
def test_a_new_world_moves_no_running_one(ws: list[WorldSpec], hs: list[HostSpec]) -> None:
    """Adding a world (without rebalancing) leaves every placed world where it is."""
    placed = applied(ws, place(ws, hs))
    result = place([*placed, WorldSpec("u/new")], hs)
    assert [m for m in result.moves if m.source] == []  # waiting worlds may find room; running ones stay


@settings(max_examples=300, deadline=None)
@given(worlds(), hosts(), st.sampled_from([1.0, 2.0]), st.sampled_from([(), labels_of({"zone": "a"})]))
def test_place_new_picks_the_host_place_picks(ws: list[WorldSpec], hs: list[HostSpec], load: float,
                                              labels: tuple[tuple[str, str], ...]) -> None:
    """For a new unpinned world on a settled placement, the O(hosts) choice is the one of a whole place()."""
    settled = place(ws, hs)
    placed = [WorldSpec(w.key, w.load, w.labels, w.pin, settled.hosts[w.key]) for w in ws if w.key in settled.hosts]
    new = WorldSpec("v/new", load, labels)
    whole = place([*placed, new], hs)
    quick = place_new(new, hs, settled.load)  # the load each host has before it
    if "v/new" in whole.hosts:
        assert quick == whole.hosts["v/new"]
    else:
        assert isinstance(quick, Unplaced) and quick.reason == whole.unplaced[0].reason


@settings(max_examples=200, deadline=None)
@given(worlds(), hosts(), st.data())
def test_losing_a_host_moves_only_its_worlds(ws: list[WorldSpec], hs: list[HostSpec], data: st.DataObject) -> None:
    """When a host goes away only the worlds it ran are moved."""
    if not hs:
        return
    placed = applied(ws, place(ws, hs))
    gone = data.draw(st.sampled_from([h.id for h in hs]))
    result = place(placed, [h for h in hs if h.id != gone])
    assert all(m.source in (gone, "") for m in result.moves)


@settings(max_examples=200, deadline=None)
@given(worlds(), hosts())
def test_rebalance_moves_each_world_once_towards_fair_share(ws: list[WorldSpec], hs: list[HostSpec]) -> None:
    """Rebalancing a valid placement moves a running world at most once, from above its fair share to below it."""
    placed = applied(ws, place(ws, hs))
    result = place(placed, hs, rebalance=True)
    keys = [m.world for m in result.moves]
    assert len(keys) == len(set(keys))
    live = [h for h in hs if not h.draining and h.capacity > 0]
    if not live:
        assert result.moves == ()
        return
    before = {h.id: 0.0 for h in hs}
    for w in placed:
        if w.current in before:
            before[w.current] += w.load
    total = sum(before[h.id] for h in live)
    cap = sum(h.capacity for h in live)
    fair = {h.id: total * h.capacity / cap for h in live}
    for move in result.moves:
        if not move.source:
            continue  # a waiting world that found room: a first placement, not a rebalancing move
        assert before[move.source] > fair[move.source]
        assert before[move.target] < fair[move.target]


def test_new_host_takes_a_fair_share_with_minimal_moves() -> None:
    """Nine worlds on two hosts spread over three move exactly three worlds, all to the new host."""
    two = [HostSpec("a", 10), HostSpec("b", 10)]
    ws = [WorldSpec(f"u/w{i}") for i in range(9)]
    placed = applied(ws, place(ws, two))
    assert sorted(place(placed, two).load.values()) == [4.0, 5.0]
    result = place(placed, [*two, HostSpec("c", 10)], rebalance=True)
    assert len(result.moves) == 3
    assert {m.target for m in result.moves} == {"c"}
    assert sorted(result.load.values()) == [3.0, 3.0, 3.0]


def test_pins_labels_and_reasons() -> None:
    """A pinned world goes to its host, a labelled one to a host with the label, and the rest say why they wait."""
    hs = [HostSpec("a", 5, labels_of({"gpu": "yes"})), HostSpec("b", 5), HostSpec("c", 5, draining=True)]
    ws = [WorldSpec("u/pinned", pin="b"), WorldSpec("u/gpu", labels=labels_of({"gpu": "yes"})),
          WorldSpec("u/lost", pin="zz"), WorldSpec("u/drained", pin="c"),
          WorldSpec("u/tpu", labels=labels_of({"tpu": "v5"})), WorldSpec("u/huge", load=6)]
    result = place(ws, hs)
    assert result.hosts["u/pinned"] == "b"
    assert result.hosts["u/gpu"] == "a"
    reasons = {u.world: u.reason for u in result.unplaced}
    assert "not live" in reasons["u/lost"]
    assert "draining" in reasons["u/drained"]
    assert "tpu=v5" in reasons["u/tpu"]
    assert "room" in reasons["u/huge"]


def test_a_shrunk_host_gives_up_its_largest_worlds() -> None:
    """A host whose capacity dropped keeps its small worlds and hands on the big one."""
    ws = [WorldSpec("u/big", load=3, current="a"), WorldSpec("u/s1", current="a"), WorldSpec("u/s2", current="a")]
    result = place(ws, [HostSpec("a", 2), HostSpec("b", 5)])
    assert result.hosts == {"u/big": "b", "u/s1": "a", "u/s2": "a"}
    assert [(m.world, m.source, m.target) for m in result.moves] == [("u/big", "a", "b")]


def test_ten_thousand_worlds_spread_evenly() -> None:
    """10,000 new worlds on three equal hosts end up within one world of each other."""
    ws = [WorldSpec(f"u{i % 100}/w{i}") for i in range(10_000)]
    result = place(ws, [HostSpec(h, 5000) for h in ("a", "b", "c")])
    loads = sorted(result.load.values())
    assert loads[-1] - loads[0] <= 1
    assert not result.unplaced


def test_settled_worlds_are_not_rebalanced_but_still_fail_over() -> None:
    """A world that just moved stays put while rebalancing, yet is placed elsewhere when its host goes."""
    ws = [WorldSpec(f"u/w{i}", current="a", settled=True) for i in range(4)]
    hosts = [HostSpec("a", 10), HostSpec("b", 10)]
    assert place(ws, hosts, rebalance=True).moves == ()
    assert {m.target for m in place(ws, [HostSpec("b", 10)], rebalance=True).moves} == {"b"}

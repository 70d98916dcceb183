"""Placement: which host runs which world. A pure function, no I/O.

How it works: ``place(worlds, hosts)`` keeps every world where it is when its
host is still there, still eligible and not over capacity (so a placement that
is already good moves nothing), then places what is left (new worlds, worlds
of a host that died or drains, worlds evicted from a host that shrank) on the
eligible host with the most room, most constrained worlds first. With
``rebalance``, it then moves worlds from the host furthest above its fair
share to the one furthest below, one world at a time, only while a move
strictly lowers the sum of squared deviations (so it ends, never moves a
world twice, and leaves a placement within one world of fair alone).

A world is eligible on a host that is not draining, carries every label the
world requires and, if the world is pinned, is that host. Loads and
capacities are in one unit the operator picks (default: a world is 1, a
host's capacity is how many it may run).

Everything is sorted by id before anything is decided, so the result does
not depend on the order of the inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]


def labels_of(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> Labels:
    """Labels in their one canonical form: sorted ``(key, value)`` pairs."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return tuple(sorted((str(k), str(v)) for k, v in items))


@dataclass(frozen=True, slots=True)
class WorldSpec:
    """What placement knows of a world.

    key: ``universe/world``, unique in the cluster.
    load: what it costs a host (same unit as ``HostSpec.capacity``).
    labels: labels a host must carry to run it.
    pin: a host id it must run on ("" = anywhere eligible).
    current: the host it runs on now ("" = nowhere yet).
    settled: rebalancing leaves it where it is (it moved a moment ago: no flapping).
    """

    key: str
    load: float = 1.0
    labels: Labels = ()
    pin: str = ""
    current: str = ""
    settled: bool = False


@dataclass(frozen=True, slots=True)
class HostSpec:
    """A live host. ``draining``: run nothing new and give back what it has."""

    id: str
    capacity: float
    labels: Labels = ()
    draining: bool = False

    def carries(self, labels: Labels) -> bool:
        mine = dict(self.labels)
        return all(mine.get(k) == v for k, v in labels)


@dataclass(frozen=True, slots=True)
class Move:
    world: str
    source: str  # "" for a world placed for the first time
    target: str


@dataclass(frozen=True, slots=True)
class Unplaced:
    world: str
    reason: str  # one line for people: why no host could take it


@dataclass(frozen=True, slots=True)
class Assignment:
    """The result: world key -> host id, the moves that get there, and what found no host."""

    hosts: Mapping[str, str]
    moves: tuple[Move, ...] = ()
    unplaced: tuple[Unplaced, ...] = ()
    load: Mapping[str, float] = field(default_factory=dict)  # host id -> total load placed on it


def eligible(world: WorldSpec, host: HostSpec) -> bool:
    return not host.draining and (not world.pin or world.pin == host.id) and host.carries(world.labels)


def place(worlds: Iterable[WorldSpec], hosts: Iterable[HostSpec], *, rebalance: bool = False,
          max_moves: int | None = None) -> Assignment:
    """Assign every world it can to a host; see the module docstring for the rules.

    ``max_moves`` bounds the moves of already running worlds that rebalancing
    may add (placing new or orphaned worlds is never bounded: they are not
    running anywhere).
    """
    by_id = {h.id: h for h in sorted(hosts, key=lambda h: h.id)}
    ordered = sorted(worlds, key=lambda w: w.key)
    used = dict.fromkeys(by_id, 0.0)
    on_host: dict[str, list[WorldSpec]] = {h: [] for h in by_id}
    pending: list[WorldSpec] = []

    # 1. keep what may stay
    for world in ordered:
        host = by_id.get(world.current)
        if host is not None and eligible(world, host):
            on_host[host.id].append(world)
            used[host.id] += world.load
        else:
            pending.append(world)
    # a host over capacity (it shrank) gives up its largest worlds first: fewest moves
    for host_id, placed in on_host.items():
        if used[host_id] > by_id[host_id].capacity:
            placed.sort(key=lambda w: (-w.load, w.key))
            while placed and used[host_id] > by_id[host_id].capacity:
                world = placed.pop(0)
                used[host_id] -= world.load
                pending.append(world)

    # a pinned world has one possible host: unpinned worlds there make room for it
    reserved = dict.fromkeys(by_id, 0.0)
    for world in sorted((w for w in pending if w.pin in by_id and eligible(w, by_id[w.pin])), key=lambda w: w.key):
        host = by_id[world.pin]
        placed = on_host[host.id]
        pinned = sum(w.load for w in placed if w.pin) + reserved[host.id] + world.load
        if pinned > host.capacity:
            continue  # no eviction would make it fit: it waits (and says why)
        spare = sorted((w for w in placed if not w.pin), key=lambda w: (-w.load, w.key))
        while spare and used[host.id] + reserved[host.id] + world.load > host.capacity:
            evicted = spare.pop(0)
            placed.remove(evicted)
            used[host.id] -= evicted.load
            pending.append(evicted)
        reserved[host.id] += world.load

    # 2. place the rest, most constrained first
    choices = {w.key: [h for h in by_id.values() if eligible(w, h)] for w in pending}
    pending.sort(key=lambda w: (not w.pin, len(choices[w.key]), -w.load, w.key))
    unplaced: list[Unplaced] = []
    for world in pending:
        fits = [h for h in choices[world.key] if used[h.id] + world.load <= h.capacity]
        if not fits:
            unplaced.append(Unplaced(world.key, _why(world, by_id, choices[world.key])))
            continue
        best = max(fits, key=lambda h: (h.capacity - used[h.id], -_index(by_id, h.id)))
        on_host[best.id].append(world)
        used[best.id] += world.load

    # 3. even out running worlds
    if rebalance and len(by_id) > 1:
        _rebalance(by_id, on_host, used, max_moves)

    result: dict[str, str] = {}
    for host_id, placed in on_host.items():
        for world in placed:
            result[world.key] = host_id
    moves = tuple(Move(w.key, w.current, result[w.key]) for w in ordered
                  if w.key in result and result[w.key] != w.current)
    return Assignment(result, moves, tuple(sorted(unplaced, key=lambda u: u.world)), used)


def place_new(world: WorldSpec, hosts: Iterable[HostSpec], used: Mapping[str, float]) -> str | Unplaced:
    """The host for one new unpinned world, given the load already on each host: the one ``place``
    picks (step 2, the eligible host with most room), without placing every other world again, so
    creating the 10,000th world costs what creating the first does. ``used``: host id -> load."""
    by_id = {h.id: h for h in sorted(hosts, key=lambda h: h.id)}
    choices = [h for h in by_id.values() if eligible(world, h)]
    fits = [h for h in choices if used.get(h.id, 0.0) + world.load <= h.capacity]
    if not fits:
        return Unplaced(world.key, _why(world, by_id, choices))
    return max(fits, key=lambda h: (h.capacity - used.get(h.id, 0.0), -_index(by_id, h.id))).id


def _index(by_id: Mapping[str, HostSpec], host_id: str) -> int:
    return list(by_id).index(host_id)


def _why(world: WorldSpec, by_id: Mapping[str, HostSpec], choices: list[HostSpec]) -> str:
    if world.pin and world.pin not in by_id:
        return f"pinned to host {world.pin}, which is not live"
    if world.pin and by_id[world.pin].draining:
        return f"pinned to host {world.pin}, which is draining"
    if not choices:
        wanted = ",".join(f"{k}={v}" for k, v in world.labels)
        return f"no live host carries the labels {wanted}" if wanted else "no live host that is not draining"
    return f"no eligible host has room for load {world.load:g}"


def _rebalance(by_id: Mapping[str, HostSpec], on_host: dict[str, list[WorldSpec]], used: dict[str, float],
               max_moves: int | None) -> None:
    """Move running worlds towards each host's fair share (load in proportion to capacity)."""
    live = [h for h in by_id.values() if not h.draining and h.capacity > 0]
    total_cap = sum(h.capacity for h in live)
    if total_cap <= 0:
        return
    total = sum(used[h.id] for h in live)
    target = {h.id: total * h.capacity / total_cap for h in live}
    # candidates per host, largest first: moving big worlds needs fewest moves
    movable = {h.id: sorted((w for w in on_host[h.id] if not w.pin and not w.settled), key=lambda w: (-w.load, w.key))
               for h in live}
    budget = max_moves if max_moves is not None else sum(len(v) for v in movable.values())
    # hosts above their share only give and hosts below only take, so no world moves twice
    # and no host both gives and takes
    start = {h: used[h] - target[h] for h in target}
    givers = [h for h in start if start[h] > 0]
    takers = [h for h in start if start[h] < 0]
    while budget > 0 and givers and takers:
        deviation = {h: used[h] - target[h] for h in target}
        best: tuple[WorldSpec, str, str] | None = None
        for source in sorted(givers, key=lambda h: (-deviation[h], h)):
            for dest in sorted(takers, key=lambda h: (deviation[h], h)):
                gap = deviation[source] - deviation[dest]
                if gap <= 0:
                    break
                for world in movable[source]:
                    if world.load < gap and eligible(world, by_id[dest]) \
                            and used[dest] + world.load <= by_id[dest].capacity:
                        best = (world, source, dest)
                        break
                if best is not None:
                    break
            if best is not None:
                break
        if best is None:
            return
        world, source, dest = best
        on_host[source].remove(world)
        movable[source].remove(world)
        on_host[dest].append(world)
        used[source] -= world.load
        used[dest] += world.load
        budget -= 1


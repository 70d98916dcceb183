"""What one scheduler or host agent knows of the cluster: a mirror of the etcd keys, kept by a watch.

``ClusterView.apply(kind, entry)`` files one watch event (sans-IO); ``load``
fills it from one read. Readers get plain records; every decision that
changes etcd is still made by a transaction that compares the revisions this
view saw, so a stale view costs a retry, never a wrong write.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aos.kernel.scheduler.etcd import Entry
from aos.kernel.scheduler.layout import (ClusterConfig, HistoryEntry, HostRecord, Keys, LeaderRecord, Placement,
                                         UniverseRecord, history_from, host_from, leader_from, loads, slot_from,
                                         universe_from)

log = logging.getLogger("aos.scheduler")


@dataclass
class ClusterView:
    keys: Keys
    config: ClusterConfig | None = None
    leader: LeaderRecord | None = None
    leader_entry: Entry | None = None
    hosts: dict[str, HostRecord] = field(default_factory=dict)
    hostcaps: dict[str, str] = field(default_factory=dict)
    drains: dict[str, str] = field(default_factory=dict)
    universes: dict[str, UniverseRecord] = field(default_factory=dict)
    universe_revisions: dict[str, int] = field(default_factory=dict)
    slots: dict[int, dict[str, Placement]] = field(default_factory=dict)
    slot_revisions: dict[int, int] = field(default_factory=dict)
    caps: dict[tuple[str, bytes], bytes] = field(default_factory=dict)
    history: dict[int, HistoryEntry] = field(default_factory=dict)  # seq -> entry (the last HISTORY_MAX)
    host_loads: dict[str, float] = field(default_factory=dict)  # host id -> load of the worlds placed on it
    revision: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    cap_listeners: list = field(default_factory=list)  # type: ignore[type-arg]

    def load(self, entries: list[Entry], revision: int) -> None:
        for entry in entries:
            self.apply("PUT", entry)
        self.revision = revision

    def apply(self, kind: str, entry: Entry) -> None:
        keys = self.keys
        key = entry.key
        put = kind.endswith("PUT")
        self.revision = max(self.revision, entry.mod_revision)
        try:
            if key == keys.config:
                self.config = ClusterConfig(**loads(entry.value)) if put else None
            elif key == keys.leader:
                self.leader = leader_from(entry.value) if put else None
                self.leader_entry = entry if put else None
            elif key.startswith(keys.hosts):
                name = keys.tail(key, keys.hosts)
                if put:
                    self.hosts[name] = host_from(entry.value)
                else:
                    self.hosts.pop(name, None)
            elif key.startswith(keys.hostcap("")):
                name = keys.tail(key, keys.hostcap(""))
                if put:
                    self.hostcaps[name] = entry.value.decode()
                else:
                    self.hostcaps.pop(name, None)
            elif key.startswith(keys.drains):
                name = keys.tail(key, keys.drains)
                if put:
                    self.drains[name] = entry.value.decode()
                else:
                    self.drains.pop(name, None)
            elif key.startswith(keys.universes):
                name = keys.tail(key, keys.universes)
                if put:
                    self.universes[name] = universe_from(entry.value)
                    self.universe_revisions[name] = entry.mod_revision
                else:
                    self.universes.pop(name, None)
                    self.universe_revisions.pop(name, None)
            elif key.startswith(keys.slots):
                slot = int(keys.tail(key, keys.slots))
                if put:
                    self._count_loads(self.slots.get(slot, {}), -1)
                    self.slots[slot] = slot_from(entry.value)
                    self._count_loads(self.slots[slot], 1)
                    self.slot_revisions[slot] = entry.mod_revision
                else:
                    self._count_loads(self.slots.pop(slot, {}), -1)
                    self.slot_revisions.pop(slot, None)
            elif key.startswith(keys.histories):
                seq = int(keys.tail(key, keys.histories))
                if put:
                    self.history[seq] = history_from(entry.value)
                else:
                    self.history.pop(seq, None)
            elif key.startswith(keys.caps("")[:-1]):
                family, _, hexkey = keys.tail(key, keys.caps("")[:-1]).partition("/")
                if put:
                    self.caps[(family, bytes.fromhex(hexkey))] = entry.value
                else:
                    self.caps.pop((family, bytes.fromhex(hexkey)), None)
                for listener in list(self.cap_listeners):
                    listener(family, bytes.fromhex(hexkey), entry.value if put else None)
        except (ValueError, TypeError, KeyError) as exc:  # a key someone else wrote badly: skip it, say so
            log.warning("event=bad_etcd_value key=%r error=%r", key[:120], str(exc)[:200])
        self.changed.set()

    def _count_loads(self, slot: dict[str, Placement], sign: int) -> None:
        for p in slot.values():
            if p.host:
                self.host_loads[p.host] = self.host_loads.get(p.host, 0.0) + sign * p.load

    # --- questions -------------------------------------------------------------------------

    def placements(self) -> list[Placement]:
        return [p for slot in self.slots.values() for p in slot.values()]

    def world(self, universe: str, world: str, slot: int) -> Placement | None:
        return self.slots.get(slot, {}).get(f"{universe}/{world}")

    def worlds_of(self, universe: str) -> list[Placement]:
        return sorted((p for p in self.placements() if p.universe == universe), key=lambda p: p.world)

    def on_host(self, host: str) -> list[Placement]:
        return [p for p in self.placements() if p.host == host]

    def stored_bytes(self, universe: str) -> int:
        return sum(h.bytes.get(universe, 0) for h in self.hosts.values())

    async def wait_changed(self, timeout: float) -> None:
        self.changed.clear()
        try:
            await asyncio.wait_for(self.changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

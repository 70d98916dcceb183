"""The scheduler's logic: universes, worlds, introductions, hosts; every change an etcd transaction.

``SchedulerServices`` plays the part ``KernelServices`` plays in a kernel for
``caps/gateway.py`` (grants, tokens, claims, ``cap_for``, ``save``,
``revoke``) and holds the operations the capnp servers call. Every write is
one transaction that compares what it read (the leader key's create revision,
so a deposed leader's write fails; the slot's and universe's mod revisions,
so two writers never both win), retried a few times on a lost race.
Placement decisions are ``place.place``; this module only gathers its inputs
and writes its outputs.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from aos.caps.grants import Grant, GrantTable, Scope
from aos.caps.held import ClaimTable
from aos.caps.tokens import TokenTable
from aos.errors import AosError, InvalidArgument, InvalidToken, KernelUnavailable, PermissionDenied, UnknownWorld
from aos.kernel.names import check_name
from aos.kernel.scheduler import place
from aos.kernel.scheduler.capstore import EtcdCapStore, EtcdCommitter, root_row, sync
from aos.kernel.scheduler.errors import (HostUnavailable, NoHost, NotLeader, QuotaExceeded, UniverseExists,
                                         UniverseNotEmpty, UnknownHost, UnknownUniverse)
from aos.kernel.scheduler.etcd import Etcd
from aos.kernel.scheduler.layout import (HISTORY_MAX, HistoryEntry, HostRecord, LeaderRecord, Placement, Quota,
                                         UniverseRecord, slot_from, slot_of, slot_to, to_json, universe_from)
from aos.kernel.scheduler.view import ClusterView

log = logging.getLogger("aos.scheduler")
T = TypeVar("T")

RETRIES = 8
SETTLE_MS = 30_000  # rebalancing leaves a world alone this long after it moved


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """data_dir: holds ``admin.token``; etcd: the ``--etcd`` URL; lease_ttl: seconds a leader's and a
    host's lease lives without a refresh; rebalance: move running worlds to even out load;
    moves_per_round: at most this many rebalancing moves at once; tls_cert/tls_key: PEM files, the
    TCP listener speaks TLS when both are set; tls_ca: the CA file to trust for hosts that listen
    with TLS (``tls:`` addresses; "" = the system's CAs)."""

    data_dir: str
    etcd: str
    listen: str = "tcp:127.0.0.1:0"
    lease_ttl: int = 3
    rebalance: bool = True
    moves_per_round: int = 16
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""


class Conflict(Exception):
    """A transaction lost a race; the operation is retried from a fresh read."""


class HostLinks:
    """One Cap'n Proto connection per host, through its delegated Kernel token (from its join);
    over TLS trusting ``tls_ca`` to a host that advertises a ``tls:`` address."""

    def __init__(self, tls_ca: str = "") -> None:
        self._links: dict[str, tuple[str, str, Any, Any]] = {}  # host -> (address, token, conn, kernel)
        self.tls_ca = tls_ca

    async def kernel(self, host: HostRecord, token: str) -> Any:
        from aos.kernel.client import Connection, TlsOptions, host_tls

        link = self._links.get(host.id)
        if link is not None and link[0] == host.address and link[1] == token:
            return link[3]
        self.forget(host.id)
        try:
            tls = host_tls(host.address, TlsOptions(self.tls_ca))
            conn = await asyncio.wait_for(Connection.open(host.address, tls=tls), 10)
            kernel = await conn.restore_kernel(token)
        except (AosError, asyncio.TimeoutError) as exc:
            raise HostUnavailable(f"host {host.id} at {host.address} cannot be reached: {exc}") from None
        self._links[host.id] = (host.address, token, conn, kernel)
        return kernel

    def forget(self, host_id: str) -> None:
        link = self._links.pop(host_id, None)
        if link is not None:
            link[2].close()

    def close(self) -> None:
        for host_id in list(self._links):
            self.forget(host_id)


class SchedulerServices:
    def __init__(self, config: SchedulerConfig, etcd: Etcd, view: ClusterView, scheduler_id: str,
                 address: str = "") -> None:
        self.config = config
        self.etcd = etcd
        self.keys = etcd.keys
        self.view = view
        self.id = scheduler_id
        self.address = address
        self.store = EtcdCapStore(view)
        self.committer = EtcdCommitter(etcd, view)
        self.grants = GrantTable({k.decode(): v for k, v in self.store.scan("grants", b"")})
        self.tokens = TokenTable(self.store)  # type: ignore[arg-type]
        self.claims = ClaimTable()
        self.links = HostLinks(config.tls_ca)
        self.leader_revision = 0  # create revision of our leader key while we lead
        self.connections = 0
        self._lock = asyncio.Lock()
        self._intro_cache: dict[tuple[str, str, str, int, bool], str] = {}
        self._history_last = 0  # the last history seq this scheduler handed out
        # decisions this scheduler wrote while leading, by kind (placed, moved, failover): its metrics
        self.decisions: dict[str, int] = {"placed": 0, "moved": 0, "failover": 0}
        view.cap_listeners.append(self._on_cap_row)

    @classmethod
    async def ensure_root(cls, etcd: Etcd) -> None:
        """Write the cluster's root grant once (the first scheduler ever to start does it)."""
        key = etcd.keys.cap("grants", GrantTable.ROOT_ID.encode())
        await etcd.txn([etcd.tx.version(key) == 0], [etcd.tx.put(key, root_row())])

    def _on_cap_row(self, family: str, key: bytes, value: bytes | None) -> None:
        if family == "grants":
            sync(self.grants, key.decode(), value)

    # --- what caps/gateway.py needs --------------------------------------------------------

    def cap_for(self, grant: Grant) -> Any:
        from aos.caps.gateway import RevokerImpl
        from aos.kernel.scheduler.server import SchedulerImpl, UniverseImpl

        kinds = {"scheduler": SchedulerImpl, "universe": UniverseImpl, "revoker": RevokerImpl}
        return kinds[grant.scope.kind](self, grant)

    def mint(self, parent: Grant, scope: Scope) -> tuple[Any, Any]:
        grant = self.grants.derive(parent, scope)
        revoker = self.grants.derive(grant, Scope("revoker", scope.universe))
        return self.cap_for(grant), self.cap_for(revoker)

    async def save(self, grant: Grant) -> str:
        token, ops = self.tokens.mint_ops(grant.id)
        await self.committer.commit(self.grants.persist_ops(grant) + ops)
        self.grants.mark_persisted(grant)
        return token

    async def revoke(self, grant: Grant) -> None:
        ops = self.grants.revoke(grant)
        if ops:
            await self.committer.commit(ops)

    async def resolve_fresh(self, token: str) -> None:
        """A token saved by another scheduler a moment ago may not have reached our mirror: read it."""
        from aos.caps.tokens import token_hash

        digest = token_hash(token)
        if self.store.get("tokens", digest) is not None:
            return
        entry = await self.etcd.get(self.keys.cap("tokens", digest))
        if entry is None:
            return
        self.view.caps[("tokens", digest)] = entry.value
        grant_id = entry.value[32:].decode()
        chain = []
        while grant_id and self.grants.get(grant_id) is None:
            row = await self.etcd.get(self.keys.cap("grants", grant_id.encode()))
            if row is None:
                return
            chain.append((grant_id, row.value))
            import json

            grant_id = json.loads(row.value)["parent"]
        for gid, raw in reversed(chain):
            self.view.caps[("grants", gid.encode())] = raw
            sync(self.grants, gid, raw)

    # --- leadership ---------------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        return self.leader_revision > 0

    def require_leader(self) -> None:
        if not self.leading:
            leader = self.view.leader
            raise NotLeader(f"this scheduler ({self.id}) stands by; leader: {leader.address if leader else 'none'}")

    def _fence(self) -> Any:
        """The compare that makes a deposed leader's write fail."""
        return self.etcd.tx.create(self.keys.leader) == self.leader_revision

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            for _ in range(RETRIES):
                self.require_leader()
                try:
                    return await attempt()
                except Conflict:
                    await asyncio.sleep(0)
            raise AosError("etcd kept changing under this operation; try again")

    async def _write(self, compare: list[Any], success: list[Any]) -> None:
        if not await self.etcd.txn([self._fence(), *compare], success):
            leader = await self.etcd.get(self.keys.leader)
            if leader is None or leader.create_revision != self.leader_revision:
                self.leader_revision = 0
                self.require_leader()
            raise Conflict()

    def _history(self, items: list[tuple[str, str, Placement, str]]) -> tuple[list[Any], list[Any]]:
        """Compares and writes that add one history entry per ``(kind, from host, new placement, reason)``
        to the transaction recording those placements, and drop the oldest beyond ``HISTORY_MAX``.

        A seq is the leader's clock in microseconds (or one past the last it gave), so entries sort by
        time across leaders; a key that exists already fails the transaction (retried) rather than
        overwrite an entry."""
        tx = self.etcd.tx
        compares: list[Any] = []
        writes: list[Any] = []
        now = _now_ms()
        newest = max(self.view.history, default=0)
        for kind, source, p, reason in items:
            seq = self._history_last = max(now * 1000, self._history_last + 1, newest + 1)
            key = self.keys.history(seq)
            compares.append(tx.version(key) == 0)
            writes.append(tx.put(key, to_json(HistoryEntry(seq, now, kind, p.universe, p.world, source, p.host,
                                                           p.epoch, reason))))
        excess = len(self.view.history) + len(items) - HISTORY_MAX
        for old in sorted(self.view.history)[:max(0, excess)]:
            writes.append(tx.delete(self.keys.history(old)))
        return compares, writes

    def _decided(self, items: list[tuple[str, str, Placement, str]]) -> None:
        for kind, *_ in items:
            self.decisions[kind] = self.decisions.get(kind, 0) + 1

    def history(self, before: int = 0, after: int = 0, limit: int = 100) -> list[HistoryEntry]:
        """The newest ``limit`` entries with ``after < seq < before`` (``before`` 0: no bound), newest first."""
        seqs = [q for q in self.view.history if q > after and (not before or q < before)]
        return [self.view.history[q] for q in sorted(seqs, reverse=True)[:max(1, min(limit, HISTORY_MAX))]]

    def _compare_revision(self, key: bytes, revision: int) -> Any:
        tx = self.etcd.tx
        return tx.version(key) == 0 if revision == 0 else tx.mod(key) == revision

    # --- universes ---------------------------------------------------------------------------

    async def _universe(self, universe: str) -> tuple[UniverseRecord, int]:
        entry = await self.etcd.get(self.keys.universe(check_name(universe, "universe id")))
        if entry is None:
            raise UnknownUniverse(f"no universe {universe!r}")
        return universe_from(entry.value), entry.mod_revision

    async def create_universe(self, universe: str, name: str, quota: Quota) -> UniverseRecord:
        check_name(universe, "universe id")
        record = UniverseRecord(universe, name, quota, 0, time.time_ns() // 1_000_000)

        async def attempt() -> UniverseRecord:
            key = self.keys.universe(universe)
            if await self.etcd.get(key) is not None:
                raise UniverseExists(f"universe {universe!r} exists")
            await self._write([self.etcd.tx.version(key) == 0], [self.etcd.tx.put(key, to_json(record))])
            return record

        return await self._retrying(attempt)

    async def set_quota(self, universe: str, quota: Quota) -> UniverseRecord:
        async def attempt() -> UniverseRecord:
            record, revision = await self._universe(universe)
            new = replace(record, quota=quota)
            key = self.keys.universe(universe)
            await self._write([self.etcd.tx.mod(key) == revision], [self.etcd.tx.put(key, to_json(new))])
            return new

        return await self._retrying(attempt)

    async def delete_universe(self, universe: str) -> None:
        async def attempt() -> None:
            record, revision = await self._universe(universe)
            if record.worlds:
                raise UniverseNotEmpty(f"universe {universe!r} still has {record.worlds} world(s): delete them first")
            key = self.keys.universe(universe)
            await self._write([self.etcd.tx.mod(key) == revision], [self.etcd.tx.delete(key)])

        await self._retrying(attempt)

    def universe_info(self, record: UniverseRecord) -> dict[str, Any]:
        return {"universeId": record.id, "name": record.name,
                "quota": {"worlds": record.quota.worlds, "bytes": record.quota.bytes},
                "worlds": record.worlds, "storedBytes": self.view.stored_bytes(record.id),
                "createdAtMs": record.created_ms}

    async def universe_record(self, universe: str) -> UniverseRecord:
        return (await self._universe(universe))[0]

    # --- placement inputs --------------------------------------------------------------------

    def live_hosts(self) -> list[place.HostSpec]:
        return [place.HostSpec(h.id, h.capacity, place.labels_of(h.labels), draining=h.id in self.view.drains)
                for h in self.view.hosts.values()]

    def world_specs(self) -> list[place.WorldSpec]:
        return [spec_of(p) for p in self.view.placements()]

    def choose_host(self, new: Placement) -> str:
        if not new.pin:  # the common case, in O(hosts): no world is evicted for it
            chosen = place.place_new(spec_of(new), self.live_hosts(), self.view.host_loads)
            if isinstance(chosen, place.Unplaced):
                raise NoHost(f"no host can take world {new.key}: {chosen.reason}")
            return chosen
        specs = [s for s in self.world_specs() if s.key != new.key]
        result = place.place([*specs, spec_of(new)], self.live_hosts())
        host = result.hosts.get(new.key)
        if host is None:
            reason = next((u.reason for u in result.unplaced if u.world == new.key), "no live host")
            raise NoHost(f"no host can take world {new.key}: {reason}")
        return host

    # --- worlds ------------------------------------------------------------------------------

    async def _slot(self, slot: int) -> tuple[dict[str, Placement], int]:
        entry = await self.etcd.get(self.keys.slot(slot))
        return (slot_from(entry.value), entry.mod_revision) if entry is not None else ({}, 0)

    def _slot_number(self, universe: str, world: str) -> int:
        slots = self.view.config.slots if self.view.config else 256
        return slot_of(universe, world, slots)

    async def placement(self, universe: str, world: str) -> Placement:
        check_name(world, "world id")
        entries, _ = await self._slot(self._slot_number(universe, world))
        found = entries.get(f"{universe}/{world}")
        if found is None:
            raise UnknownWorld(f"no world {world!r} in universe {universe!r}")
        return found

    async def reserve_world(self, universe: str, world: str, name: str, labels: dict[str, str], pin: str) -> Placement:
        """Place a new world and record it (counted against the quota) before it exists on its host."""
        world = world or "w-" + secrets.token_hex(5)
        check_name(world, "world id")
        if len(world) > 100:
            raise InvalidArgument(f"world id {world!r} is too long (max 100)")
        for key, value in labels.items():
            check_name(key, "label key")
            check_name(value, "label value")
        if pin:
            check_name(pin, "host id")

        async def attempt() -> Placement:
            record, urev = await self._universe(universe)
            if record.quota.worlds and record.worlds >= record.quota.worlds:
                raise QuotaExceeded(f"universe {universe!r} has {record.worlds} of its {record.quota.worlds} worlds")
            stored = self.view.stored_bytes(universe)
            if record.quota.bytes and stored >= record.quota.bytes:
                raise QuotaExceeded(f"universe {universe!r} stores {stored} bytes, its quota is {record.quota.bytes}")
            slot = self._slot_number(universe, world)
            entries, srev = await self._slot(slot)
            if f"{universe}/{world}" in entries:
                raise InvalidArgument(f"world id {world!r} is taken in universe {universe!r}")
            new = Placement(universe, world, labels=dict(labels), pin=pin, name=name)
            host = self.choose_host(new)
            if not self.view.hosts[host].storage:
                # its history lives only in that host's RocksDB: it can never move
                new = replace(new, pin=host)
            new = replace(new, host=host, epoch=1)
            tx = self.etcd.tx
            decided = [("placed", "", new, "created")]
            hcompare, hwrite = self._history(decided)
            await self._write(
                [tx.mod(self.keys.universe(universe)) == urev, self._compare_revision(self.keys.slot(slot), srev),
                 *hcompare],
                [tx.put(self.keys.universe(universe), to_json(replace(record, worlds=record.worlds + 1))),
                 tx.put(self.keys.slot(slot), slot_to({**entries, new.key: new})), *hwrite])
            self._decided(decided)
            return new

        return await self._retrying(attempt)

    async def forget_world(self, universe: str, world: str, *, missing_ok: bool = False) -> None:
        async def attempt() -> None:
            record, urev = await self._universe(universe)
            slot = self._slot_number(universe, world)
            entries, srev = await self._slot(slot)
            key = f"{universe}/{world}"
            if key not in entries:
                if missing_ok:
                    return
                raise UnknownWorld(f"no world {world!r} in universe {universe!r}")
            rest = {k: v for k, v in entries.items() if k != key}
            tx = self.etcd.tx
            await self._write(
                [tx.mod(self.keys.universe(universe)) == urev, tx.mod(self.keys.slot(slot)) == srev],
                [tx.put(self.keys.universe(universe), to_json(replace(record, worlds=max(0, record.worlds - 1)))),
                 tx.put(self.keys.slot(slot), slot_to(rest)) if rest else tx.delete(self.keys.slot(slot))])

        await self._retrying(attempt)

    async def create_world(self, universe: str, manifest: str, modules: list[tuple[str, bytes]], world: str,
                           name: str, labels: dict[str, str], pin: str) -> tuple[Placement, dict[str, Any]]:
        from aos.kernel.client import call

        placement = await self.reserve_world(universe, world, name, labels, pin)
        try:
            kernel = await self.host_kernel(placement.host)
            worlds = await kernel.worlds(universe)
            reply = await call(worlds.cap.create(manifest, [{"hash": h, "wasm": d} for h, d in modules],
                                                 placement.world, name))
            info = reply.info.to_dict()
        except BaseException:
            await self.forget_world(universe, placement.world, missing_ok=True)
            raise
        return placement, info

    async def delete_world(self, universe: str, world: str) -> None:
        await self.placement(universe, world)
        await self.forget_world(universe, world)

    async def host_kernel(self, host_id: str) -> Any:
        host = self.view.hosts.get(host_id)
        token = self.view.hostcaps.get(host_id)
        if host is None or token is None:
            raise HostUnavailable(f"host {host_id} is not live")
        try:
            return await self.links.kernel(host, token)
        except InvalidToken:
            self.links.forget(host_id)
            raise HostUnavailable(f"host {host_id} refused its own delegated token (did it lose its data?)") from None

    async def introduce(self, universe: str, world: str, read_only: bool = False) -> dict[str, Any]:
        from aos.kernel.client import call

        placement = await self.placement(universe, world)
        host = self.view.hosts.get(placement.host)
        if not placement.host or host is None:
            raise HostUnavailable(f"world {placement.key} has no live host now (it is being placed); retry")
        if placement.previous:
            raise HostUnavailable(f"world {placement.key} is moving to {placement.host}; retry")
        cache_key = (host.id, universe, world, placement.epoch, read_only)
        token = self._intro_cache.get(cache_key)
        if token is None:
            for attempt in (0, 1):
                kernel = await self.host_kernel(host.id)
                try:
                    worlds = await kernel.worlds(universe)
                    if read_only:  # a read-only scheduler or universe introduces read-only worlds only
                        worlds = await worlds.read_only()
                    cap = (await call(worlds.cap.open(world))).world
                    token = await kernel.conn.save(_Cap(cap))
                    break
                except KernelUnavailable:
                    self.links.forget(host.id)
                    if attempt:
                        raise HostUnavailable(f"host {host.id} went away while introducing {placement.key}") from None
            assert token is not None
            self._intro_cache[cache_key] = token
        return {"hostId": host.id, "address": host.address, "token": token, "epoch": placement.epoch}

    async def move(self, universe: str, world: str, to_host: str) -> Placement:
        async def attempt() -> Placement:
            target_id = to_host
            slot = self._slot_number(universe, world)
            entries, srev = await self._slot(slot)
            current = entries.get(f"{universe}/{world}")
            if current is None:
                raise UnknownWorld(f"no world {world!r} in universe {universe!r}")
            source = self.view.hosts.get(current.host)
            if current.pin and (source is None or not source.storage):
                raise NoHost(f"world {current.key} lives only in host {current.host}'s own storage: it cannot move "
                             "(start hosts with --storage s3://... to make worlds movable)")
            if target_id:
                target = self.view.hosts.get(check_name(target_id, "host id"))
                if target is None:
                    raise UnknownHost(f"no live host {target_id!r}")
                if target_id == current.host:
                    return current
                spec = replace(spec_of(current), current="", pin=target_id)
                others = [s for s in self.world_specs() if s.key != current.key]
                result = place.place([*others, spec], self.live_hosts())
                if result.hosts.get(current.key) != target_id:
                    reason = next((u.reason for u in result.unplaced if u.world == current.key), "")
                    raise NoHost(f"host {target_id} cannot take world {current.key}: {reason}")
                if not target.storage:
                    raise NoHost(f"host {target_id} has no shared storage: it can run only worlds created on it")
            else:
                others = [s for s in self.world_specs() if s.key != current.key]
                hosts = [h for h in self.live_hosts() if h.id != current.host]
                result = place.place([*others, replace(spec_of(current), current="")], hosts)
                target_id = result.hosts.get(current.key, "")
                if not target_id:
                    reason = next((u.reason for u in result.unplaced if u.world == current.key), "no other host")
                    raise NoHost(f"no other host can take world {current.key}: {reason}")
            now = _now_ms()
            # a dead host hands nothing over: the new one takes the world over (and fences the old one)
            alive = current.host in self.view.hosts
            moved = current.moved_to(target_id, now) if alive else current.taken_over_by(target_id, now)
            decided = [("moved" if alive else "failover", current.host, moved,
                        "by command" if alive else f"by command; host {current.host} is not live")]
            hcompare, hwrite = self._history(decided)
            await self._write([self.etcd.tx.mod(self.keys.slot(slot)) == srev, *hcompare],
                              [self.etcd.tx.put(self.keys.slot(slot), slot_to({**entries, moved.key: moved})),
                               *hwrite])
            self._decided(decided)
            return moved

        return await self._retrying(attempt)

    async def drain(self, host: str, draining: bool) -> None:
        check_name(host, "host id")

        async def attempt() -> None:
            key = self.keys.drain(host)
            write = self.etcd.tx.put(key, b"drained by the operator") if draining else self.etcd.tx.delete(key)
            await self._write([], [write])

        await self._retrying(attempt)

    # --- the leader's loop ------------------------------------------------------------------

    async def reconcile(self) -> int:
        """One round: place worlds whose host died or drains (and rebalance); returns the moves written."""
        current = self.view.placements()
        if not current:
            return 0
        specs = []
        now = _now_ms()
        for p in current:
            alive = p.host in self.view.hosts
            # a world still moving, or moved a moment ago, is not moved again to even out load
            settled = bool(p.previous) or now - p.moved_ms < SETTLE_MS
            specs.append(replace(spec_of(p), current=p.host if alive else "", settled=settled))
        result = place.place(specs, self.live_hosts(), rebalance=self.config.rebalance,
                             max_moves=self.config.moves_per_round)
        by_key = {p.key: p for p in current}
        changed: dict[int, dict[str, Placement]] = {}
        decided: dict[int, list[tuple[str, str, Placement, str]]] = {}
        now = _now_ms()
        for p in current:
            if p.previous and p.previous not in self.view.hosts:
                # the host that was to hand it over died: the new one takes over without waiting
                slot = self._slot_number(p.universe, p.world)
                new = replace(p, previous="", takeover=True)
                changed.setdefault(slot, dict(self.view.slots.get(slot, {})))[p.key] = new
                decided.setdefault(slot, []).append(("failover", p.previous, new,
                                                     f"host {p.previous} died while handing it over"))
        for move in result.moves:
            old = by_key[move.world]
            alive = old.host in self.view.hosts
            new = old.moved_to(move.target, now) if alive else old.taken_over_by(move.target, now)
            slot = self._slot_number(old.universe, old.world)
            changed.setdefault(slot, dict(self.view.slots.get(slot, {})))[new.key] = new
            if not old.host:
                entry = ("placed", "", new, "a host has room now")
            elif not alive:
                entry = ("failover", old.host, new, f"host {old.host} is not live")
            else:
                entry = ("moved", old.host, new, "drain" if old.host in self.view.drains else "rebalance")
            decided.setdefault(slot, []).append(entry)
        written = 0
        for slot, entries in changed.items():
            tx = self.etcd.tx
            revision = self.view.slot_revisions.get(slot, 0)
            hcompare, hwrite = self._history(decided.get(slot, []))
            try:
                await self._write([self._compare_revision(self.keys.slot(slot), revision), *hcompare],
                                  [tx.put(self.keys.slot(slot), slot_to(entries)), *hwrite])
                written += 1
                self._decided(decided.get(slot, []))
            except Conflict:
                continue  # the view was behind; the next round sees the new value
        if written:
            log.info("event=placed moves=%d slots=%d", len(result.moves), written)
        return written

    # --- status -------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        view = self.view
        leader = view.leader or LeaderRecord("", "")
        placements = view.placements()
        hosts = []
        for host in sorted(view.hosts.values(), key=lambda h: h.id):
            mine = [p for p in placements if p.host == host.id]
            hosts.append({"hostId": host.id, "address": host.address, "capacity": host.capacity,
                          "labels": [{"key": k, "value": v} for k, v in sorted(host.labels.items())],
                          "storage": host.storage, "draining": host.id in view.drains,
                          "load": sum(p.load for p in mine), "worlds": len(mine), "running": host.worlds,
                          "pid": host.pid, "health": host.health})
        return {
            "leader": {"id": leader.id, "address": leader.address, "leading": bool(leader.id), "pid": leader.pid},
            "thisScheduler": {"id": self.id, "address": self.address, "leading": self.leading, "pid": _pid()},
            "hosts": hosts,
            "universes": [self.universe_info(u) for u in sorted(view.universes.values(), key=lambda u: u.id)],
            "slots": view.config.slots if view.config else 0,
            "etcdKeys": await self.etcd.count(),
            "waiting": sum(1 for p in placements if p.host not in view.hosts),
        }

    def placement_info(self, p: Placement) -> dict[str, Any]:
        host = self.view.hosts.get(p.host)
        state = "waiting" if host is None else "moving" if p.previous else "running"
        reason = p.reason or ("" if host is not None else f"host {p.host or '(none)'} is not live")
        return {"universeId": p.universe, "worldId": p.world, "hostId": p.host,
                "address": host.address if host else "", "epoch": p.epoch, "state": state, "reason": reason,
                "name": p.name, "labels": [{"key": k, "value": v} for k, v in sorted(p.labels.items())],
                "pin": p.pin}

    def check_universe_scope(self, grant: Grant, universe: str) -> None:
        if grant.scope.universe and grant.scope.universe != universe:
            raise PermissionDenied(f"this capability is for universe {grant.scope.universe}, not {universe}")

    async def close(self) -> None:
        self.links.close()


def spec_of(p: Placement) -> place.WorldSpec:
    return place.WorldSpec(p.key, p.load, place.labels_of(p.labels), p.pin, p.host)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _pid() -> int:
    import os

    return os.getpid()


class _Cap:
    """A bare capability in the shape ``Connection.save`` takes (a facade with ``.cap``)."""

    def __init__(self, cap: Any) -> None:
        self.cap = cap

"""The scheduler's keys in etcd and the records under them (sans-IO: names and codecs only).

Every key is under one cluster prefix (``/aos`` unless the ``--etcd`` URL has a
path). Values are JSON with sorted keys. Which keys hold a lease:

===============================  =================================================  ==============
key                              value                                              lease
===============================  =================================================  ==============
``P/config``                     ``ClusterConfig``: slot count, written once        none
``P/leader``                     ``LeaderRecord``: the leading scheduler            the leader's
``P/hosts/<host>``               ``HostRecord``: address, capacity, labels, load    the host's
``P/hostcaps/<host>``            the host's delegated Kernel token (a secret)       the host's
``P/drain/<host>``               why the operator drains it                         none
``P/universes/<u>``              ``UniverseRecord``: name, quota, world count       none
``P/slots/<nnnn>``               ``Slot``: the worlds hashing there, each with      none
                                 its host, epoch and placement constraints
``P/caps/<family>/<hex key>``    the scheduler's grants and token hashes            none
``P/history/<seq>``              ``HistoryEntry``: one placement, move or failover  none
                                 (the last ``HISTORY_MAX`` only)
===============================  =================================================  ==============

Worlds map to one of ``slots`` (default 256) slots by a hash of
``universe/world``, so the world table costs at most ``slots`` keys whatever
the number of worlds, and a host is one lease however many worlds it runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from aos.errors import InvalidArgument
from aos.kernel.names import check_name

DEFAULT_SLOTS = 256
DEFAULT_PREFIX = "/aos"


def world_key(universe: str, world: str) -> str:
    """A world's name in the whole cluster: ``universe/world`` (``/`` is in no name, so this is unambiguous)."""
    return f"{universe}/{world}"


def split_world_key(text: str, default_universe: str = "") -> tuple[str, str]:
    """``U/W`` -> (U, W); a bare ``W`` is in ``default_universe``. Raises ``InvalidArgument``."""
    universe, sep, world = text.partition("/")
    if not sep:
        universe, world = default_universe, text
    if not universe:
        raise InvalidArgument(f"bad world {text!r}: name it UNIVERSE/WORLD (or pass --universe)")
    return check_name(universe, "universe id"), check_name(world, "world id")


def slot_of(universe: str, world: str, slots: int) -> int:
    digest = hashlib.sha256(world_key(universe, world).encode()).digest()
    return int.from_bytes(digest[:8], "big") % slots


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one cluster prefix."""

    prefix: str = DEFAULT_PREFIX

    def _k(self, *parts: str) -> bytes:
        return "/".join((self.prefix, *parts)).encode()

    @property
    def config(self) -> bytes:
        return self._k("config")

    @property
    def leader(self) -> bytes:
        return self._k("leader")

    def host(self, host: str) -> bytes:
        return self._k("hosts", host)

    @property
    def hosts(self) -> bytes:
        return self._k("hosts", "")

    def hostcap(self, host: str) -> bytes:
        return self._k("hostcaps", host)

    def drain(self, host: str) -> bytes:
        return self._k("drain", host)

    @property
    def drains(self) -> bytes:
        return self._k("drain", "")

    def universe(self, universe: str) -> bytes:
        return self._k("universes", universe)

    @property
    def universes(self) -> bytes:
        return self._k("universes", "")

    def slot(self, slot: int) -> bytes:
        return self._k("slots", f"{slot:04d}")

    @property
    def slots(self) -> bytes:
        return self._k("slots", "")

    def cap(self, family: str, key: bytes) -> bytes:
        return self._k("caps", family, key.hex())

    def caps(self, family: str) -> bytes:
        return self._k("caps", family, "")

    def history(self, seq: int) -> bytes:
        return self._k("history", f"{seq:012d}")

    @property
    def histories(self) -> bytes:
        return self._k("history", "")

    @property
    def everything(self) -> bytes:
        return self._k("")

    def tail(self, key: bytes, under: bytes) -> str:
        return key[len(under):].decode()


def parse_etcd_url(url: str) -> tuple[str, int, str]:
    """``http://HOST:PORT[/PREFIX]`` -> (host, port, key prefix). Raises ``InvalidArgument``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise InvalidArgument(f"bad --etcd {url!r}: use http://HOST:PORT (optionally /PREFIX for the keys)")
    path = parts.path.rstrip("/")
    if path and any(not piece or check_name(piece, "etcd prefix") != piece for piece in path[1:].split("/")):
        raise InvalidArgument(f"bad key prefix {path!r} in --etcd")
    return parts.hostname, parts.port, path or DEFAULT_PREFIX


def dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def loads(raw: bytes) -> Any:
    return json.loads(raw)


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    slots: int = DEFAULT_SLOTS
    version: int = 1


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    id: str
    address: str
    pid: int = 0
    since_ms: int = 0


@dataclass(frozen=True, slots=True)
class HostRecord:
    """What a host kernel advertises (kept fresh by its agent, under its lease).

    storage: the shared storage URL it runs worlds on ("" = its own RocksDB only:
        its worlds cannot move, so placement pins them to it).
    load: total load of the worlds it runs; worlds: how many it runs now;
    bytes: stored bytes per universe it measured.
    """

    id: str
    address: str
    capacity: float
    labels: dict[str, str] = field(default_factory=dict)
    storage: str = ""
    pid: int = 0
    health: str = ""
    load: float = 0.0
    worlds: int = 0
    bytes: dict[str, int] = field(default_factory=dict)
    started_ms: int = 0


@dataclass(frozen=True, slots=True)
class Quota:
    """Per-universe limits; 0 means none."""

    worlds: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class UniverseRecord:
    id: str
    name: str = ""
    quota: Quota = field(default_factory=Quota)
    worlds: int = 0
    created_ms: int = 0


@dataclass(frozen=True, slots=True)
class Placement:
    """One world's entry in its slot.

    host: where it runs ("" = waiting for a host); epoch: bumped on every
    change of host, so a host can tell an old assignment from a new one;
    previous: the host that must release it first ("" = none: acquire freely).
    """

    universe: str
    world: str
    host: str = ""
    epoch: int = 0
    previous: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    pin: str = ""
    load: float = 1.0
    name: str = ""
    reason: str = ""  # why it waits, when host is ""
    takeover: bool = False  # its previous host died: the new host takes it over (fencing), no hand-over
    moved_ms: int = 0  # when it last changed host (rebalancing leaves recent moves alone)

    @property
    def key(self) -> str:
        return world_key(self.universe, self.world)

    def moved_to(self, host: str, now_ms: int = 0) -> Placement:
        """Assigned to ``host``; the current host must hand it over first (``previous``)."""
        return replace(self, host=host, epoch=self.epoch + 1, previous=self.host, reason="", takeover=False,
                       moved_ms=now_ms)

    def taken_over_by(self, host: str, now_ms: int = 0) -> Placement:
        """Assigned to ``host`` after its host died: nothing to wait for, the new host fences the old one."""
        return replace(self, host=host, epoch=self.epoch + 1, previous="", reason="", takeover=True, moved_ms=now_ms)


HISTORY_MAX = 512  # entries etcd keeps; older ones are deleted by the write that adds a new one


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One scheduling decision, written in the same transaction as the slot change it records.

    kind: ``placed`` (a new world, or a waiting one given a host), ``moved`` (by
    command, a drain or rebalancing: the old host hands it over) or
    ``failover`` (its host died: the new host takes it over).
    """

    seq: int
    at_ms: int
    kind: str
    universe: str
    world: str
    from_host: str = ""
    to_host: str = ""
    epoch: int = 0
    reason: str = ""


def history_from(raw: bytes) -> HistoryEntry:
    return HistoryEntry(**loads(raw))


def to_json(record: Any) -> bytes:
    return dumps(asdict(record))


def host_from(raw: bytes) -> HostRecord:
    return HostRecord(**loads(raw))


def universe_from(raw: bytes) -> UniverseRecord:
    row = loads(raw)
    return UniverseRecord(**{**row, "quota": Quota(**row.get("quota", {}))})


def leader_from(raw: bytes) -> LeaderRecord:
    return LeaderRecord(**loads(raw))


def slot_from(raw: bytes) -> dict[str, Placement]:
    """A slot's value: world key -> placement."""
    return {key: Placement(**row) for key, row in loads(raw).items()}


def slot_to(entries: dict[str, Placement]) -> bytes:
    return dumps({key: asdict(p) for key, p in sorted(entries.items())})

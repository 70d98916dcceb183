"""Which world an op belongs to: a pure function over the kernel's key encodings.

A host's log holds every op of every turn (kernel/store.py's families). When
a world moves, the ops that are *its* state must come out of that log: its
journal records, its registry entry, the mail in its inbox and the ids that
inbox accepted, and the kernel timers aimed at the inbox. Everything else
(grants, tokens, raw journals, client mailboxes and timers, the host's own
meta) is the host's and stays.

The encodings (``names.key``: NUL-terminated parts; seqs 8 bytes big-endian)::

    journal    U/worlds \\0 W \\0 seq8          a record            -> RECORD
    heads      U/worlds \\0 W \\0               the journal's head  -> DERIVED (the record count says it)
    worlds     U \\0 W \\0                      the registry entry  -> STATE
    mail       U \\0 #world.W \\0 seq8          inbox mail          -> STATE
    maildedup  U \\0 #world.W \\0 id \\0         accepted mail ids   -> STATE
    timers     U \\0 key \\0   value: due, target, payload            -> STATE if target is #world.W

A timer's delete carries no value, so its world is whatever world the timer
was aimed at: the caller says (``timer_world``), from the store before the
write or from the world's own earlier state. Names never contain NUL, so
splitting at NUL is exact; a seq's 8 bytes may, which is why they are cut
by length, never split.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from aos.kernel.store import Op

WORLDS_SUFFIX = "/worlds"  # kernel/host/registry.py journal_universe: a universe's hosted journals
INBOX_MARK = "#world."  # kernel/host/effects.py inbox(): kernel_name("world", id)
_TIMER = struct.Struct(">qH")  # kernel/timers/store.py: deliverAtMs, len(target); then target, payload
SEQ = 8


class Kind(Enum):
    RECORD = "record"  # a journal record: travels as the world's segments
    DERIVED = "derived"  # rebuilt from the records on arrival (the journal head): never carried
    STATE = "state"  # the rest of the world's state: travels as its op segments


@dataclass(frozen=True, slots=True)
class Owned:
    """An op of one hosted world; ``seq`` is the record's journal seq (RECORD only)."""

    kind: Kind
    universe: str
    world: str
    seq: int = -1


def _parts(key: bytes, count: int) -> list[str] | None:
    """The first ``count`` NUL-terminated parts of ``key`` (None if it has fewer)."""
    out, at = [], 0
    for _ in range(count):
        end = key.find(b"\x00", at)
        if end < 0:
            return None
        out.append(key[at:end].decode("utf-8", "replace"))
        at = end + 1
    return out


def _hosted(space: str) -> str | None:
    return space[: -len(WORLDS_SUFFIX)] if space.endswith(WORLDS_SUFFIX) and len(space) > len(WORLDS_SUFFIX) else None


def _inbox_world(mailbox: str) -> str | None:
    return mailbox[len(INBOX_MARK):] if mailbox.startswith(INBOX_MARK) and len(mailbox) > len(INBOX_MARK) else None


def timer_target(value: bytes) -> str | None:
    """The mailbox a stored timer fires into (None if the value is not a timer)."""
    if len(value) < _TIMER.size:
        return None
    _, size = _TIMER.unpack_from(value)
    raw = value[_TIMER.size : _TIMER.size + size]
    return raw.decode("utf-8", "replace") if len(raw) == size else None


def classify(op: Op, timer_world: Callable[[bytes], tuple[str, str] | None] | None = None) -> Owned | None:
    """The hosted world ``op`` belongs to and how it travels, or None for the host's own ops."""
    family, key = op.family, op.key
    if family == "journal":
        parts = _parts(key, 2)
        universe = _hosted(parts[0]) if parts else None
        if parts is None or universe is None or len(key) != len(parts[0]) + len(parts[1]) + 2 + SEQ:
            return None
        return Owned(Kind.RECORD, universe, parts[1], int.from_bytes(key[-SEQ:], "big"))
    if family == "heads":
        parts = _parts(key, 2)
        universe = _hosted(parts[0]) if parts else None
        if parts is None or universe is None:
            return None
        return Owned(Kind.DERIVED, universe, parts[1])
    if family == "worlds":
        parts = _parts(key, 2)
        return None if parts is None else Owned(Kind.STATE, parts[0], parts[1])
    if family in ("mail", "maildedup"):
        parts = _parts(key, 2)
        world = _inbox_world(parts[1]) if parts else None
        return None if parts is None or world is None else Owned(Kind.STATE, parts[0], world)
    if family == "timers":
        parts = _parts(key, 2)
        if parts is None:
            return None
        if op.value is not None:
            target = timer_target(op.value)
            world = _inbox_world(target) if target is not None else None
            return None if world is None else Owned(Kind.STATE, parts[0], world)
        found = timer_world(key) if timer_world is not None else None
        return None if found is None else Owned(Kind.STATE, found[0], found[1])
    return None  # cas, grants, tokens, meta: the host's


def timers_of(ops: Iterable[Op]) -> dict[bytes, tuple[str, str]]:
    """The world timers still pending after ``ops`` (applied in order): timer key -> (universe, world)."""
    pending: dict[bytes, tuple[str, str]] = {}
    for op in ops:
        if op.family != "timers":
            continue
        if op.value is None:
            pending.pop(op.key, None)
            continue
        owned = classify(op)
        if owned is not None:
            pending[op.key] = (owned.universe, owned.world)
    return pending


class TurnClassifier:
    """Classifies one turn's ops in order, resolving timer deletes from the turn itself first.

    ``before`` answers for timers set before this turn (the store as it was,
    or a world's earlier state); a timer set earlier in the same turn is
    resolved from the turn, since the store does not have it yet.
    """

    def __init__(self, before: Callable[[bytes], tuple[str, str] | None]) -> None:
        self._before = before
        self._turn: dict[bytes, tuple[str, str] | None] = {}

    def _timer_world(self, key: bytes) -> tuple[str, str] | None:
        if key in self._turn:
            return self._turn[key]
        return self._before(key)

    def classify(self, op: Op) -> Owned | None:
        owned = classify(op, self._timer_world)
        if op.family == "timers":
            self._turn[op.key] = None if owned is None or op.value is None else (owned.universe, owned.world)
        return owned


def world_state_ops(batches: Sequence[Sequence[Op]], universe: str, world: str,
                    earlier: Sequence[Op] = ()) -> list[Op]:
    """One world's STATE ops out of turns in log order; ``earlier`` is its state before them (for timers)."""
    known = {k: w for k, w in timers_of(earlier).items() if w == (universe, world)}
    out: list[Op] = []
    for ops in batches:
        turn = TurnClassifier(known.get)
        for op in ops:
            owned = turn.classify(op)
            if owned is None or owned.kind is not Kind.STATE or (owned.universe, owned.world) != (universe, world):
                continue
            out.append(op)
            if op.family == "timers":
                if op.value is None:
                    known.pop(op.key, None)
                else:
                    known[op.key] = (universe, world)
    return out

"""Journal records of a world, as frozen dataclasses with canonical CBOR.

Two families:

- *input* records come from outside and are journaled before the stepper
  sees them: ``EventRecord`` (ingress, with its stamp), ``ReceiptRecord``
  (an adapter's terminal answer) and ``SnapshotRecord`` (a checkpoint marker
  whose hash replay must reproduce) and ``GovernanceRecord`` (a step of a
  manifest change; an apply or rollback switches the manifest there) and
  ``ControlRecord`` (an operator paused or resumed the world);
- *derived* records are what the stepper computed from an input record:
  ``DomainEventRecord``, ``EffectIntentRecord``, ``EffectRejectedRecord``,
  ``TrapRecord`` and ``StateRecord`` (hashes of the cells that changed). The
  driver journals them right after their input; replay recomputes them and
  compares, which is how a tampered or nondeterministic history is caught.

Every record encodes as ``{"kind": <name>, ...fields}`` in canonical CBOR.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from aos.kernel.world import cbor
from aos.kernel.world.errors import CborError, RecordError


@dataclass(frozen=True)
class Stamp:
    """The journaled ingress stamp: the only time and entropy a world sees."""

    logical_now_ns: int
    entropy: bytes = b""

    def to_value(self) -> dict[str, Any]:
        return {"logical_now_ns": self.logical_now_ns, "entropy": self.entropy}

    @classmethod
    def from_value(cls, v: Any) -> Stamp:
        if not isinstance(v, dict) or not isinstance(v.get("logical_now_ns"), int):
            raise RecordError("stamp needs logical_now_ns")
        ent = v.get("entropy", b"")
        if not isinstance(ent, bytes):
            raise RecordError("stamp entropy must be bytes")
        return cls(v["logical_now_ns"], ent)


@dataclass(frozen=True)
class Origin:
    """The workflow instance (cell) that emitted something; ``key`` None = unkeyed."""

    workflow: str
    key: Any = None

    def to_value(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "key": self.key}

    @classmethod
    def from_value(cls, v: Any) -> Origin:
        if not isinstance(v, dict) or not isinstance(v.get("workflow"), str):
            raise RecordError("origin needs a workflow")
        return cls(v["workflow"], v.get("key"))


@functools.cache
def _field_names(cls: type[Any]) -> tuple[str, ...]:
    # dataclasses.fields() rebuilds its tuple on every call: one record encoding per event paid for it
    return tuple(f.name for f in fields(cls))


class _Record:
    kind: ClassVar[str]
    input: ClassVar[bool]

    def to_value(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        for name in _field_names(type(self)):
            v = getattr(self, name)
            d[name] = v.to_value() if isinstance(v, (Stamp, Origin)) else v
        return d

    def encode(self) -> bytes:
        # records are immutable and encoded more than once (hashing, journaling): keep the bytes
        cached: bytes | None = self.__dict__.get("_encoded")
        if cached is None:
            cached = cbor.encode(self.to_value())
            object.__setattr__(self, "_encoded", cached)
        return cached


@dataclass(frozen=True)
class EventRecord(_Record):
    kind: ClassVar[str] = "event"
    input: ClassVar[bool] = True
    schema: str
    value: Any
    stamp: Stamp


@dataclass(frozen=True)
class ReceiptRecord(_Record):
    kind: ClassVar[str] = "receipt"
    input: ClassVar[bool] = True
    intent_hash: str
    status: str  # ok | error | timeout
    payload: Any
    stamp: Stamp


@dataclass(frozen=True)
class SnapshotRecord(_Record):
    kind: ClassVar[str] = "snapshot"
    input: ClassVar[bool] = True
    snapshot_hash: str
    seq: int  # the world's input sequence number when the snapshot was taken


@dataclass(frozen=True)
class GovernanceRecord(_Record):
    """A step of a manifest change (``kernel/world/governance.py``): ``op`` is
    propose, shadow, approve, reject, apply or rollback; ``proposal`` its id
    ("" for a rollback); ``body`` what the step carries (an apply or rollback
    names the new manifest by hash and CAS address, and replay switches there)."""

    kind: ClassVar[str] = "governance"
    input: ClassVar[bool] = True
    op: str
    proposal: str
    body: Any
    stamp: Stamp


@dataclass(frozen=True)
class ControlRecord(_Record):
    """An operator's switch of the world's run state: ``op`` is ``pause`` or ``resume``. A paused world
    applies no event or receipt; they wait (in its inbox mailbox, or in the driver) until a resume."""

    kind: ClassVar[str] = "control"
    input: ClassVar[bool] = True
    op: str
    stamp: Stamp


CONTROL_OPS = ("pause", "resume")


@dataclass(frozen=True)
class DomainEventRecord(_Record):
    kind: ClassVar[str] = "domain_event"
    input: ClassVar[bool] = False
    schema: str
    value: Any
    origin: Origin


@dataclass(frozen=True)
class EffectIntentRecord(_Record):
    kind: ClassVar[str] = "effect_intent"
    input: ClassVar[bool] = False
    intent_hash: str
    idempotency_key: str
    effect: str
    params: Any
    grant: str
    origin: Origin
    emitted_at_seq: int
    effect_index: int


@dataclass(frozen=True)
class EffectRejectedRecord(_Record):
    kind: ClassVar[str] = "effect_rejected"
    input: ClassVar[bool] = False
    effect: str
    params: Any
    origin: Origin
    emitted_at_seq: int
    effect_index: int
    code: str
    reason: str


@dataclass(frozen=True)
class TrapRecord(_Record):
    kind: ClassVar[str] = "trap"
    input: ClassVar[bool] = False
    origin: Origin
    seq: int
    code: str
    message: str


@dataclass(frozen=True)
class StateRecord(_Record):
    """Cells changed by one input: ``[[workflow, key, state_hash|null], ...]``."""

    kind: ClassVar[str] = "state"
    input: ClassVar[bool] = False
    seq: int
    changes: tuple[tuple[str, Any, str | None], ...]

    def to_value(self) -> dict[str, Any]:
        return {"kind": self.kind, "seq": self.seq, "changes": [list(c) for c in self.changes]}


Record = (EventRecord | ReceiptRecord | SnapshotRecord | GovernanceRecord | ControlRecord | DomainEventRecord
          | EffectIntentRecord | EffectRejectedRecord | TrapRecord | StateRecord)
InputRecord = EventRecord | ReceiptRecord | SnapshotRecord | GovernanceRecord | ControlRecord

_KINDS: dict[str, type[Any]] = {
    c.kind: c
    for c in (EventRecord, ReceiptRecord, SnapshotRecord, GovernanceRecord, ControlRecord, DomainEventRecord,
              EffectIntentRecord, EffectRejectedRecord, TrapRecord, StateRecord)
}


def record_from_value(v: Any) -> Record:
    """Rebuild a record from its decoded value. Raises ``RecordError``."""
    if not isinstance(v, dict):
        raise RecordError("a record is a map")
    cls = _KINDS.get(v.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        raise RecordError(f"unknown record kind {v.get('kind')!r}")
    names = {f.name for f in fields(cls)}
    if set(v) - {"kind"} != names:
        raise RecordError(f"{cls.kind} record fields {sorted(set(v) - {'kind'})} != {sorted(names)}")
    args: dict[str, Any] = {}
    for f in fields(cls):
        x = v[f.name]
        if f.name == "stamp":
            x = Stamp.from_value(x)
        elif f.name == "origin":
            x = Origin.from_value(x)
        elif f.name == "changes":
            if not isinstance(x, list) or not all(isinstance(c, list) and len(c) == 3 for c in x):
                raise RecordError("state changes must be [workflow, key, hash] triples")
            x = tuple(tuple(c) for c in x)
        args[f.name] = x
    return cls(**args)  # type: ignore[no-any-return]


def decode_record(data: bytes) -> Record:
    """Decode one journaled record. Raises ``RecordError`` (also for non-canonical bytes)."""
    try:
        record = record_from_value(cbor.decode(data))
    except CborError as exc:
        raise RecordError(f"record is not canonical CBOR: {exc}") from exc
    # decode checked that these are the record's canonical bytes: keep them, not a re-encode
    object.__setattr__(record, "_encoded", bytes(data))
    return record

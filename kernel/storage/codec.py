"""Bytes of the storage objects: log batches and segments in canonical CBOR,
heads in JSON (small, and readable with ``aws s3 cp ... -``).

Decoders check that an object is what its key says (the log and seq inside a
batch match its key, the world inside a head matches its path): a copy under
the wrong key, or a foreign object, is ``CorruptObject``, never data.
Canonical CBOR makes encoding deterministic, so a writer can recognise its
own earlier attempt by comparing bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aos.kernel.store import Op
from aos.kernel.storage.contract import CorruptObject, LogBatch, LogHead, Snapshot, TailRef, WorldHead
from aos.kernel.world import cbor
from aos.kernel.world.errors import CborError

VERSION = 1


def _cbor(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = cbor.decode(data)
    except CborError as exc:
        raise CorruptObject(f"{what} is not canonical CBOR: {exc}") from None
    if not isinstance(value, dict) or value.get("v") != VERSION:
        raise CorruptObject(f"{what} is not a version-{VERSION} object")
    return value


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise CorruptObject(f"{what} is not JSON") from None
    if not isinstance(value, dict) or value.get("v") != VERSION:
        raise CorruptObject(f"{what} is not a version-{VERSION} object")
    return value


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _field(value: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    got = value.get(name)
    if not isinstance(got, kind) or isinstance(got, bool) and kind is int:
        raise CorruptObject(f"{what}: field {name!r} is missing or of the wrong type")
    return got


# --- log batches ------------------------------------------------------------------------------


def _ops(raw_ops: list[Any], what: str) -> tuple[Op, ...]:
    ops = []
    for item in raw_ops:
        if (
            not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str)
            or not isinstance(item[1], bytes) or not (item[2] is None or isinstance(item[2], bytes))
        ):
            raise CorruptObject(f"{what}: malformed op")
        ops.append(Op(item[0], item[1], item[2]))
    return tuple(ops)


def encode_batch(batch: LogBatch) -> bytes:
    ops = [[op.family, op.key, op.value] for op in batch.ops]
    return cbor.encode(
        {"v": VERSION, "log": batch.log, "seq": batch.seq, "epoch": batch.epoch, "writer": batch.writer,
         "fence": batch.fence, "ops": ops}
    )


def decode_batch(data: bytes, log: str, seq: int) -> LogBatch:
    what = f"log {log} seq {seq}"
    value = _cbor(data, what)
    if value.get("log") != log or value.get("seq") != seq:
        raise CorruptObject(f"{what} holds the object of log {value.get('log')!r} seq {value.get('seq')!r}")
    ops = _ops(_field(value, "ops", list, what), what)
    return LogBatch(
        log, seq, _field(value, "epoch", int, what), _field(value, "writer", str, what), ops,
        _field(value, "fence", bool, what),
    )


# --- log heads --------------------------------------------------------------------------------


def encode_log_head(head: LogHead) -> bytes:
    return _dump({"v": VERSION, "log": head.log, "epoch": head.epoch, "owner": head.owner, "fence_seq": head.fence_seq})


def decode_log_head(data: bytes, log: str) -> LogHead:
    what = f"head of log {log}"
    value = _json(data, what)
    if value.get("log") != log:
        raise CorruptObject(f"{what} names log {value.get('log')!r}")
    owner = value.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise CorruptObject(f"{what}: bad owner")
    return LogHead(log, _field(value, "epoch", int, what), owner, _field(value, "fence_seq", int, what))


# --- world heads ------------------------------------------------------------------------------


def encode_world_head(head: WorldHead) -> bytes:
    tail = None if head.tail is None else {"log": head.tail.log, "log_epoch": head.tail.log_epoch, "start": head.tail.start}
    snap = None if head.snapshot is None else {"address": head.snapshot.address, "seq": head.snapshot.seq}
    return _dump(
        {"v": VERSION, "universe": head.universe, "world": head.world, "owner": head.owner, "epoch": head.epoch,
         "flushed": head.flushed, "tail": tail, "snapshot": snap, "ops": head.ops, "address": head.address}
    )


def decode_world_head(data: bytes, universe: str, world: str) -> WorldHead:
    what = f"head of world {world} in universe {universe}"
    value = _json(data, what)
    if value.get("universe") != universe or value.get("world") != world:
        raise CorruptObject(f"{what} names world {value.get('world')!r} in {value.get('universe')!r}")
    owner = value.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise CorruptObject(f"{what}: bad owner")
    tail = snapshot = None
    if value.get("tail") is not None:
        raw = _field(value, "tail", dict, what)
        tail = TailRef(_field(raw, "log", str, what), _field(raw, "log_epoch", int, what), _field(raw, "start", int, what))
    if value.get("snapshot") is not None:
        raw = _field(value, "snapshot", dict, what)
        snapshot = Snapshot(_field(raw, "address", str, what), _field(raw, "seq", int, what))
    address = value.get("address")
    if address is not None and not isinstance(address, str):
        raise CorruptObject(f"{what}: bad address")
    # "ops" and "address" came with the kernel's wiring; a head written before has neither
    ops = _field(value, "ops", int, what) if "ops" in value else 0
    return WorldHead(
        universe, world, owner, _field(value, "epoch", int, what), _field(value, "flushed", int, what), tail, snapshot,
        ops, address,
    )


# --- segments ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    """Records ``[first, first + len(records))`` of one world, flushed by ``writer`` at world epoch ``epoch``."""

    universe: str
    world: str
    first: int
    records: tuple[bytes, ...]
    writer: str
    epoch: int

    @property
    def end(self) -> int:
        return self.first + len(self.records)


def encode_segment(segment: Segment) -> bytes:
    return cbor.encode(
        {"v": VERSION, "universe": segment.universe, "world": segment.world, "first": segment.first,
         "records": list(segment.records), "writer": segment.writer, "epoch": segment.epoch}
    )


def decode_segment(data: bytes, universe: str, world: str, first: int) -> Segment:
    what = f"segment {first} of world {world} in universe {universe}"
    value = _cbor(data, what)
    if value.get("universe") != universe or value.get("world") != world or value.get("first") != first:
        raise CorruptObject(f"{what} holds another segment")
    records = _field(value, "records", list, what)
    if not all(isinstance(r, bytes) for r in records):
        raise CorruptObject(f"{what}: a record is not bytes")
    return Segment(universe, world, first, tuple(records), _field(value, "writer", str, what), _field(value, "epoch", int, what))


# --- op segments: a world's state ops (classify.py), in commit order ---------------------------


@dataclass(frozen=True, slots=True)
class OpSegment:
    """State ops ``[first, first + len(ops))`` of one world, flushed by ``writer`` at world epoch ``epoch``."""

    universe: str
    world: str
    first: int
    ops: tuple[Op, ...]
    writer: str
    epoch: int

    @property
    def end(self) -> int:
        return self.first + len(self.ops)


def encode_op_segment(segment: OpSegment) -> bytes:
    return cbor.encode(
        {"v": VERSION, "universe": segment.universe, "world": segment.world, "first": segment.first,
         "ops": [[op.family, op.key, op.value] for op in segment.ops], "writer": segment.writer,
         "epoch": segment.epoch}
    )


def decode_op_segment(data: bytes, universe: str, world: str, first: int) -> OpSegment:
    what = f"op segment {first} of world {world} in universe {universe}"
    value = _cbor(data, what)
    if value.get("universe") != universe or value.get("world") != world or value.get("first") != first:
        raise CorruptObject(f"{what} holds another segment")
    ops = _ops(_field(value, "ops", list, what), what)
    return OpSegment(universe, world, first, ops, _field(value, "writer", str, what), _field(value, "epoch", int, what))

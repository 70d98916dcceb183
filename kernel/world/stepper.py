"""The world stepper: a sans-IO state machine over journal records.

How it works: the driver journals an input record (event, receipt, snapshot
marker), then calls ``World.apply(record)``, which never raises and returns a
``StepResult``. For an event it checks the value against its schema, finds
the subscriptions (manifest order, fan-out), extracts the cell key of keyed
workflows, and runs each workflow step. Each step's output is checked (state
schema, domain events, limits); a trap or bad output discards that one step
and is recorded as a ``TrapRecord``. Domain events are routed in the same
apply, breadth first. Each emitted effect goes through admission (declared
by the workflow, params valid, a grant covers it): admitted ones become an
``EffectIntentRecord`` with a derived idempotency key and are kept open until
their receipt; refused ones become an ``EffectRejectedRecord``. A receipt is
delivered as a ``sys/EffectReceipt@1`` event to the exact cell that emitted
the intent, never through routing.

The result's ``records`` are the derived records the driver must journal
right after the input (atomically with it if it can); ``intents`` are the
effects to start, only once those records are durable.

``seq`` counts applied event and receipt records; with the step number inside
one apply and the effect index it names every intent uniquely, so the same
journal always derives the same idempotency keys.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aos.kernel.world import cbor
from aos.kernel.world import schema as types
from aos.kernel.world.abi import MAX_STATE_BYTES, StepOutput, Trap, parse_output, step_input
from aos.kernel.world.errors import CborError, ModuleLoadError, SchemaViolation, SnapshotError
from aos.kernel.world.governance import SWITCHES, GovernanceError, GovernanceState, ManifestLoader
from aos.kernel.world.grants import find_grant
from aos.kernel.world.manifest import Manifest, WorkflowDef, def_hash
from aos.kernel.world.records import (
    ControlRecord,
    DomainEventRecord,
    EffectIntentRecord,
    EffectRejectedRecord,
    EventRecord,
    GovernanceRecord,
    InputRecord,
    Origin,
    ReceiptRecord,
    Record,
    SnapshotRecord,
    Stamp,
    StateRecord,
    TrapRecord,
    record_from_value,
)
from aos.kernel.world.runtime import WorkflowRuntime

RECEIPT_SCHEMA = "sys/EffectReceipt@1"
RECEIPT_STATUSES = ("ok", "error", "timeout")
MAX_CASCADE = 256  # workflow steps one input record may cause
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class StepResult:
    """What applying one input record did.

    ``status`` is ``ok`` (applied; journal ``records``, then start
    ``intents``) or ``rejected`` (nothing changed; ``error`` says why)."""

    status: Literal["ok", "rejected"]
    records: tuple[Record, ...] = ()
    intents: tuple[EffectIntentRecord, ...] = ()
    error: Trap | None = None

    @property
    def traps(self) -> tuple[TrapRecord, ...]:
        return tuple(r for r in self.records if isinstance(r, TrapRecord))


def _kb(key: Any) -> bytes:
    return cbor.encode_body(key)


@dataclass(frozen=True)
class _Delivery:
    workflow: WorkflowDef
    key: Any
    schema: str
    value: Any


class World:
    """One world's live state. Build with ``World(manifest, runtimes, world_id)``
    (genesis) or ``World.restore(...)``; ``runtimes`` maps module names to
    ``WorkflowRuntime`` objects (see ``load_runtimes``)."""

    def __init__(self, manifest: Manifest, runtimes: Mapping[str, WorkflowRuntime], world_id: str) -> None:
        self.manifest = manifest
        self.world_id = world_id
        self.manifest_hash = manifest.hash
        self._runtimes = dict(runtimes)
        self._types = manifest.schema_types()
        self._secrets = frozenset(manifest.secrets)
        self._cells: dict[str, dict[bytes, tuple[Any, bytes]]] = {w: {} for w in manifest.workflows}
        self._open: dict[str, EffectIntentRecord] = {}
        self.seq = 0
        self.paused = False  # an operator paused it (ControlRecord): the driver holds its events and receipts
        # proposals and manifest history (governance.py); the host sets ``manifests`` so that an
        # apply or rollback record can switch to the manifest it names, live and in replay
        self.governance = GovernanceState()
        self.manifests: ManifestLoader | None = None
        missing = {w.module for w in manifest.workflows.values()} - set(self._runtimes)
        if missing:
            raise ModuleLoadError(f"no runtime for modules {sorted(missing)}")

    # --- reads ---------------------------------------------------------------------------------

    @property
    def runtimes(self) -> Mapping[str, WorkflowRuntime]:
        """The module runtimes (reuse them to ``restore`` or replay a sibling world)."""
        return self._runtimes

    def state(self, workflow: str, key: Any = None) -> Any:
        """Decoded state of a cell (``None`` if it does not exist)."""
        b = self.state_bytes(workflow, key)
        return None if b is None else cbor.decode_trusted(b)

    def state_bytes(self, workflow: str, key: Any = None) -> bytes | None:
        cell = self._cells[workflow].get(_kb(key))
        return None if cell is None else cell[1]

    def cell_keys(self, workflow: str) -> list[Any]:
        """Keys of a workflow's live cells, in canonical key order."""
        return [k for _, (k, _) in sorted(self._cells[workflow].items())]

    def open_intents(self) -> tuple[EffectIntentRecord, ...]:
        """Journaled intents without a receipt, by intent hash: what a restored
        world must (re)start, with the same idempotency keys."""
        return tuple(self._open[h] for h in sorted(self._open))

    # --- door checks: the driver calls these before journaling -------------------------------

    def check_event(self, schema: str, value: Any) -> SchemaViolation | None:
        """Why an ingress event would be refused (``None`` if it is fine)."""
        if schema not in self._types:
            takes = sorted({r.event for r in self.manifest.routing})
            return SchemaViolation("$.schema", f"unknown schema {schema!r} (this world takes "
                                               f"{', '.join(takes) if takes else 'no events'})")
        try:
            self._validate(value, schema, "$.value")
            cbor.encode(value)
            for r in self.manifest.routes_for(schema):
                if r.key_field is not None:
                    self._key(value, r.key_field, self.manifest.workflows[r.workflow])
        except SchemaViolation as exc:
            return exc
        except CborError as exc:
            return SchemaViolation("$.value", str(exc))
        return None

    def check_receipt(self, intent_hash: str, status: str, payload: Any) -> SchemaViolation | None:
        """Why a receipt would be refused (unknown/settled intent, bad status,
        payload not matching the effect's receipt schema)."""
        intent = self._open.get(intent_hash)
        if intent is None:
            return SchemaViolation("$.intent_hash", "unknown or already settled intent")
        if status not in RECEIPT_STATUSES:
            return SchemaViolation("$.status", f"must be one of {RECEIPT_STATUSES}")
        if status == "ok":
            eff = self.manifest.effects[intent.effect]
            try:
                self._validate(payload, eff.receipt, "$.payload")
            except SchemaViolation as exc:
                return exc
        try:
            cbor.encode(payload)
        except CborError as exc:
            return SchemaViolation("$.payload", str(exc))
        return None

    def check_governance(self, record: GovernanceRecord) -> GovernanceError | None:
        """Why a governance step would be refused now (``None`` if it may happen)."""
        why = self.governance.check(record, self.manifest_hash)
        return None if why is None else GovernanceError(why)

    # --- manifest changes ----------------------------------------------------------------------

    def manifest_problems(self, new: Manifest, most: int = 20) -> list[str]:
        """Why this world's state could not continue on ``new``: cells the new
        schemas refuse, a workflow that changes keyed-ness under live cells, and
        effects in flight whose workflow or declaration the change would take away."""
        problems: list[str] = []
        new_types = new.schema_types()
        same_schemas = dict(new.schemas) == dict(self.manifest.schemas)
        for name in sorted(self._cells):
            cells, old, wf = self._cells[name], self.manifest.workflows[name], new.workflows.get(name)
            if not cells or wf is None:
                continue  # a removed workflow's cells go with it (the diff says so)
            if (old.key is None) != (wf.key is None):
                problems.append(f"{name} becomes {'keyed' if wf.key else 'unkeyed'} but has {len(cells)} cell(s)")
                continue
            if same_schemas and old.state == wf.state and old.key == wf.key:
                continue
            for key, state_bytes in (cells[k] for k in sorted(cells)):
                try:
                    if wf.key is not None:
                        types.validate(key, new_types[wf.key], new_types, "$.key", new.secrets)
                    types.validate(cbor.decode_trusted(state_bytes), new_types[wf.state], new_types, "$.state",
                                   new.secrets)
                except SchemaViolation as exc:
                    shown = "" if key is None else f"[{cbor.canonicalize(key)!r}]"
                    problems.append(f"the state of {name}{shown} does not fit {wf.state} any more: {exc}")
                    break
        for intent in self.open_intents():
            wf = new.workflows.get(intent.origin.workflow)
            old_eff, new_eff = self.manifest.effects[intent.effect], new.effects.get(intent.effect)
            keeps = (wf is not None and intent.effect in wf.effects and new_eff is not None
                     and def_hash(new_eff) == def_hash(old_eff)
                     and new_types.get(new_eff.receipt) == self._types.get(old_eff.receipt))
            if not keeps:
                problems.append(f"{intent.effect} of {intent.origin.workflow} is in flight (emitted at seq "
                                f"{intent.emitted_at_seq}): the change must keep its workflow and declaration "
                                "until it settles")
        return problems[:most]

    def adopt(self, new: Manifest, runtimes: Mapping[str, WorkflowRuntime]) -> tuple[tuple[str, Any, None], ...]:
        """Continue on ``new`` (check ``manifest_problems`` first): cells of removed
        workflows are dropped (returned as state changes), the others carry over."""
        missing = {w.module for w in new.workflows.values()} - set(runtimes)
        if missing:
            raise ModuleLoadError(f"no runtime for modules {sorted(missing)}")
        dropped = tuple((w, key, None) for w in sorted(self._cells) if w not in new.workflows
                        for _, (key, _b) in sorted(self._cells[w].items()))
        self._cells = {w: self._cells.get(w, {}) for w in new.workflows}
        self.manifest, self.manifest_hash = new, new.hash
        self._runtimes = dict(runtimes)
        self._types = new.schema_types()
        self._secrets = frozenset(new.secrets)
        return dropped

    def _apply_governance(self, rec: GovernanceRecord) -> StepResult:
        why = self.governance.check(rec, self.manifest_hash)
        if why is not None:
            return _reject("Governance", why)
        if rec.op not in SWITCHES:
            self.governance.record(rec, self.seq)
            return StepResult("ok")
        if self.manifests is None:
            # replay cannot go on without the manifest the record names
            return _reject("Internal", f"no manifest loader: cannot switch to {rec.body['manifest']}")
        manifest, runtimes = self.manifests(rec)
        if manifest.hash != rec.body["manifest"]:
            return _reject("Internal", f"{rec.body['address']} holds manifest {manifest.hash}, "
                                       f"not {rec.body['manifest']}")
        problems = self.manifest_problems(manifest)
        if problems:
            return _reject("Governance", "; ".join(problems))
        dropped = self.adopt(manifest, runtimes)
        self.governance.record(rec, self.seq)
        return StepResult("ok", (StateRecord(self.seq, dropped),))

    # --- the state machine ---------------------------------------------------------------------

    def apply(self, record: InputRecord, door_checked: bool = False) -> StepResult:
        """Apply one journaled input record. Never raises.

        ``door_checked`` says the caller just ran ``check_event`` on this event
        against this world and it passed; the check is pure, so it is skipped.
        Replay never passes it."""
        try:
            if isinstance(record, EventRecord):
                return self._apply_event(record, door_checked)
            if isinstance(record, ReceiptRecord):
                return self._apply_receipt(record)
            if isinstance(record, SnapshotRecord):
                return self._apply_snapshot_marker(record)
            if isinstance(record, GovernanceRecord):
                return self._apply_governance(record)
            if isinstance(record, ControlRecord):
                return self._apply_control(record)
            return _reject("Record", f"{getattr(record, 'kind', type(record).__name__)} is not an input record")
        except Exception as exc:  # noqa: BLE001 -- a stepper bug must not kill the host; it is reported
            return _reject("Internal", f"{type(exc).__name__}: {exc}")

    def _apply_event(self, rec: EventRecord, door_checked: bool = False) -> StepResult:
        self.seq += 1
        bad = None if door_checked else self.check_event(rec.schema, rec.value)
        if bad is not None:
            return _reject(bad.code, str(bad))
        deliveries = [
            _Delivery(wf, self._key(rec.value, r.key_field, wf) if r.key_field else None, rec.schema, rec.value)
            for r in self.manifest.routes_for(rec.schema)
            for wf in (self.manifest.workflows[r.workflow],)
        ]
        return self._run(deliveries, rec.stamp, cbor.sha256_text(rec.encode()))

    def _apply_receipt(self, rec: ReceiptRecord) -> StepResult:
        self.seq += 1
        bad = self.check_receipt(rec.intent_hash, rec.status, rec.payload)
        if bad is not None:
            return _reject(bad.code, str(bad))
        intent = self._open.pop(rec.intent_hash)
        value = {
            "intent_hash": intent.intent_hash,
            "effect": intent.effect,
            "status": rec.status,
            "payload": rec.payload,
            "emitted_at_seq": intent.emitted_at_seq,
            "effect_index": intent.effect_index,
        }
        wf = self.manifest.workflows[intent.origin.workflow]
        return self._run([_Delivery(wf, intent.origin.key, RECEIPT_SCHEMA, value)], rec.stamp,
                         cbor.sha256_text(rec.encode()))

    def _apply_control(self, rec: ControlRecord) -> StepResult:
        if rec.op not in ("pause", "resume"):
            return _reject("Record", f"unknown control op {rec.op!r}")
        self.paused = rec.op == "pause"  # not an input of any workflow: seq and cells stay
        return StepResult("ok")

    def _apply_snapshot_marker(self, rec: SnapshotRecord) -> StepResult:
        # replay reaching a snapshot marker must be in exactly the recorded state
        if rec.seq != self.seq or rec.snapshot_hash != self.state_hash():
            return _reject("Nondeterminism",
                           f"state at seq {self.seq} does not match snapshot {rec.snapshot_hash} (seq {rec.seq})")
        return StepResult("ok")

    def _run(self, first: list[_Delivery], stamp: Stamp, event_hash: str) -> StepResult:
        queue = deque(first)
        out: list[Record] = []
        intents: list[EffectIntentRecord] = []
        changes: dict[tuple[str, bytes], tuple[str, Any, str | None]] = {}
        step_no = 0
        while queue:
            d = queue.popleft()
            if step_no >= MAX_CASCADE:
                out.append(TrapRecord(Origin(d.workflow.name, d.key), self.seq, "WorkflowTrap",
                                      f"cascade exceeded {MAX_CASCADE} steps; event {d.schema} dropped"))
                continue
            step_no += 1
            self._step(d, step_no, stamp, event_hash, queue, out, intents, changes)
        out.append(StateRecord(self.seq, tuple(changes[k] for k in sorted(changes))))
        return StepResult("ok", tuple(out), tuple(intents))

    def _step(self, d: _Delivery, step_no: int, stamp: Stamp, event_hash: str, queue: deque[_Delivery],
              out: list[Record], intents: list[EffectIntentRecord],
              changes: dict[tuple[str, bytes], tuple[str, Any, str | None]]) -> None:
        wf = d.workflow
        kb = _kb(d.key)
        cell = self._cells[wf.name].get(kb)
        ctx: dict[str, Any] = {
            "seq": self.seq,
            "step": step_no,
            "logical_now_ns": stamp.logical_now_ns,
            "entropy": stamp.entropy,
            "seed": hashlib.sha256(cbor.encode([stamp.entropy, wf.name, d.key, step_no])).digest(),
            "event_hash": event_hash,
            "manifest_hash": self.manifest_hash,
            "workflow": wf.name,
        }
        if d.key is not None:
            ctx["key"] = d.key
        # the state goes as the cell's bytes: a runtime decodes them (a fresh copy) instead of
        # re-encoding a decoded state to copy it
        raw = self._runtimes[wf.module].call(wf.entry, step_input(None, d.schema, d.value, d.key, ctx),
                                             None if cell is None else cell[1])
        res = raw if isinstance(raw, Trap) else parse_output(raw)
        checked = res if isinstance(res, Trap) else self._check_output(wf, res)
        if isinstance(checked, Trap):
            out.append(TrapRecord(Origin(wf.name, d.key), self.seq, checked.code, checked.message))
            return
        assert isinstance(res, StepOutput)
        follow, state_bytes = checked
        # commit this step: state, then domain events, then effects
        if state_bytes is None:
            self._cells[wf.name].pop(kb, None)
        else:
            self._cells[wf.name][kb] = (None if d.key is None else cbor.canonicalize(d.key), state_bytes)
        if (cell[1] if cell else None) != state_bytes:
            changes[(wf.name, kb)] = (wf.name, d.key, None if state_bytes is None else cbor.sha256_text(state_bytes))
        if not follow and not res.effects:
            return  # most steps emit nothing: no origin to build
        origin = Origin(wf.name, d.key)
        for ev, targets in follow:
            out.append(DomainEventRecord(ev.schema, cbor.canonicalize(ev.value), origin))
            queue.extend(targets)
        for index, eff in enumerate(res.effects):
            admitted = self._admit(wf, origin, step_no, index, eff.effect, eff.params, intents)
            out.append(admitted)
            if isinstance(admitted, EffectRejectedRecord):
                # the emitting cell learns of the refusal the way it learns of any
                # outcome: an error receipt (no intent exists, so intent_hash is "")
                queue.append(_Delivery(wf, d.key, RECEIPT_SCHEMA, {
                    "intent_hash": "",
                    "effect": admitted.effect,
                    "status": "error",
                    "payload": {"error": "refused", "code": admitted.code, "message": admitted.reason},
                    "emitted_at_seq": admitted.emitted_at_seq,
                    "effect_index": admitted.effect_index,
                }))

    def _check_output(self, wf: WorkflowDef, res: StepOutput
                      ) -> tuple[list[tuple[Any, list[_Delivery]]], bytes | None] | Trap:
        try:
            if res.state is not None:
                self._validate(res.state, wf.state, "$.state")
            follow = []
            for i, ev in enumerate(res.domain_events):
                if ev.schema not in self._types:
                    return Trap("SchemaViolation", f"domain_events[{i}]: unknown schema {ev.schema!r}")
                self._validate(ev.value, ev.schema, f"$.domain_events[{i}].value")
                targets = [
                    _Delivery(t, self._key(ev.value, r.key_field, t) if r.key_field else None, ev.schema, ev.value)
                    for r in self.manifest.routes_for(ev.schema)
                    for t in (self.manifest.workflows[r.workflow],)
                ]
                follow.append((ev, targets))
            state_bytes = None if res.state is None else cbor.encode(res.state)
            if state_bytes is not None and len(state_bytes) > MAX_STATE_BYTES:
                return Trap("WorkflowTrap", f"state larger than {MAX_STATE_BYTES} bytes")
            for e in res.effects:
                cbor.encode(e.params)
        except SchemaViolation as exc:
            return Trap("SchemaViolation", str(exc))
        except CborError as exc:
            return Trap("WorkflowTrap", f"output not encodable: {exc}")
        except RecursionError:
            return Trap("WorkflowTrap", "output nested too deeply")
        return follow, state_bytes

    def _admit(self, wf: WorkflowDef, origin: Origin, step_no: int, index: int, effect: str, params: Any,
               intents: list[EffectIntentRecord]) -> EffectIntentRecord | EffectRejectedRecord:
        params = cbor.canonicalize(params)

        def refuse(code: str, reason: str) -> EffectRejectedRecord:
            return EffectRejectedRecord(effect, params, origin, self.seq, index, code, reason)

        if effect not in wf.effects:
            return refuse("EffectDenied", f"{wf.name} does not declare effect {effect!r}")
        eff = self.manifest.effects[effect]
        try:
            self._validate(params, eff.params, "$.params")
        except SchemaViolation as exc:
            return refuse("SchemaViolation", str(exc))
        grant, why = find_grant(self.manifest, wf.name, eff, params)
        if grant is None:
            return refuse("EffectDenied", why)
        idem = cbor.hash_value({
            "world": self.world_id, "workflow": wf.name, "key": origin.key, "seq": self.seq,
            "step": step_no, "index": index, "effect": effect,
        })
        ih = cbor.hash_value({"effect": effect, "params": params, "idempotency_key": idem})
        intent = EffectIntentRecord(ih, idem, effect, params, grant, origin, self.seq, index)
        self._open[ih] = intent
        intents.append(intent)
        return intent

    def _validate(self, value: Any, schema: str, path: str) -> None:
        types.validate(value, self._types[schema], self._types, path, self._secrets)

    def _key(self, value: Any, key_field: str, wf: WorkflowDef) -> Any:
        cur = value
        for part in key_field.split("."):
            if not isinstance(cur, dict) or part not in cur:
                raise SchemaViolation(f"$.value.{key_field}", f"missing key field for {wf.name}")
            cur = cur[part]
        assert wf.key is not None
        self._validate(cur, wf.key, f"$.value.{key_field}")
        return cur

    # --- snapshots -----------------------------------------------------------------------------

    def snapshot_value(self) -> dict[str, Any]:
        cells = [[w, key, b] for w in sorted(self._cells) for _, (key, b) in sorted(self._cells[w].items())]
        value = {
            "version": SNAPSHOT_VERSION,
            "world": self.world_id,
            "manifest": self.manifest_hash,
            "seq": self.seq,
            "cells": cells,
            "open": [self._open[h].to_value() for h in sorted(self._open)],
        }
        if not self.governance.empty:  # absent until a world's first proposal: older snapshots keep their bytes
            value["governance"] = self.governance.to_value()
        if self.paused:  # likewise absent unless paused
            value["paused"] = True
        return value

    def snapshot(self) -> bytes:
        """Canonical CBOR of all cells, open intents and counters."""
        return cbor.encode(self.snapshot_value())

    def state_hash(self) -> str:
        """``sha256:`` of the snapshot bytes: equal hashes mean equal worlds."""
        return cbor.sha256_text(self.snapshot())

    def snapshot_record(self) -> SnapshotRecord:
        """The marker to journal after storing ``snapshot()`` (e.g. in CAS)."""
        return SnapshotRecord(self.state_hash(), self.seq)

    @classmethod
    def restore(cls, manifest: Manifest, runtimes: Mapping[str, WorkflowRuntime], world_id: str,
                snapshot: bytes) -> World:
        """Rebuild a world from ``snapshot()`` bytes. Raises ``SnapshotError``."""
        try:
            v = cbor.decode(snapshot)
        except CborError as exc:
            raise SnapshotError(f"snapshot is not canonical CBOR: {exc}") from exc
        w = cls(manifest, runtimes, world_id)
        if not isinstance(v, dict) or v.get("version") != SNAPSHOT_VERSION:
            raise SnapshotError("unknown snapshot version")
        if v.get("world") != world_id or v.get("manifest") != w.manifest_hash:
            raise SnapshotError("snapshot belongs to another world or manifest")
        try:
            w.seq = v["seq"]
            for name, key, b in v["cells"]:
                cbor.decode(b)
                w._cells[name][_kb(key)] = (key, b)
            for iv in v["open"]:
                intent = record_from_value(iv)
                assert isinstance(intent, EffectIntentRecord)
                w._open[intent.intent_hash] = intent
            if "governance" in v:
                w.governance = GovernanceState.from_value(v["governance"])
            w.paused = v.get("paused", False) is True
        except (KeyError, TypeError, ValueError, AssertionError, CborError) as exc:
            raise SnapshotError(f"malformed snapshot: {exc}") from exc
        return w


def _reject(code: str, message: str) -> StepResult:
    return StepResult("rejected", error=Trap(code, message))

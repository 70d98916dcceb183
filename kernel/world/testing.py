"""Test workflows and helpers, shipped so users can test their worlds like we do.

``Harness`` is a driver in miniature (journal in a list, door checks, stamps
from a logical ``Clock``). ``scripted`` is a Python workflow that does what its event tells it: emit the
listed effects and domain events, delete its cell, trap, or return a state
that violates its schema; receipts it gets are appended to its state. Its
schemas are in ``SCRIPTED_SCHEMAS``. ``RUNAWAY_WAT`` is a WASM workflow whose
``step`` never returns, to check that fuel stops it.
"""

from __future__ import annotations

from typing import Any

import wasmtime
from aos.kernel.world.python_runtime import PythonAllowList
from aos.kernel.world.records import EffectIntentRecord, EventRecord, ReceiptRecord, Record, Stamp
from aos.kernel.world.stepper import StepResult, World

SCRIPTED_MODULE = "aos.kernel.world.testing"
# what an in-process test passes to ``load_runtimes`` to run ``scripted``; a kernel
# gets the same with ``aos-kernel --python-module aos.kernel.world.testing``
TEST_PYTHON = PythonAllowList.of([SCRIPTED_MODULE])

SCRIPTED_SCHEMAS: dict[str, Any] = {
    "test/ScriptState@1": {"record": {"n": "nat", "receipts": {"list": "any"}}},
    "test/Script@1": {
        "record": {
            "id": {"option": "text"},
            "effects": {"option": {"list": "any"}},
            "emit": {"option": {"list": "any"}},
            "delete": {"option": "bool"},
            "trap": {"option": "bool"},
            "bad_state": {"option": "bool"},
        }
    },
}


def scripted(inp: dict[str, Any]) -> dict[str, Any]:
    """A workflow driven by its event; see the module docstring."""
    st = inp["state"] or {"n": 0, "receipts": []}
    st = {"n": st["n"] + 1, "receipts": list(st["receipts"])}
    ev = inp["event"]
    if ev["schema"] == "sys/EffectReceipt@1":
        v = ev["value"]
        st["receipts"].append([v["effect"], v["status"], v["payload"]])
        return {"state": st}
    v = ev["value"]
    if v.get("trap"):
        raise RuntimeError("scripted trap")
    if v.get("bad_state"):
        return {"state": {"n": "not a nat", "receipts": []}}
    return {
        "state": None if v.get("delete") else st,
        "effects": v.get("effects") or [],
        "domain_events": v.get("emit") or [],
    }


RUNAWAY_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "step") (param i32 i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0)))
"""


def runaway_wasm() -> bytes:
    """The bytes of a workflow module that loops forever."""
    return bytes(wasmtime.wat2wasm(RUNAWAY_WAT))


class Clock:
    """Makes ingress stamps with a logical clock and counter-derived entropy,
    as a driver would (deterministically, for tests)."""

    def __init__(self, start_ns: int = 1_000_000_000, tick_ns: int = 1_000) -> None:
        self.now = start_ns
        self.tick = tick_ns
        self.n = 0

    def stamp(self) -> Stamp:
        self.now += self.tick
        self.n += 1
        return Stamp(self.now, self.n.to_bytes(8, "big") * 4)

    def event(self, schema: str, value: Any) -> EventRecord:
        return EventRecord(schema, value, self.stamp())


class Harness:
    """Drive a world the way the kernel will: door check, journal the input,
    apply, journal the derived records. ``journal`` is the whole history."""

    def __init__(self, world: World, clock: Clock | None = None) -> None:
        self.world = world
        self.clock = clock or Clock()
        self.journal: list[Record] = []
        self.snapshots: list[tuple[int, bytes]] = []  # (journal index of the marker, bytes)

    def _apply(self, rec: EventRecord | ReceiptRecord) -> StepResult:
        self.journal.append(rec)
        res = self.world.apply(rec)
        self.journal.extend(res.records)
        return res

    def send(self, schema: str, value: Any) -> StepResult:
        """Send an ingress event. Raises ``SchemaViolation`` if the door refuses it."""
        bad = self.world.check_event(schema, value)
        if bad is not None:
            raise bad
        return self._apply(EventRecord(schema, value, self.clock.stamp()))

    def receipt(self, intent: EffectIntentRecord, status: str = "ok", payload: Any = None) -> StepResult:
        """Settle an intent. Raises ``SchemaViolation`` if the receipt is refused."""
        bad = self.world.check_receipt(intent.intent_hash, status, payload)
        if bad is not None:
            raise bad
        return self._apply(ReceiptRecord(intent.intent_hash, status, payload, self.clock.stamp()))

    def snapshot(self) -> bytes:
        """Take a snapshot and journal its marker."""
        snap = self.world.snapshot()
        self.snapshots.append((len(self.journal), snap))
        self.journal.append(self.world.snapshot_record())
        return snap

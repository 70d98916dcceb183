"""The workflow step ABI: one canonical-CBOR document in, one out.

Input  ``{version: 1, state: value|null, event: {schema, value, key?}, ctx}``
Output ``{state: value|null, domain_events?: [{schema, value, key?}],
effects?: [{effect, params}], ann?}``

``state`` and ``value`` are nested CBOR values (not byte strings), so the
stepper can check them against their schemas; the stored state is the
canonical CBOR of the returned value. ``ctx`` is the only source of time and
randomness a workflow sees: ``{seq, logical_now_ns, entropy, event_hash,
manifest_hash, workflow, key?}``, all copied from the journaled record.

Per-step limits follow AOS: at most 64 effects, 256 domain events, and a
state of at most 1 MiB encoded; output beyond them is a trap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ABI_VERSION = 1
MAX_EFFECTS = 64
MAX_DOMAIN_EVENTS = 256
MAX_STATE_BYTES = 1 << 20


@dataclass(frozen=True)
class Trap:
    """Why a step produced no output; ``code`` is a ``WorldError`` code."""

    code: str
    message: str


@dataclass(frozen=True)
class EmittedEvent:
    schema: str
    value: Any
    key: Any = None


@dataclass(frozen=True)
class EmittedEffect:
    effect: str
    params: Any


@dataclass(frozen=True)
class StepOutput:
    state: Any  # None deletes the cell / clears the state
    domain_events: tuple[EmittedEvent, ...]
    effects: tuple[EmittedEffect, ...]
    ann: Any = None


def step_input(state: Any, schema: str, value: Any, key: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {"schema": schema, "value": value}
    if key is not None:
        event["key"] = key
    return {"version": ABI_VERSION, "state": state, "event": event, "ctx": ctx}


def parse_output(out: Any) -> StepOutput | Trap:
    """Check the shape and limits of a workflow's output (never raises)."""
    if not isinstance(out, dict) or "state" not in out:
        return Trap("WorkflowTrap", "output must be a map with a state field")
    extra = set(out) - {"state", "domain_events", "effects", "ann"}
    if extra:
        return Trap("WorkflowTrap", f"unknown output fields {sorted(map(str, extra))}")
    evs = out.get("domain_events") or []
    effs = out.get("effects") or []
    if not isinstance(evs, list) or not isinstance(effs, list):
        return Trap("WorkflowTrap", "domain_events and effects must be lists")
    if len(effs) > MAX_EFFECTS:
        return Trap("WorkflowTrap", f"more than {MAX_EFFECTS} effects in one step")
    if len(evs) > MAX_DOMAIN_EVENTS:
        return Trap("WorkflowTrap", f"more than {MAX_DOMAIN_EVENTS} domain events in one step")
    events = []
    for i, e in enumerate(evs):
        if not isinstance(e, dict) or not isinstance(e.get("schema"), str) or "value" not in e:
            return Trap("WorkflowTrap", f"domain_events[{i}] must be {{schema, value, key?}}")
        events.append(EmittedEvent(e["schema"], e["value"], e.get("key")))
    effects = []
    for i, e in enumerate(effs):
        if not isinstance(e, dict) or not isinstance(e.get("effect"), str) or "params" not in e:
            return Trap("WorkflowTrap", f"effects[{i}] must be {{effect, params}}")
        effects.append(EmittedEffect(e["effect"], e["params"]))
    # the state's size limit is checked where it is encoded (the stepper)
    return StepOutput(out["state"], tuple(events), tuple(effects), out.get("ann"))

"""Governance: how a world's manifest changes, as data and pure functions.

How it works. A change starts as a *patch*: a list of operations (``add``,
``replace``, ``remove``) on the sections of the readable manifest
(``schemas``, ``modules``, ``workflows``, ``effects``, ``grants``,
``routing``, ``secrets``). ``apply_patch`` turns the current manifest
document into the proposed one; the host then parses it with the very
``parse_manifest`` and host checks a create runs, so a patch is refused
exactly where a manifest would be. ``diff_manifests`` says what changes.

Every step of a change is a journaled input record (``GovernanceRecord``):
``propose`` -> ``shadow`` -> ``approve`` or ``reject`` -> ``apply``, and
``rollback`` to an earlier manifest. ``GovernanceState`` (part of the world's
snapshot) holds the proposals and the history of manifests; its ``check``
is the state machine's rule book, the same at the door and in the stepper,
so replay refuses (or accepts) exactly what the live world did. ``apply`` and
``rollback`` switch the world's manifest inside ``World.apply``: the record
names the manifest by hash and CAS address, and replay switches at that
record.

``shadow`` runs a patched manifest on a fork of the world's current state
against sample events, next to an unpatched fork fed the same events, and
reports what differs: state, effects it would emit, grants added or dropped,
and what it breaks (traps, schema violations at the door or in a step,
refused effects, state the new schemas no longer accept, effects in flight
the patch would orphan).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aos.kernel.world import cbor
from aos.kernel.world.errors import WorldError
from aos.kernel.world.manifest import Manifest, Route, def_hash
from aos.kernel.world.records import (
    EffectIntentRecord,
    EffectRejectedRecord,
    EventRecord,
    GovernanceRecord,
    TrapRecord,
)

if TYPE_CHECKING:
    from aos.kernel.world.runtime import WorkflowRuntime
    from aos.kernel.world.stepper import World

# the operations a governance grant may allow, one effect each (sys/governance.<op>@1)
OPS = ("propose", "shadow", "approve", "reject", "apply", "rollback", "history")
SWITCHES = ("apply", "rollback")  # the operations that change the world's manifest
NAMED_SECTIONS = ("schemas", "modules", "workflows", "effects", "grants")
SECTIONS = NAMED_SECTIONS + ("routing", "secrets")
PATCH_OPS = ("add", "replace", "remove")
# who governs a world is fixed when it is created: no patch adds, changes or drops these
PROTECTED_GRANT_KINDS = frozenset({"governance", "universe"})
MAX_PATCH_OPS = 256
MAX_PATCH_BYTES = 256 * 1024  # canonical CBOR of the patch
MAX_REASON_CHARS = 2000
KEEP_DECIDED = 64  # applied or rejected proposals kept in the world's state (oldest go first)
MAX_HISTORY = 1024
REPORT_ITEMS = 50  # entries per list in a shadow report
REPORT_VALUE_BYTES = 2048  # larger values in a report are shown by hash and size

STATUSES = ("proposed", "shadowed", "approved", "rejected", "applied")

ManifestLoader = Callable[[GovernanceRecord], "tuple[Manifest, Mapping[str, WorkflowRuntime]]"]


class GovernanceError(WorldError):
    """A governance step the world's governance state does not allow (unknown
    proposal, wrong status, a base manifest that is no longer current)."""

    code = "Governance"


class PatchRejected(GovernanceError):
    """A patch that is malformed, too large, or changes what no patch may change
    (who governs the world, grant kinds its proposer may not touch)."""

    code = "PatchRejected"


# --- patches --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatchOp:
    op: str  # add | replace | remove
    section: str
    name: str | None = None  # named sections and secrets
    value: Any = None  # the definition (add/replace), or the route (routing)

    def describe(self) -> str:
        sign = {"add": "+", "replace": "~", "remove": "-"}[self.op]
        if self.section == "routing":
            v = self.value or {}
            return f"{sign} routing {v.get('event')} -> {v.get('workflow')}"
        return f"{sign} {self.section} {self.name}"


@dataclass(frozen=True)
class Patch:
    ops: tuple[PatchOp, ...]
    base: str | None = None  # the manifest hash it was written against, if it says
    reason: str = ""

    def to_value(self) -> dict[str, Any]:
        ops = []
        for o in self.ops:
            d: dict[str, Any] = {"op": o.op, "section": o.section}
            if o.name is not None:
                d["name"] = o.name
            if o.value is not None:
                d["value"] = o.value
            ops.append(d)
        out: dict[str, Any] = {"ops": ops}
        if self.base is not None:
            out["base"] = self.base
        if self.reason:
            out["reason"] = self.reason
        return out

    def summary(self) -> list[str]:
        return [o.describe() for o in self.ops]


def parse_patch(value: Any) -> Patch:
    """A ``Patch`` from its JSON value ``{"ops": [...], "base"?, "reason"?}``.
    Raises ``PatchRejected`` naming the bad field."""
    if not isinstance(value, dict):
        raise PatchRejected("$: a patch is an object {\"ops\": [...]}")
    unknown = set(value) - {"ops", "base", "reason"}
    if unknown:
        raise PatchRejected(f"$.{sorted(unknown)[0]}: unknown field (a patch has ops, base, reason)")
    try:
        size = len(cbor.encode(value))
    except (WorldError, RecursionError, TypeError, ValueError) as exc:
        raise PatchRejected(f"$: not a world value: {exc}") from None
    if size > MAX_PATCH_BYTES:
        raise PatchRejected(f"$: the patch is {size} bytes; the limit is {MAX_PATCH_BYTES}")
    ops_value = value.get("ops")
    if not isinstance(ops_value, list) or not ops_value:
        raise PatchRejected("$.ops: a non-empty list of operations")
    if len(ops_value) > MAX_PATCH_OPS:
        raise PatchRejected(f"$.ops: {len(ops_value)} operations; the limit is {MAX_PATCH_OPS}")
    base = value.get("base")
    if base is not None and not cbor.is_hash_text(base):
        raise PatchRejected("$.base: a manifest hash sha256:<64 hex>")
    reason = value.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise PatchRejected(f"$.reason: text of at most {MAX_REASON_CHARS} characters")
    return Patch(tuple(_parse_op(o, f"$.ops[{i}]") for i, o in enumerate(ops_value)), base, reason)


def _parse_op(v: Any, path: str) -> PatchOp:
    if not isinstance(v, dict):
        raise PatchRejected(f"{path}: an operation is an object {{op, section, name?, value?}}")
    unknown = set(v) - {"op", "section", "name", "value"}
    if unknown:
        raise PatchRejected(f"{path}.{sorted(unknown)[0]}: unknown field")
    op, section = v.get("op"), v.get("section")
    if op not in PATCH_OPS:
        raise PatchRejected(f"{path}.op: one of {list(PATCH_OPS)}, not {op!r}")
    if section not in SECTIONS:
        raise PatchRejected(f"{path}.section: one of {list(SECTIONS)}, not {section!r}")
    name, value = v.get("name"), v.get("value")
    if section == "routing":
        if not isinstance(value, dict) or not isinstance(value.get("event"), str) \
                or not isinstance(value.get("workflow"), str):
            raise PatchRejected(f"{path}.value: a route {{event, workflow, key_field?}}")
        if name is not None:
            raise PatchRejected(f"{path}.name: routes are named by their value's event and workflow")
        return PatchOp(op, section, None, value)
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise PatchRejected(f"{path}.name: non-empty text without spaces")
    if section == "secrets":
        if op == "replace" or value is not None:
            raise PatchRejected(f"{path}: a secret is a name: add or remove it, with no value")
        return PatchOp(op, section, name)
    if op == "remove":
        if value is not None:
            raise PatchRejected(f"{path}.value: remove takes no value")
    elif value is None:
        raise PatchRejected(f"{path}.value: {op} needs the definition")
    return PatchOp(op, section, name, value)


def apply_patch(doc: Mapping[str, Any], patch: Patch) -> dict[str, Any]:
    """The manifest document with ``patch`` applied (``doc`` is not changed).
    Raises ``PatchRejected`` when an operation does not fit the document (adding
    what exists, replacing or removing what does not)."""
    out = copy.deepcopy(dict(doc))
    for i, o in enumerate(patch.ops):
        path = f"$.ops[{i}]"
        if o.section == "routing":
            routes = out.setdefault("routing", [])
            if not isinstance(routes, list):
                raise PatchRejected(f"{path}: the manifest's routing is not a list")
            at = next((j for j, r in enumerate(routes) if isinstance(r, dict) and r.get("event") == o.value["event"]
                       and r.get("workflow") == o.value["workflow"]), None)
            if o.op == "add":
                if at is not None:
                    raise PatchRejected(f"{path}: route {o.value['event']} -> {o.value['workflow']} exists "
                                        "(replace it)")
                routes.append(copy.deepcopy(o.value))
            elif at is None:
                raise PatchRejected(f"{path}: no route {o.value['event']} -> {o.value['workflow']} to {o.op}")
            elif o.op == "replace":
                routes[at] = copy.deepcopy(o.value)
            else:
                del routes[at]
        elif o.section == "secrets":
            secrets = out.setdefault("secrets", [])
            if not isinstance(secrets, list):
                raise PatchRejected(f"{path}: the manifest's secrets are not a list")
            if o.op == "add":
                if o.name in secrets:
                    raise PatchRejected(f"{path}: secret {o.name!r} is declared already")
                secrets.append(o.name)
            elif o.name not in secrets:
                raise PatchRejected(f"{path}: no secret {o.name!r} to remove")
            else:
                secrets.remove(o.name)
        else:
            section = out.setdefault(o.section, {})
            if not isinstance(section, dict):
                raise PatchRejected(f"{path}: the manifest's {o.section} is not an object")
            exists = o.name in section
            if o.op == "add" and exists:
                raise PatchRejected(f"{path}: {o.section} {o.name!r} exists (replace it)")
            if o.op != "add" and not exists:
                raise PatchRejected(f"{path}: no {o.section} {o.name!r} to {o.op}")
            if o.op == "remove":
                del section[o.name]
            else:
                section[o.name] = copy.deepcopy(o.value)
    return out


# --- what a patch changes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestDiff:
    """What differs between two manifests, by definition name (changed = same name, other hash)."""

    added: Mapping[str, tuple[str, ...]]
    removed: Mapping[str, tuple[str, ...]]
    changed: Mapping[str, tuple[str, ...]]
    routes_added: tuple[Route, ...] = ()
    routes_removed: tuple[Route, ...] = ()
    secrets_added: tuple[str, ...] = ()
    secrets_removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not any((*self.added.values(), *self.removed.values(), *self.changed.values(), self.routes_added,
                        self.routes_removed, self.secrets_added, self.secrets_removed))

    def names(self, section: str) -> set[str]:
        return {*self.added.get(section, ()), *self.removed.get(section, ()), *self.changed.get(section, ())}

    def lines(self) -> list[str]:
        out = []
        for section in NAMED_SECTIONS:
            out += [f"+ {section} {n}" for n in self.added.get(section, ())]
            out += [f"~ {section} {n}" for n in self.changed.get(section, ())]
            out += [f"- {section} {n}" for n in self.removed.get(section, ())]
        out += [f"+ routing {r.event} -> {r.workflow}" for r in self.routes_added]
        out += [f"- routing {r.event} -> {r.workflow}" for r in self.routes_removed]
        out += [f"+ secrets {n}" for n in self.secrets_added] + [f"- secrets {n}" for n in self.secrets_removed]
        return out

    def to_value(self) -> dict[str, Any]:
        return {
            "added": {k: list(v) for k, v in self.added.items() if v},
            "removed": {k: list(v) for k, v in self.removed.items() if v},
            "changed": {k: list(v) for k, v in self.changed.items() if v},
            "routes_added": [r.canonical() for r in self.routes_added],
            "routes_removed": [r.canonical() for r in self.routes_removed],
            "secrets_added": list(self.secrets_added), "secrets_removed": list(self.secrets_removed),
            "lines": self.lines(),
        }


def diff_manifests(old: Manifest, new: Manifest) -> ManifestDiff:
    added: dict[str, tuple[str, ...]] = {}
    removed: dict[str, tuple[str, ...]] = {}
    changed: dict[str, tuple[str, ...]] = {}
    for section in NAMED_SECTIONS:
        a, b = getattr(old, section), getattr(new, section)
        added[section] = tuple(sorted(set(b) - set(a)))
        removed[section] = tuple(sorted(set(a) - set(b)))
        changed[section] = tuple(sorted(n for n in set(a) & set(b) if def_hash(a[n]) != def_hash(b[n])))
    old_routes, new_routes = set(old.routing), set(new.routing)
    return ManifestDiff(
        added, removed, changed,
        tuple(r for r in new.routing if r not in old_routes), tuple(r for r in old.routing if r not in new_routes),
        tuple(sorted(set(new.secrets) - set(old.secrets))), tuple(sorted(set(old.secrets) - set(new.secrets))),
    )


def grant_changes(diff: ManifestDiff, old: Manifest, new: Manifest) -> dict[str, list[dict[str, Any]]]:
    """The grants a change adds, drops and changes, with their kinds and params (for people and reports)."""
    def show(g: Any) -> dict[str, Any]:
        d = {"name": g.name, "cap": g.cap, "params": g.params}
        if g.workflows is not None:
            d["workflows"] = list(g.workflows)
        return d

    return {
        "added": [show(new.grants[n]) for n in diff.added.get("grants", ())],
        "dropped": [show(old.grants[n]) for n in diff.removed.get("grants", ())],
        "changed": [{"before": show(old.grants[n]), "after": show(new.grants[n])}
                    for n in diff.changed.get("grants", ())],
    }


def check_authority(diff: ManifestDiff, old: Manifest, new: Manifest,
                    grant_kinds: Iterable[str] | None = None) -> None:
    """Refuse a change no proposer may make (adding, changing or dropping a
    ``governance`` or ``universe`` grant: who governs a world is set when it is
    created), and, for a proposer limited to ``grant_kinds`` (a workflow acting
    through a governance grant), any grant change of another kind.
    Raises ``PatchRejected``."""
    allowed = None if grant_kinds is None else set(grant_kinds)
    for name in sorted(diff.names("grants")):
        kinds = {g.cap for g in (old.grants.get(name), new.grants.get(name)) if g is not None}
        protected = kinds & PROTECTED_GRANT_KINDS
        if protected:
            verb = "adds" if name not in old.grants else "drops" if name not in new.grants else "changes"
            raise PatchRejected(f"the patch {verb} the {sorted(protected)[0]} grant {name!r}: who governs a world "
                                "is fixed when it is created, no patch may change it")
        if allowed is not None and not kinds <= allowed:
            shown = ", ".join(sorted(allowed)) or "none"
            raise PatchRejected(f"the patch changes the {'/'.join(sorted(kinds))} grant {name!r}; the governance grant "
                                f"it came through lets a patch change grants of these kinds only: {shown}")


# --- the governance state of a world -------------------------------------------------------------------


@dataclass
class Proposal:
    id: str
    base: str  # the manifest hash it applies to
    manifest: str  # the proposed manifest's hash
    address: str  # CAS address of the proposed manifest document
    summary: tuple[str, ...]
    by: str
    reason: str
    seq: int  # the world's input seq when it was proposed
    status: str = "proposed"
    shadow: dict[str, Any] | None = None  # {report, ok, problems, events, base}
    decided_by: str = ""
    decision: str = ""  # the approve/reject reason

    def to_value(self) -> dict[str, Any]:
        return {"id": self.id, "base": self.base, "manifest": self.manifest, "address": self.address,
                "summary": list(self.summary), "by": self.by, "reason": self.reason, "seq": self.seq,
                "status": self.status, "shadow": self.shadow, "decided_by": self.decided_by,
                "decision": self.decision}

    @classmethod
    def from_value(cls, v: dict[str, Any]) -> Proposal:
        return cls(v["id"], v["base"], v["manifest"], v["address"], tuple(v["summary"]), v["by"], v["reason"],
                   v["seq"], v["status"], v["shadow"], v["decided_by"], v["decision"])


@dataclass(frozen=True)
class Change:
    """One manifest switch: ``apply`` of a proposal or a ``rollback``."""

    op: str
    proposal: str
    before: str  # manifest hash
    after: str
    before_address: str
    address: str
    seq: int
    by: str = ""

    def to_value(self) -> dict[str, Any]:
        return {"op": self.op, "proposal": self.proposal, "before": self.before, "after": self.after,
                "before_address": self.before_address, "address": self.address, "seq": self.seq, "by": self.by}

    @classmethod
    def from_value(cls, v: dict[str, Any]) -> Change:
        return cls(v["op"], v["proposal"], v["before"], v["after"], v["before_address"], v["address"], v["seq"],
                   v["by"])


@dataclass
class GovernanceState:
    """The proposals and manifest history of one world (in its snapshot)."""

    proposals: dict[str, Proposal] = field(default_factory=dict)
    history: list[Change] = field(default_factory=list)
    next: int = 1

    @property
    def empty(self) -> bool:
        return not self.proposals and not self.history and self.next == 1

    def next_id(self) -> str:
        return f"p{self.next}"

    def current_address(self) -> str | None:
        """CAS address of the running manifest's document, if a change ever happened."""
        return self.history[-1].address if self.history else None

    def address_of(self, manifest_hash: str) -> str | None:
        """Where an earlier manifest of this world is (for a rollback), newest mention first."""
        for c in reversed(self.history):
            if c.after == manifest_hash:
                return c.address
            if c.before == manifest_hash:
                return c.before_address
        return None

    def get(self, proposal: str) -> Proposal:
        p = self.proposals.get(proposal)
        if p is None:
            known = ", ".join(sorted(self.proposals, key=_number)[-8:]) or "none"
            raise GovernanceError(f"no proposal {proposal!r} (recent: {known})")
        return p

    def check(self, rec: GovernanceRecord, manifest_hash: str) -> str | None:
        """Why ``rec`` may not happen now (``None``: it may). Pure; the door and the stepper share it."""
        try:
            self._check(rec, manifest_hash)
        except GovernanceError as exc:
            return str(exc)
        except (KeyError, TypeError, AttributeError) as exc:
            return f"malformed {rec.op} record: {type(exc).__name__}: {exc}"
        return None

    def _check(self, rec: GovernanceRecord, current: str) -> None:
        b = rec.body
        if not isinstance(b, dict):
            raise GovernanceError(f"malformed {rec.op} record: its body is not a map")
        if rec.op == "propose":
            if rec.proposal != self.next_id():
                raise GovernanceError(f"the next proposal is {self.next_id()}, not {rec.proposal!r}")
            if b["base"] != current:
                raise GovernanceError(f"the proposal is for manifest {b['base']}; the world runs {current}")
            return
        if rec.op == "rollback":
            if b["prev"] != current:
                raise GovernanceError(f"the world runs {current}, not {b['prev']}")
            if b["manifest"] == current:
                raise GovernanceError(f"the world already runs {current}")
            if self.address_of(b["manifest"]) != b["address"]:
                raise GovernanceError(f"{b['manifest']} is not an earlier manifest of this world "
                                      "(see its history)")
            return
        if rec.op not in OPS or rec.op == "history":
            raise GovernanceError(f"unknown governance operation {rec.op!r}")
        p = self.get(rec.proposal)
        if rec.op == "shadow":
            if p.status not in ("proposed", "shadowed"):
                raise GovernanceError(f"proposal {p.id} is {p.status}; only a proposed one is shadowed")
            self._current(p, current)
            return
        if rec.op == "approve":
            if p.status != "shadowed" or p.shadow is None:
                raise GovernanceError(f"proposal {p.id} is {p.status}: shadow it first "
                                      f"(aos world shadow WORLD {p.id})")
            if not p.shadow.get("ok"):
                raise GovernanceError(f"proposal {p.id}'s shadow run found {p.shadow.get('problems')} problem(s): "
                                      "fix the patch and propose it again (or reject this one)")
            self._current(p, current)
            return
        if rec.op == "reject":
            if p.status not in ("proposed", "shadowed", "approved"):
                raise GovernanceError(f"proposal {p.id} is {p.status} already")
            return
        # apply
        if p.status != "approved":
            raise GovernanceError(f"proposal {p.id} is {p.status}; only an approved proposal is applied")
        self._current(p, current)
        if b["prev"] != current or b["manifest"] != p.manifest or b["address"] != p.address:
            raise GovernanceError(f"the apply record does not match proposal {p.id}")

    @staticmethod
    def _current(p: Proposal, current: str) -> None:
        if p.base != current:
            raise GovernanceError(f"proposal {p.id} was made for manifest {p.base}, but the world now runs {current}: "
                                  "propose the change again on the current manifest")

    def record(self, rec: GovernanceRecord, seq: int) -> None:
        """Take a checked record into the state."""
        b = rec.body
        if rec.op == "propose":
            self.proposals[rec.proposal] = Proposal(
                rec.proposal, b["base"], b["manifest"], b["address"], tuple(b.get("summary") or ()),
                str(b.get("by", "")), str(b.get("reason", "")), seq)
            self.next += 1
        elif rec.op == "shadow":
            p = self.proposals[rec.proposal]
            p.status = "shadowed"
            p.shadow = {k: b.get(k) for k in ("report", "ok", "problems", "events", "base")}
        elif rec.op in ("approve", "reject"):
            p = self.proposals[rec.proposal]
            p.status = "approved" if rec.op == "approve" else "rejected"
            p.decided_by, p.decision = str(b.get("by", "")), str(b.get("reason", ""))
        else:  # apply, rollback
            if rec.op == "apply":
                self.proposals[rec.proposal].status = "applied"
            self.history.append(Change(rec.op, rec.proposal, b["prev"], b["manifest"], b["prev_address"],
                                       b["address"], seq, str(b.get("by", ""))))
            del self.history[:-MAX_HISTORY]
        self._prune()

    def _prune(self) -> None:
        decided = [p for p in sorted(self.proposals.values(), key=lambda p: _number(p.id))
                   if p.status in ("applied", "rejected")]
        for p in decided[:-KEEP_DECIDED]:
            del self.proposals[p.id]

    def to_value(self) -> dict[str, Any]:
        return {"next": self.next,
                "proposals": [self.proposals[k].to_value() for k in sorted(self.proposals, key=_number)],
                "history": [c.to_value() for c in self.history]}

    @classmethod
    def from_value(cls, v: Any) -> GovernanceState:
        return cls({p["id"]: Proposal.from_value(p) for p in v["proposals"]},
                   [Change.from_value(c) for c in v["history"]], v["next"])


def _number(proposal_id: str) -> int:
    digits = proposal_id[1:]
    return int(digits) if digits.isdigit() else 0


# --- shadow runs -------------------------------------------------------------------------------------------


def shadow(world: World, patched: Manifest, patched_runtimes: Mapping[str, WorkflowRuntime],
           baseline_runtimes: Mapping[str, WorkflowRuntime], events: Sequence[EventRecord]) -> dict[str, Any]:
    """Run ``patched`` on a fork of ``world``'s current state against ``events``,
    beside an unpatched fork fed the same events, and report the difference.

    The live ``world`` is not touched (both forks restore from its snapshot
    bytes); the runtimes should be fresh instances, so a module's instance
    memory is not shared with the live world. ``report["ok"]`` is false when
    the patch breaks something (``report["problems"]``)."""
    from aos.kernel.world.stepper import World

    snap = world.snapshot()
    base = World.restore(world.manifest, baseline_runtimes, world.world_id, snap)
    trial = World.restore(world.manifest, baseline_runtimes, world.world_id, snap)
    diff = diff_manifests(world.manifest, patched)
    problems: list[dict[str, Any]] = [{"kind": "migration", "message": m} for m in trial.manifest_problems(patched)]
    report: dict[str, Any] = {
        "base": world.manifest_hash, "manifest": patched.hash, "events": 0, "skipped": 0,
        "diff": diff.to_value(), "grants": grant_changes(diff, world.manifest, patched),
        "problems": problems, "state_changes": [], "effects": [], "dropped_cells": [], "truncated": False,
    }
    if problems:
        return _finish(report)
    report["dropped_cells"] = [{"workflow": w, "key": k} for w, k, _ in trial.adopt(patched, patched_runtimes)]
    for ev in events:
        old_bad = base.check_event(ev.schema, ev.value)
        new_bad = trial.check_event(ev.schema, ev.value)
        if old_bad is not None and new_bad is not None:
            report["skipped"] += 1  # neither manifest takes it: nothing to compare
            continue
        report["events"] += 1
        if new_bad is not None:
            problems.append({"kind": "refused_event", "schema": ev.schema, "code": new_bad.code,
                             "message": str(new_bad)})
            base.apply(ev)
            continue
        before = base.apply(ev) if old_bad is None else None
        after = trial.apply(ev)
        _compare_step(ev, before, after, report)
    report["state_changes"] = _state_changes(base, trial)
    return _finish(report)


def _compare_step(ev: EventRecord, before: Any, after: Any, report: dict[str, Any]) -> None:
    old_records = before.records if before is not None else ()
    old_traps = {(r.origin.workflow, cbor.encode(r.origin.key), r.code) for r in old_records
                 if isinstance(r, TrapRecord)}
    old_refused = {(r.origin.workflow, r.effect, cbor.encode(r.params)) for r in old_records
                   if isinstance(r, EffectRejectedRecord)}
    old_intents = {(r.origin.workflow, r.effect, cbor.encode(r.params)) for r in old_records
                   if isinstance(r, EffectIntentRecord)}
    if after.status == "rejected":
        report["problems"].append({"kind": "rejected", "schema": ev.schema, "code": after.error.code,
                                   "message": after.error.message})
        return
    for r in after.records:
        if isinstance(r, TrapRecord) and (r.origin.workflow, cbor.encode(r.origin.key), r.code) not in old_traps:
            kind = "schema_violation" if r.code == "SchemaViolation" else "trap"
            report["problems"].append({"kind": kind, "schema": ev.schema, "workflow": r.origin.workflow,
                                       "key": _show(r.origin.key), "code": r.code, "message": r.message})
        elif isinstance(r, EffectRejectedRecord) and (r.origin.workflow, r.effect, cbor.encode(r.params)) \
                not in old_refused:
            report["problems"].append({"kind": "refused_effect", "schema": ev.schema, "workflow": r.origin.workflow,
                                       "effect": r.effect, "code": r.code, "message": r.reason})
        elif isinstance(r, EffectIntentRecord):
            report["effects"].append({
                "workflow": r.origin.workflow, "key": _show(r.origin.key), "effect": r.effect, "grant": r.grant,
                "params": _show(r.params),
                "new": (r.origin.workflow, r.effect, cbor.encode(r.params)) not in old_intents})


def _state_changes(base: World, trial: World) -> list[dict[str, Any]]:
    out = []
    for wf in sorted(set(base.manifest.workflows) | set(trial.manifest.workflows)):
        keys: dict[bytes, Any] = {}
        for w in (base, trial):
            if wf in w.manifest.workflows:
                for k in w.cell_keys(wf):
                    keys.setdefault(cbor.encode(k), k)
        for kb in sorted(keys):
            k = keys[kb]
            b = base.state_bytes(wf, k) if wf in base.manifest.workflows else None
            t = trial.state_bytes(wf, k) if wf in trial.manifest.workflows else None
            if b != t:
                out.append({"workflow": wf, "key": _show(k),
                            "before": None if b is None else _show(cbor.decode_trusted(b)),
                            "after": None if t is None else _show(cbor.decode_trusted(t))})
    return out


def _finish(report: dict[str, Any]) -> dict[str, Any]:
    for name in ("problems", "state_changes", "effects", "dropped_cells"):
        if len(report[name]) > REPORT_ITEMS:
            report["truncated"] = True
            report[f"{name}_total"] = len(report[name])
            report[name] = report[name][:REPORT_ITEMS]
    report["ok"] = not report["problems"]
    return report


def _show(value: Any) -> Any:
    """A value for a report: itself, or its hash and size when it is large."""
    encoded = cbor.encode(value)
    if len(encoded) <= REPORT_VALUE_BYTES:
        return value
    return {"$hash": cbor.sha256_text(encoded), "size": len(encoded)}

"""World manifests: the readable JSON form, frozen definitions, canonical hashes.

How it works: ``parse_manifest(json_value)`` walks the JSON once, keeping a
path string (``$.workflows.demo/counter@1.effects[0]``) so that every
``ManifestError`` names the bad field, builds frozen definitions, then checks
cross references (schemas, modules, effects, routing, grants). Each definition
has a canonical CBOR form with a ``$kind`` (as AIR does) and hashes to
``sha256:`` of it; the manifest's own canonical form lists definitions by
``{name, hash}``, so changing any definition changes the manifest hash.

A module entry may carry ``path`` (where a loader finds the ``.wasm`` file);
it is a location hint, not identity, so it is not part of the hash: the
artifact ``hash`` is.
"""

from __future__ import annotations

import functools

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aos.kernel.world import schema as types
from aos.kernel.world.builtins import check_effect_declaration
from aos.kernel.world.cbor import hash_value, is_hash_text
from aos.kernel.world.errors import ManifestError, SchemaViolation

MANIFEST_VERSION = 1
RUNTIMES = ("wasm", "python")
# Capability kinds a grant can carry, with the parameters each accepts
# (validated with the type language itself).
GRANT_PARAMS: dict[str, Any] = {
    # (the adapters in adapters/ read the same fields; docs/adapters.md lists them)
    "host.fs": {"record": {"root": "text", "read_only": {"option": "bool"}, "max_read_bytes": {"option": "nat"},
                           "max_write_bytes": {"option": "nat"}}},
    # allow_env: the variable names (or NAME* prefixes) a world may set in a command's env;
    # loader and startup variables (LD_*, PYTHON*, ...) are refused whatever it says (adapters/exec_env.py)
    "host.exec": {"record": {"cwd": "text", "commands": {"option": {"list": "text"}}, "shell": {"option": "bool"},
                             "inherit_env": {"option": {"list": "text"}}, "allow_env": {"option": {"list": "text"}},
                             "max_timeout_s": {"option": "nat"}, "max_output_bytes": {"option": "nat"}}},
    "http": {"record": {"hosts": {"list": "text"}, "methods": {"option": {"list": "text"}},
                        "max_timeout_s": {"option": "nat"}, "max_body_bytes": {"option": "nat"}}},
    "llm": {
        "record": {
            "providers": {"list": "text"},
            "budget": {"option": {"record": {"max_tokens": {"option": "nat"}}}},
        }
    },
    "timer": {"record": {}},
    "cancel": {"record": {}},
    "blob": {"record": {}},
    "portal": {"record": {"worlds": {"option": {"list": "text"}}}},
    # governance of worlds (docs/demiurge.md): the operations allowed, on which worlds ("." = this one,
    # "*" = any of its universe), and the grant kinds a patch through it may add, change or drop (default none)
    "governance": {"record": {"worlds": {"list": "text"},
                              "ops": {"list": {"enum": ["propose", "shadow", "approve", "reject", "apply", "rollback",
                                                        "history"]}},
                              "grant_kinds": {"option": {"list": "text"}}}},
    # reading worlds: manifest, history, state, journal, effects in flight, grants, stats (default: any world)
    "inspect": {"record": {"worlds": {"option": {"list": "text"}}}},
    # making worlds and sending them events; the grant kinds a world made through it may carry
    # (default timer, blob, cancel: never governance or universe)
    "universe": {"record": {"ops": {"list": {"enum": ["create", "send", "list"]}},
                            "worlds": {"option": {"list": "text"}}, "grant_kinds": {"option": {"list": "text"}}}},
    "workspace": {"record": {"workspaces": {"option": {"list": "text"}}, "read_only": {"option": "bool"},
                             "max_file_bytes": {"option": "nat"}, "max_files": {"option": "nat"}}},
    "compile": {"record": {"languages": {"option": {"list": {"enum": ["c", "wat"]}}}, "timeout_s": {"option": "nat"},
                           "memory_mb": {"option": "nat"}, "max_source_bytes": {"option": "nat"},
                           "max_output_bytes": {"option": "nat"}}},
    # origins: scheme://host[:port] the world's browser may reach (adapters/browser_origins.py)
    "browser": {"record": {"origins": {"list": "text"}, "max_timeout_s": {"option": "nat"}}},
}


@dataclass(frozen=True)
class SchemaDef:
    name: str
    type: Any

    def canonical(self) -> dict[str, Any]:
        return {"$kind": "defschema", "name": self.name, "type": self.type}


@dataclass(frozen=True)
class ModuleDef:
    name: str
    runtime: str
    # wasm: sha256 of the module bytes; python: None (the import is identity)
    artifact_hash: str | None = None
    # python: importable module path, e.g. "aos.kernel.world.examples.counter"
    python_module: str | None = None
    path: str | None = field(default=None, compare=False)

    def canonical(self) -> dict[str, Any]:
        d: dict[str, Any] = {"$kind": "defmodule", "name": self.name, "runtime": self.runtime}
        if self.artifact_hash is not None:
            d["hash"] = self.artifact_hash
        if self.python_module is not None:
            d["python_module"] = self.python_module
        return d


@dataclass(frozen=True)
class WorkflowDef:
    name: str
    module: str
    entry: str
    state: str
    event: str
    effects: tuple[str, ...] = ()
    key: str | None = None  # key schema; set means keyed (one cell per key)

    def canonical(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "$kind": "defworkflow",
            "name": self.name,
            "module": self.module,
            "entry": self.entry,
            "state": self.state,
            "event": self.event,
            "effects": list(self.effects),
        }
        if self.key is not None:
            d["key"] = self.key
        return d


@dataclass(frozen=True)
class EffectDef:
    name: str
    params: str
    receipt: str
    cap: str  # which grant kind covers it
    writes: bool = False  # refused under a read-only host.fs grant

    def canonical(self) -> dict[str, Any]:
        return {
            "$kind": "defeffect",
            "name": self.name,
            "params": self.params,
            "receipt": self.receipt,
            "cap": self.cap,
            "writes": self.writes,
        }


@dataclass(frozen=True)
class GrantDef:
    name: str
    cap: str
    params: Any
    workflows: tuple[str, ...] | None = None  # None: any workflow may use it

    def canonical(self) -> dict[str, Any]:
        d: dict[str, Any] = {"$kind": "grant", "name": self.name, "cap": self.cap, "params": self.params}
        if self.workflows is not None:
            d["workflows"] = list(self.workflows)
        return d


@dataclass(frozen=True)
class Route:
    event: str
    workflow: str
    key_field: str | None = None

    def canonical(self) -> dict[str, Any]:
        d: dict[str, Any] = {"event": self.event, "workflow": self.workflow}
        if self.key_field is not None:
            d["key_field"] = self.key_field
        return d


Def = SchemaDef | ModuleDef | WorkflowDef | EffectDef | GrantDef


def def_hash(d: Def) -> str:
    """``sha256:`` of the definition's canonical CBOR."""
    return hash_value(d.canonical())


@dataclass(frozen=True)
class Manifest:
    schemas: Mapping[str, SchemaDef]
    modules: Mapping[str, ModuleDef]
    workflows: Mapping[str, WorkflowDef]
    effects: Mapping[str, EffectDef]
    grants: Mapping[str, GrantDef]
    routing: tuple[Route, ...]
    secrets: tuple[str, ...] = ()
    version: int = MANIFEST_VERSION

    def canonical(self) -> dict[str, Any]:
        def refs(defs: Mapping[str, Def]) -> list[dict[str, str]]:
            return [{"name": n, "hash": def_hash(defs[n])} for n in sorted(defs)]

        return {
            "$kind": "manifest",
            "version": self.version,
            "schemas": refs(self.schemas),
            "modules": refs(self.modules),
            "workflows": refs(self.workflows),
            "effects": refs(self.effects),
            "grants": refs(self.grants),
            "secrets": sorted(self.secrets),
            "routing": [r.canonical() for r in self.routing],
        }

    @functools.cached_property
    def hash(self) -> str:
        # a manifest is immutable; hashing it walks every definition, so do it once
        return hash_value(self.canonical())

    def schema_types(self) -> dict[str, Any]:
        return {n: s.type for n, s in self.schemas.items()}

    def routes_for(self, event_schema: str) -> list[Route]:
        """Subscriptions for an event schema, in manifest order (fan-out)."""
        return [r for r in self.routing if r.event == event_schema]


# --- parsing -------------------------------------------------------------------------------------


def load_manifest_json(text: str) -> Manifest:
    """Parse the readable JSON text of a manifest. Raises ``ManifestError``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError("$", f"not JSON: {exc}") from exc
    return parse_manifest(doc)


def parse_manifest(doc: Any) -> Manifest:
    """Build and cross-check a ``Manifest`` from its JSON value.

    Raises ``ManifestError`` whose ``path`` names the first bad field."""
    # definitions keep parts of the JSON (types, grant params): detach them from the caller's
    doc = copy.deepcopy(doc)
    _obj(doc, "$")
    _keys(doc, "$", required={"version"}, optional={
        "name", "schemas", "modules", "workflows", "effects", "grants", "routing", "secrets"})
    if doc["version"] != MANIFEST_VERSION:
        raise ManifestError("$.version", f"unsupported version {doc['version']!r}")
    schemas = {n: _schema(n, v, f"$.schemas.{n}") for n, v in _named(doc, "schemas")}
    modules = {n: _module(n, v, f"$.modules.{n}") for n, v in _named(doc, "modules")}
    workflows = {n: _workflow(n, v, f"$.workflows.{n}") for n, v in _named(doc, "workflows")}
    effects = {n: _effect(n, v, f"$.effects.{n}") for n, v in _named(doc, "effects")}
    grants = {n: _grant(n, v, f"$.grants.{n}") for n, v in _named(doc, "grants")}
    routing = tuple(_route(r, f"$.routing[{i}]") for i, r in enumerate(_list(doc, "routing")))
    secrets = tuple(_text(s, f"$.secrets[{i}]") for i, s in enumerate(_list(doc, "secrets")))
    if len(set(secrets)) != len(secrets):
        raise ManifestError("$.secrets", "duplicate secret name")
    m = Manifest(schemas, modules, workflows, effects, grants, routing, secrets)
    _cross_check(m)
    return m


def _cross_check(m: Manifest) -> None:
    for n, s in m.schemas.items():
        try:
            types.check_type(s.type, f"$.schemas.{n}", m.schemas)
        except SchemaViolation as exc:
            raise ManifestError(exc.path, exc.message) from exc
    _no_ref_cycles(m)

    def need_schema(name: str, path: str) -> None:
        if name not in m.schemas:
            raise ManifestError(path, f"unknown schema {name!r} ({known_list('schemas', m.schemas)})")

    for n, w in m.workflows.items():
        p = f"$.workflows.{n}"
        if w.module not in m.modules:
            raise ManifestError(f"{p}.module", f"unknown module {w.module!r}")
        need_schema(w.state, f"{p}.state")
        need_schema(w.event, f"{p}.event")
        if w.key is not None:
            need_schema(w.key, f"{p}.key")
        for i, e in enumerate(w.effects):
            if e not in m.effects:
                raise ManifestError(f"{p}.effects[{i}]", f"unknown effect {e!r}")
    for n, ed in m.effects.items():
        p = f"$.effects.{n}"
        need_schema(ed.params, f"{p}.params")
        need_schema(ed.receipt, f"{p}.receipt")
    for n, g in m.grants.items():
        for i, gw in enumerate(g.workflows or ()):
            if gw not in m.workflows:
                raise ManifestError(f"$.grants.{n}.workflows[{i}]", f"unknown workflow {gw!r}")
    seen: set[tuple[str, str]] = set()
    for i, r in enumerate(m.routing):
        p = f"$.routing[{i}]"
        if (r.event, r.workflow) in seen:
            raise ManifestError(p, "duplicate subscription (the workflow would get each event twice)")
        seen.add((r.event, r.workflow))
        need_schema(r.event, f"{p}.event")
        target = m.workflows.get(r.workflow)
        if target is None:
            raise ManifestError(f"{p}.workflow", f"unknown workflow {r.workflow!r}")
        if r.event != target.event:
            raise ManifestError(f"{p}.event", f"workflow {target.name!r} takes {target.event!r}")
        if (r.key_field is None) != (target.key is None):
            raise ManifestError(f"{p}.key_field", "key_field is required exactly when the workflow is keyed")
        if r.key_field is not None:
            _check_key_field(m, r, f"{p}.key_field")


def _check_key_field(m: Manifest, r: Route, path: str) -> None:
    """A key_field names a field of the event (dotted through nested records), so a typo fails at
    create rather than on every event; past a part that is not a record, only events can tell."""
    t: Any = m.schemas[r.event].type
    for part in (r.key_field or "").split("."):
        while isinstance(t, dict) and ("ref" in t or "option" in t):
            t = m.schemas[t["ref"]].type if "ref" in t else t["option"]
        if not (isinstance(t, dict) and "record" in t):
            return
        fields = t["record"]
        if part not in fields:
            raise ManifestError(path, f"{r.event} has no field {part!r} ({known_list('fields', fields)})")
        t = fields[part]


def known_list(what: str, names: Any, most: int = 12) -> str:
    """``known schemas: a, b, ...`` for an error message (at most ``most`` names)."""
    ordered = sorted(names)
    shown = ", ".join(ordered[:most]) + (f", ... ({len(ordered)} in all)" if len(ordered) > most else "")
    return f"known {what}: {shown}" if ordered else f"no {what} declared"


def _no_ref_cycles(m: Manifest) -> None:
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(n: str, trail: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise ManifestError(f"$.schemas.{n}", "recursive schema: " + " -> ".join([*trail, n]))
        state[n] = 1
        for r in sorted(types.refs_of(m.schemas[n].type)):
            visit(r, [*trail, n])
        state[n] = 2

    for n in m.schemas:
        visit(n, [])


def _schema(name: str, v: Any, path: str) -> SchemaDef:
    try:
        types.check_type(v, path)
    except SchemaViolation as exc:
        raise ManifestError(exc.path, exc.message) from exc
    return SchemaDef(name, v)


def _module(name: str, v: Any, path: str) -> ModuleDef:
    _obj(v, path)
    _keys(v, path, required={"runtime"}, optional={"hash", "path", "python_module"})
    rt = v["runtime"]
    if rt not in RUNTIMES:
        raise ManifestError(f"{path}.runtime", f"must be one of {list(RUNTIMES)}")
    if rt == "wasm":
        h = v.get("hash")
        if not is_hash_text(h):
            raise ManifestError(f"{path}.hash", "a wasm module needs its artifact hash sha256:<64 hex>")
        if "python_module" in v:
            raise ManifestError(f"{path}.python_module", "only for python modules")
        p = _text(v["path"], f"{path}.path") if "path" in v else None
        return ModuleDef(name, rt, artifact_hash=h, path=p)
    if "hash" in v or "path" in v:
        raise ManifestError(path, "a python module has python_module, not hash/path")
    return ModuleDef(name, rt, python_module=_text(v.get("python_module"), f"{path}.python_module"))


def _workflow(name: str, v: Any, path: str) -> WorkflowDef:
    _obj(v, path)
    _keys(v, path, required={"module", "state", "event"}, optional={"entry", "effects", "key"})
    effects = v.get("effects", [])
    if not isinstance(effects, list):
        raise ManifestError(f"{path}.effects", "must be a list of effect names")
    eff = tuple(_text(e, f"{path}.effects[{i}]") for i, e in enumerate(effects))
    if len(set(eff)) != len(eff):
        raise ManifestError(f"{path}.effects", "duplicate effect")
    return WorkflowDef(
        name=name,
        module=_text(v["module"], f"{path}.module"),
        entry=_text(v.get("entry", "step"), f"{path}.entry"),
        state=_text(v["state"], f"{path}.state"),
        event=_text(v["event"], f"{path}.event"),
        effects=eff,
        key=_text(v["key"], f"{path}.key") if "key" in v else None,
    )


def _effect(name: str, v: Any, path: str) -> EffectDef:
    _obj(v, path)
    _keys(v, path, required={"params", "receipt", "cap"}, optional={"writes"})
    cap = v["cap"]
    if cap not in GRANT_PARAMS:
        raise ManifestError(f"{path}.cap", f"unknown capability kind {cap!r}; one of {sorted(GRANT_PARAMS)}")
    writes = v.get("writes")
    if writes is not None and not isinstance(writes, bool):
        raise ManifestError(f"{path}.writes", "must be true or false")
    writes = check_effect_declaration(name, cap, writes, path)
    return EffectDef(name, _text(v["params"], f"{path}.params"), _text(v["receipt"], f"{path}.receipt"), cap, writes)


def _grant(name: str, v: Any, path: str) -> GrantDef:
    _obj(v, path)
    _keys(v, path, required={"cap"}, optional={"params", "workflows"})
    cap = v["cap"]
    if cap not in GRANT_PARAMS:
        raise ManifestError(f"{path}.cap", f"unknown capability kind {cap!r}; one of {sorted(GRANT_PARAMS)}")
    params = v.get("params", {})
    try:
        types.validate(params, GRANT_PARAMS[cap], {}, f"{path}.params")
    except SchemaViolation as exc:
        raise ManifestError(exc.path, exc.message) from exc
    if cap == "browser":  # an entry that is no origin would refuse every navigation: say so at create
        from aos.adapters.browser_origins import OriginError, Origins

        try:
            Origins.parse(list(params["origins"]))
        except OriginError as exc:
            raise ManifestError(f"{path}.params.origins", str(exc)) from exc
    wfs = v.get("workflows")
    if wfs is not None:
        if not isinstance(wfs, list):
            raise ManifestError(f"{path}.workflows", "must be a list of workflow names")
        wfs = tuple(_text(w, f"{path}.workflows[{i}]") for i, w in enumerate(wfs))
    return GrantDef(name, cap, params, wfs)


def _route(v: Any, path: str) -> Route:
    _obj(v, path)
    _keys(v, path, required={"event", "workflow"}, optional={"key_field"})
    kf = _text(v["key_field"], f"{path}.key_field") if "key_field" in v else None
    return Route(_text(v["event"], f"{path}.event"), _text(v["workflow"], f"{path}.workflow"), kf)


# --- small helpers -------------------------------------------------------------------------------


def _obj(v: Any, path: str) -> None:
    if not isinstance(v, dict):
        raise ManifestError(path, f"expected an object, got {type(v).__name__}")


def _keys(v: dict[str, Any], path: str, required: set[str], optional: set[str]) -> None:
    for k in v:
        if k not in required and k not in optional:
            raise ManifestError(f"{path}.{k}", "unknown field")
    for k in sorted(required):
        if k not in v:
            raise ManifestError(f"{path}.{k}", "missing field")


def _text(v: Any, path: str) -> str:
    if not isinstance(v, str) or not v:
        raise ManifestError(path, "expected non-empty text")
    return v


def _named(doc: dict[str, Any], key: str) -> list[tuple[str, Any]]:
    v = doc.get(key, {})
    if not isinstance(v, dict):
        raise ManifestError(f"$.{key}", "expected an object keyed by name")
    for n in v:
        if not n or any(c.isspace() for c in n):
            raise ManifestError(f"$.{key}.{n}", "names are non-empty text without spaces")
    return list(v.items())


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    v = doc.get(key, [])
    if not isinstance(v, list):
        raise ManifestError(f"$.{key}", "expected a list")
    return v

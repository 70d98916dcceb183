"""The kernel's effects on its own worlds and stores, for workflows and agents (the Demiurge).

- ``governance.<op>`` (grant ``governance``): the steps of ``kernel/host/governance.py``
  on a world the grant names (``"."`` or ``""`` is the emitting world itself);
- ``world.inspect`` (grant ``inspect``): read a world: overview, manifest,
  history, cells, state, journal (search with RE2), effects in flight, grants, stats;
- ``universe.create``/``send``/``list`` (grant ``universe``): make worlds whose
  grants are of the kinds the grant allows (never ``governance`` or ``universe``)
  and send them events;
- ``workspace.<op>`` (grant ``workspace``): versioned source trees in CAS
  (``kernel/world/workspace.py``); a workspace's ref (head commit and working tree)
  is journaled, one raw journal per workspace under ``<universe>/workspaces``, a
  name no client can pass;
- ``module.compile`` (grant ``compile``): sources from CAS or from a workspace the
  world also holds a grant for, compiled by ``adapters/compile.py``; the module
  goes into CAS and its hash into the receipt.

Admission already checked the grant (``kernel/world/grants.py``); each handler
checks it again with real world ids. Receipts carry ``output``: the text an
agent's tool shows (JSON for structured answers).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aos.adapters.base import EffectCall, Receipt
from aos.errors import AosError, InvalidArgument, PermissionDenied
from aos.kernel.host import jsonvalue
from aos.kernel.host.governance import governance_of
from aos.kernel.host.registry import journal_universe
from aos.kernel.names import check_name
from aos.kernel.world import cbor
from aos.kernel.world import workspace as ws
from aos.kernel.world.governance import PROTECTED_GRANT_KINDS
from aos.kernel.world.records import TrapRecord, decode_record

if TYPE_CHECKING:
    from aos.kernel.host.driver import WorldDriver
    from aos.kernel.host.effects import EffectDispatcher
    from aos.kernel.host.host import WorldHost
    from aos.kernel.world.manifest import GrantDef
    from aos.kernel.world.records import EffectIntentRecord as Intent

MAX_OUTPUT_CHARS = 48 * 1024  # of a receipt's ``output`` text
SEARCH_SCAN = 5000  # journal records a search looks back through
DEFAULT_CREATE_KINDS = ("timer", "blob", "cancel")  # grant kinds a world made by universe.create may carry
WORKSPACE_EPOCH = 1


@dataclass(frozen=True)
class _Call:
    dispatcher: EffectDispatcher
    driver: WorldDriver
    intent: Intent
    op: str
    params: Mapping[str, Any]
    grant: GrantDef

    @property
    def host(self) -> WorldHost:
        return self.driver.host

    @property
    def universe(self) -> str:
        return self.driver.universe

    @property
    def grant_params(self) -> Mapping[str, Any]:
        return self.grant.params if isinstance(self.grant.params, dict) else {}

    def target(self, field: str = "world") -> str:
        value = self.params.get(field)
        if value in (None, "", "."):
            return self.driver.world_id
        if not isinstance(value, str):
            raise InvalidArgument(f"{field}: a world id")
        return check_name(value, "world id")

    def check_world(self, world_id: str, allowed: Any, what: str) -> None:
        if allowed is None or "*" in allowed or world_id in allowed \
                or (world_id == self.driver.world_id and "." in allowed):
            return
        raise PermissionDenied(f"grant {self.grant.name!r} does not allow {what} world {world_id!r}")

    @property
    def by(self) -> str:
        return f"world {self.driver.world_id} (grant {self.grant.name})"


async def run_system_effect(dispatcher: EffectDispatcher, driver: WorldDriver, intent: Intent, kind: str,
                            params: Mapping[str, Any], grant: GrantDef) -> Receipt:
    """Run one admitted governance/world/universe/workspace/module effect; every failure is a receipt."""
    family, op = kind.split(".", 1)
    call = _Call(dispatcher, driver, intent, op, params, grant)
    try:
        return await _HANDLERS[family](call)
    except AosError as exc:
        return Receipt.fail(exc.code, str(exc))
    except (KeyError, TypeError, ValueError) as exc:  # params a declaration of "any" let through
        return Receipt.fail("invalid_params", f"{kind}: {type(exc).__name__}: {exc}")


def _out(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(jsonvalue.to_jsonable(value), indent=1, sort_keys=True)
    return text if len(text) <= MAX_OUTPUT_CHARS else text[:MAX_OUTPUT_CHARS] + "\n[output cut]"


def _json_param(value: Any, what: str) -> Any:
    """A value the model may give as JSON text or as the value itself."""
    return jsonvalue.loads(value, what) if isinstance(value, str) else value


# --- governance ---------------------------------------------------------------------------------------


async def _governance(c: _Call) -> Receipt:
    g = c.grant_params
    if c.op not in g.get("ops", ()):
        raise PermissionDenied(f"grant {c.grant.name!r} does not allow governance operation {c.op!r}")
    world_id = c.target()
    c.check_world(world_id, g.get("worlds"), "governing")
    gov = governance_of(c.host)
    u, p = c.universe, c.params
    if c.op == "propose":
        result = await gov.propose(u, world_id, _json_param(p.get("patch"), "patch"), c.by, str(p.get("reason") or ""),
                                   grant_kinds=g.get("grant_kinds") or ())
        return Receipt.ok(proposal=result["proposal"], manifest=result["manifest"], output=_out(result))
    if c.op == "shadow":
        events = None
        if p.get("events") is not None:
            raw = _json_param(p["events"], "events")
            if not isinstance(raw, list) or not all(isinstance(e, dict) and "schema" in e for e in raw):
                raise InvalidArgument("events: a list of {schema, value}")
            events = [(str(e["schema"]), e.get("value")) for e in raw]
        report = await gov.shadow(u, world_id, str(p.get("proposal")), events, int(p.get("sample") or 20))
        return Receipt.ok(proposal=report["proposal"], ok=report["ok"], output=_out(report))
    if c.op in ("approve", "reject"):
        result = await gov.decide(u, world_id, str(p.get("proposal")), c.op == "approve", c.by,
                                  str(p.get("reason") or ""))
        return Receipt.ok(output=_out(result), **result)
    if c.op == "apply":
        result = await gov.apply(u, world_id, str(p.get("proposal")), c.by)
        return Receipt.ok(manifest=result["manifest"], output=_out(result))
    if c.op == "rollback":
        result = await gov.rollback(u, world_id, str(p.get("to") or "previous"), c.by, str(p.get("reason") or ""))
        return Receipt.ok(manifest=result["manifest"], output=_out(result))
    return Receipt.ok(output=_out(await gov.history(u, world_id)))


# --- reading worlds -------------------------------------------------------------------------------------


async def _inspect(c: _Call) -> Receipt:
    world_id = c.target()
    c.check_world(world_id, c.grant_params.get("worlds"), "reading")
    what = c.params.get("what") or "overview"
    reader = _READERS.get(what)
    if reader is None:
        raise InvalidArgument(f"what: one of {sorted(_READERS)}, not {what!r}")
    return Receipt.ok(output=_out(await reader(c, world_id)))


async def _overview(c: _Call, world_id: str) -> dict[str, Any]:
    host = c.host
    driver = await host.driver(c.universe, world_id)
    w, m = driver.world, driver.world.manifest
    status = host.status_of(host.meta(c.universe, world_id))
    gov = w.governance
    return {
        "world": world_id, "name": status.meta.name, "state": status.state, "manifest": w.manifest_hash,
        "journal_height": status.journal_height, "inputs_applied": w.seq,
        "workflows": [{"name": n, "keyed": wf.key is not None, "module": wf.module, "event": wf.event,
                       "state": wf.state, "effects": list(wf.effects), "cells": len(w.cell_keys(n))}
                      for n, wf in sorted(m.workflows.items())],
        "modules": {n: {"runtime": d.runtime, **({"hash": d.artifact_hash} if d.artifact_hash else {}),
                        **({"python_module": d.python_module} if d.python_module else {})}
                    for n, d in sorted(m.modules.items())},
        "schemas": sorted(m.schemas), "effects": sorted(m.effects),
        "routing": [r.canonical() for r in m.routing],
        "grants": [{"name": n, "cap": cap, "active": active}
                   for n, cap, _, active in host.grants(c.universe, world_id)],
        "governance": {"proposals": {s: sum(1 for p in gov.proposals.values() if p.status == s)
                                     for s in ("proposed", "shadowed", "approved", "rejected", "applied")},
                       "changes": len(gov.history)},
        "effects_in_flight": len(w.open_intents()),
        "stats": {"inputs": driver.stats.inputs, "traps": driver.stats.traps,
                  "rejected_effects": driver.stats.rejected_effects},
        "recent_traps": list(driver.stats.recent_traps),
    }


async def _manifest(c: _Call, world_id: str) -> dict[str, Any]:
    found = await governance_of(c.host).manifest(c.universe, world_id)
    section, name = c.params.get("section"), c.params.get("name")
    if section:
        doc = found["manifest"]
        part = doc.get(section)
        if part is None:
            raise InvalidArgument(f"section: one of {sorted(k for k in doc if k != 'version')}")
        if name:
            if not isinstance(part, dict) or name not in part:
                raise InvalidArgument(f"no {section} {name!r} (there are: {', '.join(sorted(part)[:40])})")
            part = {name: part[name]}
        return {"hash": found["hash"], section: part}
    return found


async def _history(c: _Call, world_id: str) -> dict[str, Any]:
    return await governance_of(c.host).history(c.universe, world_id)


async def _cells(c: _Call, world_id: str) -> dict[str, Any]:
    driver = await c.host.driver(c.universe, world_id)
    workflow = _workflow(driver, c.params.get("workflow"))
    return {"workflow": workflow, "keys": driver.world.cell_keys(workflow)}


async def _state(c: _Call, world_id: str) -> dict[str, Any]:
    driver = await c.host.driver(c.universe, world_id)
    workflow = _workflow(driver, c.params.get("workflow"))
    key = c.params.get("key")
    if isinstance(key, str) and driver.world.manifest.workflows[workflow].key is not None:
        try:  # the model may give the key as JSON text or as the key itself
            decoded = json.loads(key)
            key = decoded if not isinstance(decoded, (dict, list)) or decoded else key
        except ValueError:
            pass
    if driver.world.manifest.workflows[workflow].key is None:
        key = None
    return {"workflow": workflow, "key": key, "state": driver.world.state(workflow, key)}


def _workflow(driver: WorldDriver, name: Any) -> str:
    workflows = driver.world.manifest.workflows
    if name not in workflows:
        raise InvalidArgument(f"no workflow {name!r} in world {driver.world_id} (its workflows: "
                              f"{', '.join(sorted(workflows))})")
    return str(name)


async def _journal(c: _Call, world_id: str) -> dict[str, Any]:
    from aos.agents.tools.errors import ToolError
    from aos.agents.tools.regex import compile_untrusted

    await c.host.driver(c.universe, world_id)
    journal, ju = c.host.services.journal, journal_universe(c.universe)
    end = journal.head(ju, world_id).durable
    limit = max(1, min(int(c.params.get("limit") or 20), 100))
    pattern, kinds = c.params.get("pattern"), c.params.get("kinds")
    if pattern is None and not kinds:  # a page: from `from`, or the last `limit`
        start = c.params.get("from")
        start = max(0, end - limit) if start is None else int(start)
        raws, _ = journal.read(ju, world_id, start, limit)
        return {"from": start, "end": end, "records": [_record_json(start + i, r) for i, r in enumerate(raws)]}
    try:
        program = compile_untrusted(str(pattern or ""), case_insensitive=True) if pattern else None
    except ToolError as exc:
        raise InvalidArgument(str(exc)) from None
    start = max(0, end - SEARCH_SCAN)
    matches: list[dict[str, Any]] = []
    at = start
    while at < end:
        raws, end = journal.read(ju, world_id, at, 1024)
        for i, raw in enumerate(raws):
            record = _record_json(at + i, raw)
            if kinds and record["kind"] not in kinds:
                continue
            if program is None or program.search(json.dumps(jsonvalue.to_jsonable(record), sort_keys=True)):
                matches.append(record)
        at += len(raws)
        if not raws:
            break
    return {"searched": [start, end], "pattern": pattern, "kinds": kinds, "matches": len(matches),
            "records": matches[-limit:]}


def _record_json(at: int, raw: bytes) -> dict[str, Any]:
    value = decode_record(raw).to_value()
    value["at"] = at
    return value


async def _intents(c: _Call, world_id: str) -> dict[str, Any]:
    driver = await c.host.driver(c.universe, world_id)
    return {"in_flight": [{"intent_hash": i.intent_hash, "effect": i.effect, "grant": i.grant,
                           "origin": i.origin.to_value(), "emitted_at_seq": i.emitted_at_seq,
                           "effect_index": i.effect_index, "running": i.intent_hash in driver._effects}
                          for i in driver.world.open_intents()]}


async def _grants(c: _Call, world_id: str) -> dict[str, Any]:
    await c.host.driver(c.universe, world_id)
    return {"grants": [{"name": n, "cap": cap, "params": p, "active": a}
                       for n, cap, p, a in c.host.grants(c.universe, world_id)]}


async def _stats(c: _Call, world_id: str) -> dict[str, Any]:
    driver = await c.host.driver(c.universe, world_id)
    status = c.host.status_of(c.host.meta(c.universe, world_id))
    s = driver.stats
    return {"world": world_id, "state": status.state, "journal_height": status.journal_height,
            "inputs_applied": driver.world.seq, "inputs_since_wake": s.inputs, "traps": s.traps,
            "rejected_effects": s.rejected_effects, "frames": s.frames, "last_input_ms": status.last_input_ms,
            "effects_in_flight": len(driver.world.open_intents()), "snapshot": status.meta.snapshot,
            "snapshot_seq": status.meta.snapshot_seq, "manifest": driver.world.manifest_hash}


_READERS: dict[str, Callable[[_Call, str], Awaitable[dict[str, Any]]]] = {
    "overview": _overview, "manifest": _manifest, "history": _history, "cells": _cells, "state": _state,
    "journal": _journal, "intents": _intents, "grants": _grants, "stats": _stats,
}


# --- making and driving worlds ----------------------------------------------------------------------------


async def _universe(c: _Call) -> Receipt:
    g, p, u = c.grant_params, c.params, c.universe
    if c.op not in g.get("ops", ()):
        raise PermissionDenied(f"grant {c.grant.name!r} does not allow universe operation {c.op!r}")
    host = c.host
    if c.op == "list":
        return Receipt.ok(output=_out({"worlds": [
            {"world": s.meta.world_id, "name": s.meta.name, "state": s.state, "journal_height": s.journal_height}
            for s in host.status(u)]}))
    if c.op == "create":
        doc = _json_param(p.get("manifest"), "manifest")
        if not isinstance(doc, dict):
            raise InvalidArgument("manifest: a manifest document (an object)")
        allowed = set(g.get("grant_kinds") or DEFAULT_CREATE_KINDS) - PROTECTED_GRANT_KINDS
        grants = doc.get("grants") or {}
        for name, grant in (grants.items() if isinstance(grants, dict) else ()):
            cap = grant.get("cap") if isinstance(grant, dict) else None
            if cap not in allowed:
                raise PermissionDenied(f"grant {name!r} of the new world is a {cap!r} grant; grant {c.grant.name!r} "
                                       f"lets a world make worlds with grants of these kinds only: "
                                       f"{', '.join(sorted(allowed))}")
        world_id = check_name(str(p.get("world_id") or ""), "world id") if p.get("world_id") else ""
        meta = await host.create(u, doc, {}, world_id, str(p.get("name") or ""))
        return Receipt.ok(world=meta.world_id, output=_out({
            "created": meta.world_id, "name": meta.name, "manifest": meta.manifest_hash,
            "workflows": sorted((await host.driver(u, meta.world_id)).world.manifest.workflows)}))
    # send
    world_id = c.target()
    c.check_world(world_id, g.get("worlds"), "sending to")
    value = _json_param(p.get("value"), "value")
    seq = await host.send(u, world_id, str(p.get("schema")), value)
    traps = _traps_after(host, u, world_id, seq)
    return Receipt.ok(world=world_id, seq=seq, output=_out({"world": world_id, "seq": seq, "traps": traps}))


def _traps_after(host: WorldHost, universe: str, world_id: str, seq: int) -> list[dict[str, Any]]:
    """The traps among the records an event at ``seq`` derived (they follow it up to the next input)."""
    raws, _ = host.services.journal.read(journal_universe(universe), world_id, seq + 1, 256)
    traps = []
    for record in map(decode_record, raws):
        if record.input:
            break
        if isinstance(record, TrapRecord):
            traps.append({"workflow": record.origin.workflow, "key": record.origin.key, "code": record.code,
                          "message": record.message})
    return traps


# --- workspaces ---------------------------------------------------------------------------------------------


class Workspaces:
    """Workspace refs, journaled one raw journal per workspace (``<universe>/workspaces``)."""

    def __init__(self, host: WorldHost) -> None:
        self.host = host
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def lock(self, universe: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((universe, name), asyncio.Lock())

    def ref(self, universe: str, name: str) -> ws.Ref:
        journal, ju = self.host.services.journal, universe + "/workspaces"
        if not journal.exists(ju, name):
            return ws.Ref()
        end = journal.head(ju, name).durable
        raws, _ = journal.read(ju, name, end - 1, 1) if end else ([], 0)
        return ws.Ref.from_value(cbor.decode(raws[0])) if raws else ws.Ref()

    async def set_ref(self, universe: str, name: str, ref: ws.Ref, op: str, path: str = "") -> None:
        journal, ju = self.host.services.journal, universe + "/workspaces"
        next_seq = journal.head(ju, name).next_seq if journal.exists(ju, name) else 0
        await journal.append(ju, name, next_seq, WORKSPACE_EPOCH, [cbor.encode({**ref.to_value(), "op": op,
                                                                                 "path": path})])

    def get(self, universe: str) -> Callable[[str], bytes]:
        cas = self.host.services.cas

        def read(address: str) -> bytes:
            return cas.get(universe, address)

        return read


def workspaces_of(host: WorldHost) -> Workspaces:
    found = host.__dict__.get("_workspaces")
    if found is None:
        found = host.__dict__["_workspaces"] = Workspaces(host)
    return found  # type: ignore[no-any-return]


async def _workspace(c: _Call) -> Receipt:
    g, p, u = c.grant_params, c.params, c.universe
    name = check_name(str(p.get("workspace") or ""), "workspace")
    if g.get("workspaces") is not None and name not in g["workspaces"]:
        raise PermissionDenied(f"grant {c.grant.name!r} does not allow workspace {name!r}")
    store = workspaces_of(c.host)
    cas, get = c.host.services.cas, store.get(u)
    await cas.put(u, ws.EMPTY_TREE.encode())
    if c.op in ("write", "commit") and g.get("read_only"):
        raise PermissionDenied(f"grant {c.grant.name!r} is read-only")
    async with store.lock(u, name):
        ref = store.ref(u, name)
        at = p.get("commit") or None

        def tree() -> ws.Tree:
            if at is None:
                return ws.Tree.decode(get(ref.tree))
            return ws.Tree.decode(get(ws.Commit.decode(get(str(at))).tree))

        if c.op == "read":
            path = ws.check_path(p.get("path"))
            data = ws.read(tree(), path, get)
            try:
                text = data.decode()
            except UnicodeDecodeError:
                return Receipt.ok(path=path, size=len(data), output=f"[binary file {path}, {len(data)} bytes]")
            return Receipt.ok(path=path, size=len(data), output=text)
        if c.op == "list":
            files = ws.list_files(tree(), str(p.get("prefix") or ""))
            lines = [f"{path}  {cas.size(u, h)} bytes" for path, h in files]
            return Receipt.ok(count=len(files), output="\n".join(lines) or f"(workspace {name} has no files)")
        if c.op == "diff":
            start = p.get("from") or ref.head
            before = ws.Tree.decode(get(ws.Commit.decode(get(start)).tree)) if start else ws.EMPTY_TREE
            changes = ws.diff(before, tree() if p.get("to") is None else
                              ws.Tree.decode(get(ws.Commit.decode(get(str(p["to"]))).tree)), get)
            text = "\n".join(f"{ch['status']} {ch['path']}\n{ch['diff']}" for ch in changes)
            return Receipt.ok(changes=len(changes), output=text or "no changes")
        if c.op == "log":
            commits = ws.log(ref.head, get, max(1, min(int(p.get("limit") or 20), 100)))
            return Receipt.ok(output=_out({"head": ref.head, "tree": ref.tree, "commits": [
                {"commit": h, "message": cm.message, "tree": cm.tree, "parent": cm.parent} for h, cm in commits]}))
        if c.op == "write":
            path = ws.check_path(p.get("path"))
            current = ws.Tree.decode(get(ref.tree))
            if p.get("delete"):
                new, objects = ws.delete(current, path)
                size = 0
            else:
                content = p.get("content")
                data = content if isinstance(content, bytes) else str(content if content is not None else "").encode()
                new, objects = ws.write(current, path, data, int(g.get("max_files") or ws.MAX_FILES),
                                        int(g.get("max_file_bytes") or ws.MAX_FILE_BYTES))
                size = len(data)
            for obj in objects:
                await cas.put(u, obj)
            await store.set_ref(u, name, ws.Ref(ref.head, new.hash), "delete" if p.get("delete") else "write", path)
            verb = f"deleted {path}" if p.get("delete") else f"wrote {size} bytes to {path}"
            return Receipt.ok(path=path, size=size, tree=new.hash,
                              output=f"{verb} in workspace {name} (not committed)")
        # commit
        commit = ws.commit(ref.tree, ref.head, str(p.get("message") or ""), time.time_ns())
        address = await cas.put(u, commit.encode())
        await store.set_ref(u, name, ws.Ref(address, ref.tree), "commit")
        return Receipt.ok(commit=address, tree=ref.tree, output=f"committed {address} in workspace {name}")


# --- compiling ---------------------------------------------------------------------------------------------------


async def _module(c: _Call) -> Receipt:
    p, u = c.params, c.universe
    adapter = c.dispatcher.adapters.get("module.compile")
    if adapter is None:
        return Receipt.fail("no_adapter", "this kernel has no compiler adapter")
    language = p.get("language")
    cas = c.host.services.cas
    files: dict[str, bytes] = {}
    if p.get("sources"):
        sources = _json_param(p["sources"], "sources")
        if not isinstance(sources, dict):
            raise InvalidArgument("sources: file name -> CAS hash of its bytes")
        files = {str(n): cas.get(u, str(h)) for n, h in sources.items()}
    elif p.get("workspace"):
        name = check_name(str(p["workspace"]), "workspace")
        if not _holds_workspace(c.driver, name):
            raise PermissionDenied(f"to compile from workspace {name!r} the world needs a workspace grant for it")
        store = workspaces_of(c.host)
        get = store.get(u)
        ref = store.ref(u, name)
        tree_hash = ws.Commit.decode(get(str(p["commit"]))).tree if p.get("commit") else ref.tree
        tree = ws.Tree.decode(get(tree_hash))
        wanted = p.get("paths")
        suffixes = (".c", ".h") if language == "c" else (".wat",)
        for path, h in ws.list_files(tree):
            if (path in wanted) if wanted else path.endswith(suffixes):
                files[path] = get(h)
        missing = [x for x in (wanted or ()) if x not in files]
        if missing:
            raise InvalidArgument(f"not in workspace {name}: {', '.join(missing)}")
    else:
        raise InvalidArgument("give the sources: workspace (and paths), or sources (name -> CAS hash)")
    args = {"language": language, "files": files, "main": p.get("main"), "opt": p.get("opt"),
            "header": p.get("header", True)}

    async def frame(value: Mapping[str, Any]) -> None:
        c.driver.publish_frame(c.intent.intent_hash, value)

    receipt = await adapter.run(EffectCall("module.compile", args, c.grant_params, c.intent.idempotency_key), frame)
    if receipt.status != "ok":
        return receipt
    r = receipt.payload
    if not r.get("ok"):
        return Receipt.ok(ok=False, diagnostics=r.get("diagnostics", ""), sandbox=r.get("sandbox", ""),
                          output=f"compile failed ({language}):\n{r.get('diagnostics', '')}")
    module = await cas.put(u, r["wasm"])
    warnings = f"\nwarnings:\n{r['diagnostics']}" if r.get("diagnostics") else ""
    return Receipt.ok(ok=True, module=module, size=r["size"], diagnostics=r.get("diagnostics", ""),
                      sandbox=r.get("sandbox", ""),
                      output=f"compiled {language} to a {r['size']}-byte workflow module {module}{warnings}")


def _holds_workspace(driver: WorldDriver, name: str) -> bool:
    for g in driver.world.manifest.grants.values():
        if g.cap == "workspace" and g.name not in driver.meta.revoked_grants:
            allowed = g.params.get("workspaces") if isinstance(g.params, dict) else None
            if allowed is None or name in allowed:
                return True
    return False


_HANDLERS: dict[str, Callable[[_Call], Awaitable[Receipt]]] = {
    "governance": _governance, "world": _inspect, "universe": _universe, "workspace": _workspace,
    "module": _module,
}

"""Governance in the kernel: journal the steps of a manifest change and switch a running world.

How it works. Each operation wakes the world, runs the checks a create runs
on the proposed manifest (``parse_manifest``, the host's ``--grant-host``
roots, modules in CAS, the Python allow list through ``load_runtimes``),
builds a ``GovernanceRecord``, door-checks it against the world's governance
state and submits it to the world's driver like any other input, so it is
journaled in order with the world's events. Operations on one world are
serialized by a lock, so a proposal id computed at the door is the one the
stepper assigns.

``apply`` and ``rollback`` switch the manifest inside ``World.apply``: the
record names the manifest by hash and by the CAS address of its document,
and ``manifest_loader`` (installed on every world the host wakes) resolves
it, the same way live and in replay. Right after a switch the host takes a
snapshot, so the registry's manifest and snapshot agree again (until then a
wake restores the older snapshot with its own manifest and replays across
the switch).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aos.errors import InvalidArgument
from aos.kernel.host.registry import journal_universe
from aos.kernel.world import cbor
from aos.kernel.world.governance import (
    GovernanceError,
    apply_patch,
    check_authority,
    diff_manifests,
    grant_changes,
    parse_patch,
    shadow,
)
from aos.kernel.world.loader import load_runtimes
from aos.kernel.world.manifest import Manifest, parse_manifest
from aos.kernel.world.records import EventRecord, GovernanceRecord, Stamp, decode_record
from aos.kernel.world.runtime import WorkflowRuntime

if TYPE_CHECKING:
    from aos.kernel.host.driver import WorldDriver
    from aos.kernel.host.host import WorldHost

DEFAULT_SAMPLE = 20  # recent events a shadow run replays when it is given none
MAX_SAMPLE = 200
MAX_EVENTS = 200
SCAN_RECORDS = 4096  # how far back a shadow run looks for recent events


def manifest_loader(host: WorldHost, universe: str) -> Callable[[GovernanceRecord], tuple[Manifest, Any]]:
    """What ``World.manifests`` calls at an apply or rollback record: the manifest it names, with runtimes."""
    def load(rec: GovernanceRecord) -> tuple[Manifest, dict[str, WorkflowRuntime]]:
        address = rec.body["address"]
        cached = host._definitions.get((universe, address))
        if cached is not None:
            return cached
        manifest = parse_manifest(cbor.decode(host.services.cas.get(universe, address)))
        return manifest, host._runtimes(universe, address, manifest)

    return load


def governance_of(host: WorldHost) -> Governance:
    """The host's one ``Governance`` (made on first use)."""
    found = host.__dict__.get("_governance")
    if found is None:
        found = host.__dict__["_governance"] = Governance(host)
    return found  # type: ignore[no-any-return]


def current_address(driver: WorldDriver) -> str:
    """CAS address of the document of the manifest the world runs now."""
    return driver.world.governance.current_address() or driver.meta.manifest


class Governance:
    def __init__(self, host: WorldHost) -> None:
        self.host = host
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _lock(self, universe: str, world_id: str) -> asyncio.Lock:
        return self._locks.setdefault((universe, world_id), asyncio.Lock())

    # --- reading ----------------------------------------------------------------------------------

    async def manifest(self, universe: str, world_id: str) -> dict[str, Any]:
        """``{manifest: doc, hash, address}`` of the manifest the world runs now."""
        driver = await self.host.driver(universe, world_id)
        address = current_address(driver)
        return {"manifest": cbor.decode(self.host.services.cas.get(universe, address)),
                "hash": driver.world.manifest_hash, "address": address}

    async def history(self, universe: str, world_id: str) -> dict[str, Any]:
        """The world's proposals and manifest changes, oldest first."""
        driver = await self.host.driver(universe, world_id)
        value = driver.world.governance.to_value()
        return {"world": world_id, "manifest": driver.world.manifest_hash, "address": current_address(driver),
                "proposals": value["proposals"], "history": value["history"]}

    # --- the steps ------------------------------------------------------------------------------

    async def propose(self, universe: str, world_id: str, patch_value: Any, by: str = "client",
                      reason: str = "", grant_kinds: Iterable[str] | None = None) -> dict[str, Any]:
        """Check a patch as a create would check its result and journal the proposal.

        Raises ``PatchRejected``, ``ManifestError`` (with the path in the patched
        manifest), ``PermissionDenied`` (a host grant outside the kernel's roots),
        ``ModuleLoadError``, ``InvalidArgument`` (a module not in CAS), ``GovernanceError``."""
        patch = parse_patch(patch_value)
        async with self._lock(universe, world_id):
            driver = await self.host.driver(universe, world_id)
            world = driver.world
            if patch.base is not None and patch.base != world.manifest_hash:
                raise GovernanceError(f"the patch is for manifest {patch.base}; the world runs {world.manifest_hash}")
            doc = cbor.decode(self.host.services.cas.get(universe, current_address(driver)))
            new_doc = apply_patch(doc, patch)
            manifest = parse_manifest(new_doc)
            diff = diff_manifests(world.manifest, manifest)
            if diff.empty:
                raise GovernanceError("the patch changes nothing")
            check_authority(diff, world.manifest, manifest, grant_kinds)
            address = await self._prepare(universe, new_doc, manifest)
            proposal = world.governance.next_id()
            body = {"base": world.manifest_hash, "manifest": manifest.hash, "address": address,
                    "patch": patch.to_value(), "summary": diff.lines()[:64], "by": by,
                    "reason": (reason or patch.reason)[:2000]}
            await self._submit(universe, world_id, GovernanceRecord("propose", proposal, body, _stamp()))
            return {"proposal": proposal, "status": "proposed", "base": body["base"],
                    "manifest": manifest.hash, "address": address, "diff": diff.to_value(),
                    "grants": grant_changes(diff, driver.world.manifest, manifest)}

    async def shadow(self, universe: str, world_id: str, proposal: str,
                     events: list[tuple[str, Any]] | None = None, sample: int = DEFAULT_SAMPLE) -> dict[str, Any]:
        """Run the proposal on a fork of the world's current state against ``events``
        (or the last ``sample`` events of its journal) and journal the outcome."""
        if events is not None and len(events) > MAX_EVENTS:
            raise InvalidArgument(f"{len(events)} events; a shadow run takes at most {MAX_EVENTS}")
        async with self._lock(universe, world_id):
            driver = await self.host.driver(universe, world_id)
            await driver.drain()
            world = driver.world
            p = world.governance.get(proposal)
            if p.status not in ("proposed", "shadowed"):
                raise GovernanceError(f"proposal {p.id} is {p.status}; only a proposed one is shadowed")
            if p.base != world.manifest_hash:
                raise GovernanceError(f"proposal {p.id} was made for manifest {p.base}, but the world now runs "
                                      f"{world.manifest_hash}: propose the change again on the current manifest")
            patched = parse_manifest(cbor.decode(self.host.services.cas.get(universe, p.address)))
            if events is None:
                records = self._recent_events(universe, world_id, max(1, min(sample, MAX_SAMPLE)))
            else:
                records = [EventRecord(s, v, Stamp(time.time_ns(), os.urandom(16))) for s, v in events]
            report = shadow(world, patched, self._fresh(universe, patched), self._fresh(universe, world.manifest),
                            records)
            report["proposal"] = p.id
            address = await self.host.services.cas.put(universe, cbor.encode(report))
            body = {"base": world.manifest_hash, "report": address, "ok": report["ok"],
                    "problems": len(report["problems"]), "events": report["events"]}
            await self._submit(universe, world_id, GovernanceRecord("shadow", p.id, body, _stamp()))
            report["report"] = address
            return report

    async def decide(self, universe: str, world_id: str, proposal: str, approve: bool, by: str = "client",
                     reason: str = "") -> dict[str, Any]:
        """Approve (only after a shadow run that found nothing) or reject a proposal."""
        async with self._lock(universe, world_id):
            op = "approve" if approve else "reject"
            body = {"by": by, "reason": reason[:2000]}
            await self._submit(universe, world_id, GovernanceRecord(op, proposal, body, _stamp()))
            driver = await self.host.driver(universe, world_id)
            return {"proposal": proposal, "status": driver.world.governance.get(proposal).status}

    async def apply(self, universe: str, world_id: str, proposal: str, by: str = "client") -> dict[str, Any]:
        """Switch the world to an approved proposal's manifest."""
        async with self._lock(universe, world_id):
            driver = await self.host.driver(universe, world_id)
            p = driver.world.governance.get(proposal)
            if p.status != "approved":
                raise GovernanceError(f"proposal {p.id} is {p.status}; only an approved proposal is applied")
            return await self._switch(universe, world_id, driver, "apply", p.id, p.manifest, p.address, by, "")

    async def rollback(self, universe: str, world_id: str, to: str = "previous", by: str = "client",
                       reason: str = "") -> dict[str, Any]:
        """Switch the world back to an earlier manifest of its history (``previous``: the one before now)."""
        async with self._lock(universe, world_id):
            driver = await self.host.driver(universe, world_id)
            gov = driver.world.governance
            if to in ("", "previous"):
                if not gov.history:
                    raise GovernanceError(f"world {world_id} has not changed its manifest: nothing to roll back to")
                to = gov.history[-1].before
            address = gov.address_of(to)
            if address is None:
                known = sorted({c.before for c in gov.history} | {c.after for c in gov.history})
                raise GovernanceError(f"{to} is not an earlier manifest of world {world_id} "
                                      f"(its manifests: {', '.join(known) or 'only the first'})")
            return await self._switch(universe, world_id, driver, "rollback", "", to, address, by, reason)

    async def _switch(self, universe: str, world_id: str, driver: WorldDriver, op: str, proposal: str,
                      manifest_hash: str, address: str, by: str, reason: str) -> dict[str, Any]:
        world = driver.world
        manifest = parse_manifest(cbor.decode(self.host.services.cas.get(universe, address)))
        self.host._check_host_grants(manifest)  # the kernel may grant fewer directories than at the proposal
        self.host._runtimes(universe, address, manifest)  # loaded now, so the stepper's switch finds them
        await driver.drain()
        problems = world.manifest_problems(manifest)
        if problems:
            raise GovernanceError(f"cannot {op} now: " + "; ".join(problems))
        before = world.manifest_hash
        body = {"prev": before, "manifest": manifest_hash, "address": address,
                "prev_address": current_address(driver), "by": by}
        if reason:
            body["reason"] = reason[:2000]
        seq = await self._submit(universe, world_id, GovernanceRecord(op, proposal, body, _stamp()))
        # the registry names the manifest of the latest snapshot: take one on the new manifest now
        await self.host.snapshot(universe, world_id)
        return {"op": op, "proposal": proposal, "before": before, "manifest": manifest_hash, "address": address,
                "seq": seq}

    # --- helpers ---------------------------------------------------------------------------------

    async def _prepare(self, universe: str, doc: Mapping[str, Any], manifest: Manifest) -> str:
        """Check a proposed manifest as ``create`` checks one and store it in CAS; its document's address."""
        from aos.kernel.host.host import _plain

        self.host._check_host_grants(manifest)
        cas = self.host.services.cas
        for module in manifest.modules.values():
            if module.runtime == "wasm" and not cas.has(universe, module.artifact_hash or ""):
                raise InvalidArgument(f"module {module.name}: {module.artifact_hash} is not in this universe's CAS "
                                      "(compile it with sys/module.compile@1 or store it with aos cas put)")
        self._fresh(universe, manifest)  # ModuleLoadError: a Python module off the allow list, a bad WASM module
        for defs in (manifest.schemas, manifest.modules, manifest.workflows, manifest.effects, manifest.grants):
            for definition in defs.values():
                await cas.put(universe, cbor.encode(definition.canonical()))
        await cas.put(universe, cbor.encode(manifest.canonical()))
        return await cas.put(universe, cbor.encode(_plain(doc)))

    def _fresh(self, universe: str, manifest: Manifest) -> dict[str, WorkflowRuntime]:
        """New runtime instances (compiled modules come from the host's cache)."""
        wasm = {m.artifact_hash: self.host.services.cas.get(universe, m.artifact_hash)
                for m in manifest.modules.values() if m.runtime == "wasm" and m.artifact_hash}
        return load_runtimes(manifest, wasm, self.host.wasm_cache, python=self.host.python,
                             python_step_seconds=self.host.python_step_seconds)

    def _recent_events(self, universe: str, world_id: str, count: int) -> list[EventRecord]:
        journal = self.host.services.journal
        end = journal.head(journal_universe(universe), world_id).durable
        at = max(0, end - SCAN_RECORDS)
        found: list[EventRecord] = []
        while at < end:
            raws, end = journal.read(journal_universe(universe), world_id, at, 1024)
            if not raws:
                break
            found += [r for r in map(decode_record, raws) if isinstance(r, EventRecord)]
            at += len(raws)
        return found[-count:]

    async def _submit(self, universe: str, world_id: str, record: GovernanceRecord) -> int:
        # the driver again: it may have hibernated while this step awaited CAS (a new one wakes the same state)
        driver = await self.host.driver(universe, world_id)
        bad = driver.world.check_governance(record)
        if bad is not None:
            raise bad
        try:
            return await driver.submit(record)
        except GovernanceError:
            raise
        except Exception as exc:  # the stepper refused it after all (a race at the door): say why, typed
            from aos.kernel.world.errors import WorldError

            if isinstance(exc, WorldError) and type(exc) is WorldError:
                raise GovernanceError(str(exc)) from None
            raise


def _stamp() -> Stamp:
    return Stamp(time.time_ns(), b"")

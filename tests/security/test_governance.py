"""Hostile manifest patches are refused with typed errors, exactly as at create, and change nothing.

A patch's result is checked like a new manifest (the kernel's effect kinds,
the Python allow list before any import, ``--grant-host`` roots); no patch
may touch a governance or universe grant (that includes dropping the very
grant it came through); size and shape are bounded; a read-only World
capability cannot propose; a workflow acting through a governance grant is
held to that grant's worlds, operations and grant kinds; a world made
through a universe grant carries no governance. After every refusal the
world still runs its first manifest and the kernel keeps serving.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from aos.errors import AosError, PermissionDenied
from aos.kernel.client import Connection, run
from aos.kernel.world.errors import ManifestError, ModuleLoadError
from aos.kernel.world.governance import MAX_PATCH_BYTES, MAX_PATCH_OPS, PatchRejected
from aos.testing import KernelProcess

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack import SCRIPT, WORKFLOW, declared, hostile_manifest, wait_until  # noqa: E402

GOV = {"cap": "governance", "params": {"worlds": ["."], "ops": ["propose", "shadow", "approve", "apply"]}}
GOVERNED_EFFECTS = {f"sys/governance.{op}@1": declared("governance") for op in ("propose", "shadow", "approve",
                                                                                 "apply")}


def _governed_doc(grant_kinds: list[str] | None = None, worlds: list[str] | None = None) -> dict:
    gov = json.loads(json.dumps(GOV))
    if grant_kinds is not None:
        gov["params"]["grant_kinds"] = grant_kinds
    if worlds is not None:
        gov["params"]["worlds"] = worlds
    return hostile_manifest(GOVERNED_EFFECTS, {"gov": gov, "t": {"cap": "timer"}})


@pytest.fixture
def granting(data_dir, tmp_path):
    """A kernel that grants host directories under tmp_path/granted; a Python module that must never be imported."""
    granted = tmp_path / "granted"
    granted.mkdir()
    plant = tmp_path / "plant"
    plant.mkdir()
    marker = tmp_path / "imported"
    (plant / "aos_evil_patch.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\ndef step(i):\n    return {{}}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plant), os.environ.get("PYTHONPATH", "")])}
    proc = KernelProcess(data_dir, extra_args=["--grant-host", str(granted)], env=env).start()
    proc.granted, proc.marker = granted, marker  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        proc.kill()


async def _world(kernel, doc=None):
    conn = await Connection.open(kernel.address)
    admin = await conn.restore_kernel(kernel.admin_token)
    worlds = await admin.worlds("u")
    world, info = await worlds.create(doc or _governed_doc(), {}, "victim")
    return conn, admin, worlds, world, info


def _add(section: str, name: str, value) -> dict:
    return {"ops": [{"op": "add", "section": section, "name": name, "value": value}]}


HOSTILE = [
    ("kernel effect under the wrong kind", _add("effects", "sys/llm.generate@1", declared("timer")), ManifestError,
     "$.effects.sys/llm.generate@1.cap: sys/llm.generate@1 is covered by a 'llm' grant, not 'timer'"),
    ("a kernel kind outside sys/", _add("effects", "evil/host.exec@1", declared("timer")), ManifestError,
     "needs a namespace of its own"),
    ("writes lowered on a writing effect", _add("effects", "sys/host.fs.write@1", declared("host.fs", writes=False)),
     ManifestError, ".writes"),
    ("python module off the allow list", _add("modules", "m@1", {"runtime": "python", "python_module":
                                                                  "aos_evil_patch"}), ModuleLoadError,
     "not on this kernel's allow list"),
    ("host.fs outside the roots", _add("grants", "fs", {"cap": "host.fs", "params": {"root": "/etc"}}),
     PermissionDenied, "is not under a directory this kernel grants"),
    ("host.exec outside the roots", _add("grants", "sh", {"cap": "host.exec", "params": {"cwd": "/", "shell": True}}),
     PermissionDenied, "is not under a directory this kernel grants"),
    ("drops the governance grant itself", {"ops": [{"op": "remove", "section": "grants", "name": "gov"}]},
     PatchRejected, "drops the governance grant 'gov'"),
    ("widens the governance grant", {"ops": [{"op": "replace", "section": "grants", "name": "gov", "value": {
        "cap": "governance", "params": {"worlds": ["*"], "ops": ["propose", "apply", "rollback"]}}}]},
     PatchRejected, "changes the governance grant 'gov'"),
    ("adds a governance grant", _add("grants", "gov2", {"cap": "governance", "params": {"worlds": ["*"],
                                                                                         "ops": ["apply"]}}),
     PatchRejected, "adds the governance grant 'gov2'"),
    ("adds a universe grant", _add("grants", "u", {"cap": "universe", "params": {"ops": ["create"]}}),
     PatchRejected, "adds the universe grant 'u'"),
    ("a wasm module not in CAS", _add("modules", "w@1", {"runtime": "wasm", "hash": "sha256:" + "ab" * 32}),
     AosError, "is not in this universe's CAS"),
    ("too many operations", {"ops": [{"op": "add", "section": "secrets", "name": f"s{i}"}
                                     for i in range(MAX_PATCH_OPS + 1)]}, PatchRejected, "the limit is 256"),
    ("a huge patch", _add("schemas", "big@1", {"enum": [f"x{i:07d}" for i in range(MAX_PATCH_BYTES // 8)]}),
     PatchRejected, "bytes; the limit is"),
    ("a malformed operation", {"ops": [{"op": "chmod", "section": "grants", "name": "gov"}]}, PatchRejected,
     "$.ops[0].op"),
    ("an unknown section", {"ops": [{"op": "add", "section": "kernel", "name": "x", "value": 1}]}, PatchRejected,
     "$.ops[0].section"),
]


@pytest.mark.parametrize("what,patch,error,message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_patch_is_refused_with_a_typed_error_and_changes_nothing(granting, what, patch, error, message):
    """Each hostile patch is refused with its typed error; nothing is journaled, imported or changed."""

    async def main() -> tuple:
        conn, admin, worlds, world, info = await _world(granting)
        async with conn:
            with pytest.raises(error) as err:
                await world.propose(patch)
            gov = await world.governance()
            return str(err.value), gov, info, (await world.manifest())["hash"], await admin.status()

    text, gov, info, manifest, status = run(main())
    assert message in text
    assert gov["proposals"] == [] and gov["history"] == []  # nothing was journaled
    assert manifest == info["manifestHash"]
    assert not granting.marker.exists()  # the module off the allow list was never imported
    assert status["connections"] >= 1


def test_the_same_declaration_is_refused_with_the_same_error_at_create_and_in_a_patch(granting):
    """A kernel effect under the wrong kind gives the create's very message when a patch brings it."""
    bad = hostile_manifest({"sys/portal.send@1": declared("blob")}, {"b": {"cap": "blob"}})

    async def main() -> tuple[str, str]:
        conn, admin, worlds, world, _ = await _world(granting, hostile_manifest({}, {"b": {"cap": "blob"}}))
        async with conn:
            with pytest.raises(ManifestError) as at_create:
                await worlds.create(bad, {}, "other")
            with pytest.raises(ManifestError) as in_patch:
                await world.propose({"ops": [
                    {"op": "add", "section": "effects", "name": "sys/portal.send@1", "value": declared("blob")},
                    {"op": "replace", "section": "workflows", "name": WORKFLOW,
                     "value": bad["workflows"][WORKFLOW]}]})
            return str(at_create.value), str(in_patch.value)

    at_create, in_patch = run(main())
    assert at_create == in_patch and ".cap" in at_create


def test_a_host_grant_under_a_root_is_accepted_and_one_escaping_it_is_not(granting):
    """Inside ``--grant-host`` a host.fs grant may be added; ``..`` out of it or a symlink out of it may not."""
    granted = granting.granted
    (granted / "out").symlink_to("/etc")

    async def main() -> list:
        conn, admin, worlds, world, _ = await _world(granting)
        outcomes = []
        async with conn:
            (granted / "notes").mkdir()
            for root in (str(granted / "notes"), str(granted / ".." / "plant"), str(granted / "out")):
                try:
                    await world.propose(_add("grants", "fs", {"cap": "host.fs", "params": {"root": root}}))
                    outcomes.append("proposed")
                except PermissionDenied:
                    outcomes.append("refused")
            return outcomes

    assert run(main()) == ["proposed", "refused", "refused"]


def test_deeply_nested_json_is_refused_not_an_internal_error(kernel):
    """A patch nested 100,000 levels deep is refused as a bad patch; the kernel keeps serving."""

    async def main() -> str:
        conn, admin, worlds, world, _ = await _world(kernel)
        async with conn:
            with pytest.raises(AosError) as err:
                await world.propose("[" * 100_000 + "]" * 100_000)
            await admin.status()
            return err.value.code

    assert run(main()) in ("PatchRejected", "InvalidArgument")


def test_a_read_only_world_capability_cannot_govern(kernel):
    """Through a read-only Worlds capability the world opens read-only: history yes, propose and apply no."""

    async def main() -> tuple:
        conn, admin, worlds, world, _ = await _world(kernel)
        async with conn:
            ro = await (await worlds.read_only()).open("victim")
            history = await ro.governance()
            refusals = []
            for attempt in (ro.propose({"ops": [{"op": "add", "section": "secrets", "name": "s"}]}),
                            ro.apply("p1"), ro.rollback(), ro.approve("p1"), ro.shadow("p1")):
                with pytest.raises(PermissionDenied) as err:
                    await attempt
                refusals.append(str(err.value))
            return history, refusals

    history, refusals = run(main())
    assert history["proposals"] == [] and len(refusals) == 5 and all("read-only" in r for r in refusals)


def _script(world, effects):
    return world.send(SCRIPT, {"effects": effects})


async def _receipts(world, n: int) -> list:
    async def enough():
        state = await world.state(WORKFLOW)
        return state["receipts"] if state and len(state["receipts"]) >= n else None

    return await wait_until(enough)


def test_a_workflow_proposing_through_its_grant_is_held_to_its_grant_kinds_and_worlds(kernel):
    """Through a governance effect: a grant kind the grant does not list, its own governance grant, or another
    world is refused; a schema change goes through."""
    add_http = _add("grants", "web", {"cap": "http", "params": {"hosts": ["*"]}})
    drop_gov = {"ops": [{"op": "remove", "section": "grants", "name": "gov"}]}
    fine = _add("schemas", "test/Note@1", {"record": {"text": "text"}})

    async def main() -> list:
        conn, admin, worlds, world, _ = await _world(kernel, _governed_doc(grant_kinds=["timer"]))
        async with conn:
            await worlds.create(hostile_manifest({}, {}), {}, "bystander")
            receipts = []
            for params in ({"patch": add_http}, {"patch": drop_gov}, {"patch": fine, "world": "bystander"},
                           {"patch": fine}):  # one at a time: each receipt is the newest
                await _script(world, [{"effect": "sys/governance.propose@1", "params": params}])
                receipts.append((await _receipts(world, len(receipts) + 1))[-1])
            return receipts, await world.governance(), await (await worlds.open("bystander")).governance()

    receipts, mine, bystander = run(main())
    by_outcome = [(status, payload.get("error") or payload.get("code") or "", payload.get("message", ""))
                  for _, status, payload in receipts]
    assert ("error", "PatchRejected") == by_outcome[0][:2] and "grants of these kinds only: timer" in by_outcome[0][2]
    assert ("error", "PatchRejected") == by_outcome[1][:2] and "drops the governance grant" in by_outcome[1][2]
    assert by_outcome[2][:2] == ("error", "refused") and "governance of world 'bystander' is not granted" in \
        by_outcome[2][2]
    assert by_outcome[3][0] == "ok"
    assert [p["id"] for p in mine["proposals"]] == ["p1"] and mine["proposals"][0]["by"].startswith("world victim")
    assert bystander["proposals"] == []


def test_a_world_made_through_a_universe_grant_cannot_carry_governance(kernel):
    """universe.create refuses a manifest with a governance, universe or host grant; the world is not made."""
    maker = hostile_manifest({"sys/universe.create@1": declared("universe")},
                             {"make": {"cap": "universe", "params": {"ops": ["create"]}}})

    async def main() -> tuple:
        conn, admin, worlds, world, _ = await _world(kernel, maker)
        async with conn:
            bad = [hostile_manifest({}, {"g": GOV}), hostile_manifest({}, {"u": {"cap": "universe",
                                                                               "params": {"ops": ["create"]}}}),
                   hostile_manifest({}, {"x": {"cap": "host.exec", "params": {"cwd": "/tmp"}}})]
            await _script(world, [{"effect": "sys/universe.create@1", "params": {"world_id": f"made{i}",
                                                                                  "manifest": doc}}
                                  for i, doc in enumerate(bad)])
            return await _receipts(world, 3), {w["worldId"] for w in await worlds.list()}

    receipts, ids = run(main())
    assert [(r[1], r[2].get("error")) for r in receipts] == [("error", "PermissionDenied")] * 3
    assert not any(i.startswith("made") for i in ids)

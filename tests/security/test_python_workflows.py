"""Classes 4 and 5: Python workflows come only from modules the operator allows,
and nothing a workflow does stops, hangs or crash-loops the kernel.

A manifest naming a module off the allow list is refused at create before
the module is imported; an entry must be a public function of the module.
Inside the allow list, whatever a step raises (``SystemExit`` included) or
a step that never returns is a trap for that world alone. A world that
cannot wake is quarantined, visible, and released by an operator; the kernel
serves everyone else, also right after a restart.
"""

import json
import os
import subprocess
import sys

import pytest

from aos.errors import AosError
from aos.kernel.client import Connection, run
from aos.kernel.world import World, decode_record, load_runtimes, parse_manifest, replay
from aos.kernel.world.errors import ModuleLoadError, WorldQuarantined
from aos.kernel.world.python_runtime import PythonAllowList, PythonRuntime
from aos.testing import KernelProcess

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hostile_workflow  # noqa: E402
from attack import SCRIPT, WORKFLOW, hostile_manifest  # noqa: E402

EVENT = "test/Hostile@1"


def hostile_kernel(data_dir, *args, mark: str = "", step_seconds: str = "0.5") -> KernelProcess:
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""),
               AOS_PYTHON_STEP_SECONDS=step_seconds, HOSTILE_IMPORT_MARK=mark)
    return KernelProcess(data_dir, extra_args=list(args), env=env)


# (module, entry): none of these is on the allow list, so none may even be imported
OFF_THE_LIST = [("subprocess", "run"), ("sys", "exit"), ("builtins", "input"), ("os", "system"),
                ("shutil", "rmtree"), ("importlib", "import_module"), ("antigravity", "geohash"),
                ("this", "step"), ("hostile_workflow", "step"), ("aos.kernel.daemon", "main"),
                ("aos.kernel.world.examplesx", "step"), ("aos.kernel.world.examples", "step"),
                ("aos.agents", "step"), ("aos.agents.session.x", "step"), ("", "step"), ("..", "step")]


@pytest.mark.parametrize("module,entry", OFF_THE_LIST, ids=[f"{m or 'empty'}:{e}" for m, e in OFF_THE_LIST])
def test_a_module_off_the_allow_list_is_refused_before_import(data_dir, tmp_path, module, entry):
    """Create is refused with ModuleLoad naming the flag; the module was not imported; the kernel serves on."""
    mark = tmp_path / "imported"
    kernel = hostile_kernel(data_dir, mark=str(mark)).start()
    try:
        async def main():
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                worlds = await admin.worlds("u")
                with pytest.raises(AosError) as err:
                    await worlds.create(hostile_workflow.manifest(module, entry))
                assert await worlds.list() == []
                await admin.status()
                return err.value

        error = run(main())
        assert error.code in ("ModuleLoad", "Manifest")
        if error.code == "ModuleLoad":
            assert "--python-module" in str(error)
        assert not mark.exists()
    finally:
        kernel.kill()


# entries of an allowed module that are not its own public functions
BAD_ENTRIES = [("aos.agents.session", "_private"), ("aos.agents.session", "json"),
               ("aos.agents.session", "dataclass"), ("aos.agents.session", "__import__"),
               ("aos.agents.session", "__builtins__"), ("aos.kernel.world.examples.counter", "cbor"),
               ("aos.kernel.world.testing", "wasmtime"), ("aos.kernel.world.testing", "Harness"),
               ("aos.kernel.world.testing", "os.system"), ("aos.kernel.world.testing", "no_such")]


@pytest.mark.parametrize("module,entry", BAD_ENTRIES, ids=[f"{m}:{e}" for m, e in BAD_ENTRIES])
def test_an_entry_must_be_a_public_function_of_the_module(module, entry):
    """Names a module imported (modules, classes, builtins) or keeps private are no workflow entries."""
    allowed = PythonAllowList.of(["aos.kernel.world.testing"])
    with pytest.raises(ModuleLoadError, match="defines no public function"):
        load_runtimes(parse_manifest(hostile_workflow.manifest(module, entry)), {}, python=allowed)


def test_allow_list_patterns():
    """``pkg.*`` allows modules below ``pkg`` only; a plain name allows exactly that module."""
    allowed = PythonAllowList.of(["team.wf", "lab.*"], defaults=False)
    assert allowed.allows("team.wf") and allowed.allows("lab.a") and allowed.allows("lab.a.b")
    for name in ("team", "team.wf2", "team.wf.x", "lab", "labx.a", "aos.agents.session"):
        assert not allowed.allows(name), name
    assert PythonAllowList().allows("aos.agents.session")


ESCAPES = ["exit", "exit3", "interrupt", "generator_exit", "base", "recursion", "memory_error"]
HANGS = ["spin", "sleep", "input"]


def test_nothing_a_step_raises_or_blocks_on_stops_the_kernel(data_dir):
    """SystemExit, KeyboardInterrupt, other BaseExceptions and steps that never return each trap the
    world's step; the next event goes through, and the kernel keeps serving throughout."""
    kernel = hostile_kernel(data_dir, "--python-module", "hostile_workflow").start()
    try:
        async def main():
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                world, _ = await (await admin.worlds("u")).create(hostile_workflow.manifest(), world_id="h")
                codes = {}
                for action in ESCAPES + HANGS:
                    _, outcome = await world.send_with_outcome(EVENT, {"do": action})
                    assert len(outcome["traps"]) == 1, action
                    codes[action] = (outcome["traps"][0]["code"], outcome["traps"][0]["message"])
                    await admin.status()
                await world.send(EVENT, {})
                return codes, await world.state("test/hostile@1")

        codes, state = run(main())
        assert state == {"n": 1}  # only the plain event changed state
        for action in ESCAPES:
            assert codes[action][0] == "WorkflowTrap", codes[action]
        assert "SystemExit" in codes["exit"][1] and "KeyboardInterrupt" in codes["interrupt"][1]
        for action in HANGS:
            assert codes[action][0] in ("DeadlineExceeded", "WorkflowTrap"), codes[action]
        assert codes["spin"][0] == "DeadlineExceeded"
        assert kernel.proc.poll() is None
    finally:
        kernel.kill()


def test_traps_from_escapes_replay_byte_identically(data_dir):
    """The journal of a world whose steps raised SystemExit and friends replays to the same records and state."""
    kernel = hostile_kernel(data_dir, "--python-module", "hostile_workflow").start()
    try:
        async def main():
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                world, _ = await (await admin.worlds("u")).create(hostile_workflow.manifest(), world_id="r")
                for action in ESCAPES + ["ok"]:
                    await world.send(EVENT, {"do": action})
                live, _ = await world.snapshot()
                raw, height = await world.read_raw(0, 0)
                while len(raw) < height:
                    more, height = await world.read_raw(len(raw), 0)
                    raw += more
                return live, raw

        live, raw = run(main())
        manifest = parse_manifest(hostile_workflow.manifest())
        fresh = World(manifest, load_runtimes(manifest, {}, python=PythonAllowList.of(["hostile_workflow"])), "r")
        assert replay(fresh, [decode_record(r) for r in raw]) == ()
        assert fresh.state_hash() == live
    finally:
        kernel.kill()


def test_a_world_that_cannot_wake_is_quarantined_and_released_by_the_operator(data_dir):
    """When its module is no longer allowed, the world is quarantined at restart (the kernel comes up and
    serves other worlds), its events are refused with WorldQuarantined and its timer mail waits; once the
    operator allows the module again and releases it, the world wakes and the waiting mail is delivered."""
    kernel = hostile_kernel(data_dir, "--python-module", "hostile_workflow", "--python-module",
                            "aos.kernel.world.testing").start()
    try:
        async def create():
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                worlds = await admin.worlds("u")
                doc = hostile_workflow.manifest()
                world, _ = await worlds.create(doc, world_id="q")
                await world.send(EVENT, {})  # journal past the genesis snapshot: woken at restart
                other, _ = await worlds.create(hostile_manifest({}, {}), world_id="other")
                await other.send(SCRIPT, {})

        run(create())
        kernel.stop()
        kernel.extra_args = ["--python-module", "aos.kernel.world.testing"]  # the operator drops the module
        kernel.start()

        async def quarantined():
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                worlds = await admin.worlds("u")
                world = await worlds.open("q")
                with pytest.raises(WorldQuarantined, match="allow list"):
                    await world.send(EVENT, {})
                listed = {w["worldId"]: w for w in await worlds.list()}
                other = await worlds.open("other")
                await other.send(SCRIPT, {})  # every other world serves
                assert (await other.state(WORKFLOW))["n"] == 2
                with pytest.raises(WorldQuarantined):
                    await worlds.unquarantine("q")  # still not allowed: quarantined again
                return listed

        listed = run(quarantined())
        assert "allow list" in listed["q"]["quarantined"] and listed["other"]["quarantined"] == ""
        ls = _aos(kernel, "world", "ls")
        assert ls.returncode == 0 and any(line.split()[:1] == ["q"] and "quarantined" in line
                                          for line in ls.stdout.splitlines()), ls.stdout
        refused = _aos(kernel, "world", "unquarantine", "q")
        assert refused.returncode == 1 and "quarantined" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
        kernel.stop()
        kernel.extra_args = ["--python-module", "hostile_workflow"]
        kernel.start()
        persisted = _aos(kernel, "--json", "world", "ls")
        assert [w for w in json.loads(persisted.stdout)["worlds"] if w["worldId"] == "q"][0]["quarantined"]

        async def release():
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                worlds = await admin.worlds("u")
                world = await worlds.open("q")
                await world.send(EVENT, {})
                return {w["worldId"]: w for w in await worlds.list()}["q"], await world.state("test/hostile@1")

        released = _aos(kernel, "world", "unquarantine", "q")
        assert released.returncode == 0 and "released" in released.stdout, released.stderr
        info, state = run(release())
        assert info["quarantined"] == "" and info["awake"]
        assert state == {"n": 2}
    finally:
        kernel.kill()


def _aos(kernel, *args):
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path, AOS_UNIVERSE="u")
    return subprocess.run([sys.executable, "-m", "aos.cli", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_the_runtime_refuses_before_importing():
    """``PythonRuntime`` checks the allow list before it imports anything."""
    before = set(sys.modules)
    with pytest.raises(ModuleLoadError, match="not on this kernel's allow list"):
        PythonRuntime("antigravity")
    assert "antigravity" not in set(sys.modules) - before

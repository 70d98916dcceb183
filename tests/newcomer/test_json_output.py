"""Every ``aos ... --json`` prints JSON: each command of the CLI, run as a user runs it, against a real kernel.

The one spelling for byte strings is ``{"$bytes": "<base64>"}`` (the World
interface's own): a world's journal carries bytes in every ingress stamp,
``cas get --json`` carries the blob, a raw journal record that is not text
carries its bytes. Commands that follow something live (``journal tail``,
``world journal --tail``, ``agent run``, ``agent replay``) print one JSON
document per line. The table of cases is checked against the CLI's own
parser, so a new command without a case here fails.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aos.cli import build_parser
from aos.kernel.client import Connection, run
from aos.kernel.scheduler.testing import etcd_binary
from aos.testing import KernelProcess

REPO = Path(__file__).resolve().parents[2]
BLOB = bytes(range(256)) * 3  # not text: it can only travel as $bytes


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[dict]:
    """One kernel with a counter world (a few events), a binary blob and a raw journal holding a binary record."""
    data = tempfile.mkdtemp(prefix="aosk-", dir="/tmp")
    kernel = KernelProcess(data).start()
    tmp = tmp_path_factory.mktemp("json")
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path,
               AOS_AGENT_DATA=str(tmp / "agent-data"))
    env.pop("AOS_UNIVERSE", None)
    repo = tmp / "repo"
    repo.mkdir()
    (repo / "hello.py").write_text("print('hello')\n")

    async def prepare() -> str:
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            address = await (await admin.cas("default")).put(BLOB)
            await (await admin.journal("default")).append("j1", 0, 1, [b"text", BLOB])
            return address

    blob = run(prepare())
    for args in (["world", "create", "examples/counter", "--id", "c1"],
                 ["world", "send", "c1", "demo/CounterEvent@1", '{"by": 2}'],
                 ["world", "send", "c1", "demo/CellEvent@1", '{"by": 1, "id": "x"}']):
        subprocess.run([sys.executable, "-m", "aos.cli", *args], cwd=REPO, env=env, check=True, capture_output=True)
    (tmp / "in.txt").write_text("some text\n")
    try:
        yield {"kernel": kernel, "env": env, "blob": blob, "tmp": tmp, "repo": repo}
    finally:
        kernel.kill()


# (command path, arguments after `aos --json`, how the output is read: "doc" = one document, "lines" = one per line)
CASES = {
    "status": (("status",), ["status"], "doc"),
    "demo": (("demo",), ["demo"], "doc"),
    "cas put": (("cas", "put"), ["cas", "put", "{tmp}/in.txt"], "doc"),
    "cas get": (("cas", "get"), ["cas", "get", "{blob}"], "doc"),
    "cas get -o": (("cas", "get"), ["cas", "get", "{blob}", "-o", "{tmp}/out.bin"], "doc"),
    "journal append": (("journal", "append"), ["journal", "append", "j2", "a", "b"], "doc"),
    "journal read": (("journal", "read"), ["journal", "read", "j1"], "doc"),
    "journal ls": (("journal", "ls"), ["journal", "ls"], "doc"),
    "journal tail": (("journal", "tail"), ["journal", "tail", "j1", "--from", "0"], "tail:2"),
    "world create": (("world", "create"), ["world", "create", "examples/counter", "--id", "c9"], "doc"),
    "world ls": (("world", "ls"), ["world", "ls"], "doc"),
    "world send": (("world", "send"), ["world", "send", "c1", "demo/CounterEvent@1", '{"by": 1}'], "doc"),
    "world state": (("world", "state"), ["world", "state", "c1"], "doc"),
    "world state --key": (("world", "state"), ["world", "state", "c1", "demo/cells@1", "--key", '"x"'], "doc"),
    "world journal": (("world", "journal"), ["world", "journal", "c1"], "doc"),
    "world journal --tail": (("world", "journal"), ["world", "journal", "c1", "--tail"], "tail:3"),
    "world snapshot": (("world", "snapshot"), ["world", "snapshot", "c1"], "doc"),
    "world unquarantine": (("world", "unquarantine"), ["world", "unquarantine", "c1"], "doc"),
    "world fork": (("world", "fork"), ["world", "fork", "c1", "--id", "f1"], "doc"),
    "world pause": (("world", "pause"), ["world", "pause", "c1"], "doc"),
    "world resume": (("world", "resume"), ["world", "resume", "c1"], "doc"),  # right after pause: c1 goes on
    "agent run": (("agent", "run"), ["agent", "run", "--twin", "--repo", "{repo}", "--session", "j1", "look around"],
                  "lines"),
    "agent replay": (("agent", "replay"), ["agent", "replay", "r1", "--repo", "{repo}"], "lines"),
    "world manifest": (("world", "manifest"), ["world", "manifest", "c1"], "doc"),
    "world history": (("world", "history"), ["world", "history", "c1"], "doc"),
    "world propose": (("world", "propose"), ["world", "propose", "g-propose", "{patch}"], "doc"),
    "world shadow": (("world", "shadow"), ["world", "shadow", "g-shadow", "p1"], "doc"),
    "world approve": (("world", "approve"), ["world", "approve", "g-approve", "p1"], "doc"),
    "world reject": (("world", "reject"), ["world", "reject", "g-reject", "p1", "--reason", "no"], "doc"),
    "world apply": (("world", "apply"), ["world", "apply", "g-apply", "p1"], "doc"),
    "world rollback": (("world", "rollback"), ["world", "rollback", "g-rollback"], "doc"),
    "demiurge": (("demiurge",), ["demiurge", "--twin", "--bundle", "examples/counter", "counter",
                                 "what does this world hold?"], "lines"),
    "console": (("console",), ["console", "--listen", "127.0.0.1:0"], "tail:2"),
    # a kernel on shared storage (the directory backend): release and acquire
    "world release": (("world", "release"), ["world", "release", "s-release"], "doc"),
    "world acquire": (("world", "acquire"), ["world", "acquire", "s-acquire"], "doc"),
    # a local cluster (aos cluster up: etcd, S3, a scheduler, two hosts)
    "cluster up": (("cluster", "up"), ["cluster", "up", "--hosts", "1"], "doc"),
    "cluster status": (("cluster", "status"), ["cluster", "status"], "doc"),
    "cluster down": (("cluster", "down"), ["cluster", "down"], "doc"),
    "universe create": (("universe", "create"), ["universe", "create", "u-new", "--max-worlds", "5"], "doc"),
    "universe ls": (("universe", "ls"), ["universe", "ls"], "doc"),
    "universe rm": (("universe", "rm"), ["universe", "rm", "u-rm"], "doc"),
    "world where": (("world", "where"), ["world", "where", "u1/c1"], "doc"),
    "world move": (("world", "move"), ["world", "move", "u1/m1", "--to", "{other_host}"], "doc"),
}

# a manifest change for the governance cases: drop one of the counter's two routes
DROP_PY = json.dumps({"ops": [{"op": "remove", "section": "routing",
                               "value": {"event": "demo/CounterEvent@1", "workflow": "demo/counter_py@1"}}]})
# what each governance case's world went through first (each case has a world of its own)
GOVERNANCE_STEPS = {"g-propose": 0, "g-shadow": 1, "g-approve": 2, "g-reject": 1, "g-apply": 3, "g-rollback": 4}
STORAGE_CASES = {"world release", "world acquire"}
CLUSTER_CASES = {"cluster status", "universe create", "universe ls", "universe rm", "world where", "world move"}


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, prefix + (name,))
            return
    yield prefix


# run with --json where a job runs (a job takes the factory's twin model): tests/factory/test_factory_run.py
COVERED_BY_FACTORY_TESTS = {("factory", "run"), ("factory", "status"), ("factory", "explain"), ("factory", "ls"),
                            ("factory", "approve")}


def test_every_command_has_a_json_case():
    """Each command the CLI's parser knows is run by the parametrized test below (or the factory's tests)."""
    assert set(_commands(build_parser())) == {path for path, _, _ in CASES.values()} | COVERED_BY_FACTORY_TESTS


def _walk(value):
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _bytes_values(doc) -> list[bytes]:
    """Every ``{"$bytes": ...}`` in a document, decoded (a malformed one fails the test)."""
    found = []
    for value in _walk(doc):
        if isinstance(value, dict) and "$bytes" in value:
            assert set(value) == {"$bytes"}, value
            found.append(base64.b64decode(value["$bytes"], validate=True))
    return found


def _aos(env: dict, *args: str) -> subprocess.CompletedProcess:
    """``aos ARGS`` as a user runs it, which must succeed (a step that prepares a case)."""
    done = subprocess.run([sys.executable, "-m", "aos.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"aos {' '.join(args)}: {done.stderr}"
    return done


@pytest.fixture(scope="module")
def storage_kernel(tmp_path_factory) -> Iterator[dict]:
    """A kernel on shared storage (the directory backend, as `--storage file:///...` says) with two worlds,
    one of them released."""
    data = tempfile.mkdtemp(prefix="aosk-", dir="/tmp")
    shared = tmp_path_factory.mktemp("shared")
    kernel = KernelProcess(data, listen=[f"unix:{os.path.join(data, 'kernel.sock')}"],
                           extra_args=["--storage", f"file://{shared}", "--host-id", "h1"]).start()
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path)
    env.pop("AOS_UNIVERSE", None)
    try:
        for world in ("s-release", "s-acquire"):
            _aos(env, "world", "create", "examples/counter", "--id", world)
        _aos(env, "world", "release", "s-acquire")
        yield {"env": env}
    finally:
        kernel.kill()


def _cluster_env(root: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AOS_CONNECT", "AOS_TOKEN_FILE", "AOS_UNIVERSE"))}
    env["AOS_CLUSTER_DATA"] = root
    return env


def _cluster_up(root: str, hosts: int) -> tuple[dict, dict]:
    """`aos cluster up` into ROOT: its JSON document, and an environment that talks to its scheduler."""
    env = _cluster_env(root)
    up = json.loads(_aos(env, "--json", "cluster", "up", "--hosts", str(hosts)).stdout)
    scheduler = up["schedulers"][0]
    return up, {**env, "AOS_CONNECT": scheduler["address"], "AOS_TOKEN_FILE": scheduler["token"]}


def _cluster_down(env: dict) -> None:
    subprocess.run([sys.executable, "-m", "aos.cli", "cluster", "down"], cwd=REPO, env=_cluster_env(
        env["AOS_CLUSTER_DATA"]), capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict]:
    """A local cluster of two hosts with universe u1 holding worlds c1 and m1, and an empty universe u-rm."""
    if etcd_binary() is None:
        pytest.skip("etcd is not installed: `./run setup` installs Debian's etcd-server")
    root = tempfile.mkdtemp(prefix="aoscl-", dir="/tmp")
    up, env = _cluster_up(root, 2)
    try:
        _aos(env, "universe", "create", "u1")
        _aos(env, "universe", "create", "u-rm")
        for world in ("c1", "m1"):
            _aos(env, "world", "create", "examples/counter", "--universe", "u1", "--id", world)
        where = json.loads(_aos(env, "--json", "world", "where", "u1/m1").stdout)["placement"]["hostId"]
        other = next(h["id"] for h in up["hosts"] if h["id"] != where)
        yield {"env": env, "other_host": other}
    finally:
        _cluster_down(env)


def _governed(env: dict, world: str, steps: int) -> None:
    """Create WORLD and take a change of its manifest STEPS steps: propose, shadow, approve, apply."""
    _aos(env, "world", "create", "examples/counter", "--id", world)
    for step in ("propose", "shadow", "approve", "apply")[:steps]:
        _aos(env, "world", step, world, DROP_PY if step == "propose" else "p1")


@pytest.mark.parametrize("case", list(CASES))
def test_json_output_parses(setup, case, request):
    """`aos --json <command>` exits 0 and prints JSON (one document, or one per line for live views)."""
    env = setup["env"]
    fill = {"{tmp}": str(setup["tmp"]), "{blob}": setup["blob"], "{repo}": str(setup["repo"]), "{patch}": DROP_PY}
    if case == "agent replay":  # replays a session of its own
        subprocess.run([sys.executable, "-m", "aos.cli", "agent", "run", "--twin", "--repo", str(setup["repo"]),
                        "--session", "r1", "look around"], cwd=REPO, env=env, check=True,
                       capture_output=True, timeout=120)
    _, args, shape = CASES[case]
    world = args[2] if len(args) > 2 else ""
    if world in GOVERNANCE_STEPS:
        _governed(env, world, GOVERNANCE_STEPS[world])
    if case == "demiurge":
        env = dict(env, AOS_DEMIURGE_DATA=str(setup["tmp"] / "demiurge"))
        env.pop("AOS_CONNECT")  # --twin runs a kernel of its own
    if case in STORAGE_CASES:
        env = request.getfixturevalue("storage_kernel")["env"]
    if case in CLUSTER_CASES:
        found = request.getfixturevalue("cluster")
        env, fill = found["env"], {**fill, "{other_host}": found["other_host"]}
    if case in ("cluster up", "cluster down"):  # a cluster of its own: one that this case starts or stops
        if etcd_binary() is None:
            pytest.skip("etcd is not installed: `./run setup` installs Debian's etcd-server")
        env = _cluster_env(tempfile.mkdtemp(prefix="aoscl-", dir="/tmp"))
        if case == "cluster down":
            _cluster_up(env["AOS_CLUSTER_DATA"], 1)
        else:
            request.addfinalizer(lambda: _cluster_down(env))
    args = [fill.get(a, a).replace("{tmp}", str(setup["tmp"])) for a in args]
    command = [sys.executable, "-m", "aos.cli", "--json", *args]
    if shape.startswith("tail:"):
        docs = _follow(command, env, int(shape[5:]), exit_code=0 if case == "console" else 130)
    else:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        docs = [json.loads(done.stdout)] if shape == "doc" else [json.loads(line) for line in done.stdout.splitlines()]
    assert docs
    found = [b for doc in docs for b in _bytes_values(doc)]
    if case in ("cas get", "journal read", "journal tail"):
        assert BLOB in found  # the binary blob / record, whole
    if case in ("world journal", "world journal --tail"):
        assert found  # the ingress stamps' entropy
    if case == "demo":
        assert docs[0]["cas"]["get"] == {"$bytes": base64.b64encode(b"hello, worlds").decode()}


def _follow(command: list[str], env: dict, count: int, exit_code: int = 130) -> list:
    """Start a live view, read ``count`` lines, stop it with Ctrl-C (SIGINT): its lines, parsed. A live view
    exits 130 on Ctrl-C; a server (the console) stops cleanly, 0."""
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(count)]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == exit_code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert "Traceback" not in stderr
    assert all(line.endswith("\n") for line in lines), (lines, stderr)
    return [json.loads(line) for line in lines]


def test_dump_json_spells_bytes_one_way():
    """The CLI's one JSON writer turns bytes (at any depth) into {"$bytes": base64} and tuples into lists."""
    from aos.cli import dump_json

    assert json.loads(dump_json({"b": b"\x00\xff", "t": (1, [b""])})) == {"b": {"$bytes": "AP8="},
                                                                         "t": [1, [{"$bytes": ""}]]}

"""examples/clients/cxx, as its README says: ``make`` builds ``send-event`` from ``schemas/`` and it talks to a real kernel.

The build is the README's own command (``make -C examples/clients/cxx
BUILD=...``), into a private directory under /tmp keyed by the hash of the
schemas and the source, so reruns skip the compile. The binary then sends
events to worlds made with the ``aos`` CLI: a counter, a workflow that traps,
a world that does not exist.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "clients" / "cxx"

pytestmark = pytest.mark.cxx


@pytest.fixture(scope="module")
def send_event() -> Path:
    """The example binary, built by its Makefile (skipped, saying why, without the toolchain)."""
    for tool, package in (("capnp", "capnproto"), ("g++", "g++"), ("make", "make")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install {package} libcapnp-dev, or ./run setup)")
    if not Path("/usr/include/capnp/ez-rpc.h").is_file() and subprocess.run(
            ["pkg-config", "--exists", "capnp-rpc"], check=False).returncode != 0:
        pytest.skip("the Cap'n Proto C++ headers are not installed (apt-get install libcapnp-dev)")
    digest = hashlib.sha256()
    for path in sorted((REPO / "schemas").glob("*.capnp")) + [EXAMPLE / "send_event.c++", EXAMPLE / "Makefile"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    cache = Path(f"/tmp/aos-clients-cxx-{os.getuid()}")
    cache.mkdir(mode=0o700, exist_ok=True)
    if cache.stat().st_uid != os.getuid() or cache.stat().st_mode & 0o022:
        pytest.fail(f"{cache} is not private to this user")
    build = cache / digest.hexdigest()[:20]
    done = subprocess.run(["make", "-C", str(EXAMPLE), f"BUILD={build}"], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return build / "send-event"


def aos(kernel, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path)
    env.pop("AOS_UNIVERSE", None)
    return subprocess.run([sys.executable, "-m", "aos.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, check=True)


def run(binary: Path, kernel, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AOS_TOKEN", "AOS_UNIVERSE")}
    env["AOS_TOKEN_FILE"] = kernel.token_path
    return subprocess.run([str(binary), kernel.address, *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.timeout(600)  # a cold compile on a busy machine
def test_send_event_sends_reads_state_and_the_new_records(send_event, kernel):
    """The C++ client sends to a counter world, prints the step count, the state and the records it added."""
    aos(kernel, "world", "create", "examples/counter", "--id", "c1")
    done = run(send_event, kernel, "c1", "demo/CounterEvent@1", '{"by": 5}', "demo/counter@1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "event journaled at seq 1 (2 step(s), 0 effect(s) started)"
    assert lines[1] == 'demo/counter@1: {"count":5}'
    assert lines[2].startswith('  {"at":1,"kind":"event","schema":"demo/CounterEvent@1"')
    assert lines[3].startswith('  {"at":2,"changes":[["demo/counter@1",null,"sha256:')
    assert kernel.admin_token not in done.stdout + done.stderr
    # the Python CLI sees the same world
    assert '"count": 5' in aos(kernel, "world", "state", "c1", "demo/counter@1").stdout


def test_send_event_reports_traps_and_errors_like_the_cli(send_event, kernel, tmp_path):
    """A trap is printed with its workflow and message (exit 3 when all trapped); a bad world is one line, exit 1."""
    bundle = tmp_path / "boom"
    bundle.mkdir()
    (bundle / "boom.wasm").write_bytes(bytes(wasmtime.wat2wasm(
        '(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 1024))'
        ' (func (export "step") (param i32 i32) (result i64) unreachable))')))
    (bundle / "manifest.json").write_text(json.dumps({
        "version": 1, "schemas": {"demo/S@1": {"record": {}}, "demo/E@1": {"record": {"n": "int"}}},
        "modules": {"demo/boom@1": {"runtime": "wasm", "path": "boom.wasm", "hash": "auto"}},
        "workflows": {"demo/boom@1": {"module": "demo/boom@1", "state": "demo/S@1", "event": "demo/E@1"}},
        "routing": [{"event": "demo/E@1", "workflow": "demo/boom@1"}]}))
    aos(kernel, "world", "create", str(bundle), "--id", "b1")
    trapped = run(send_event, kernel, "b1", "demo/E@1", '{"n": 1}')
    assert trapped.returncode == 3, trapped.stderr
    assert trapped.stdout.splitlines()[1] == "trap in demo/boom@1: WorkflowTrap: wasm trap: unreachable"

    missing = run(send_event, kernel, "nope", "demo/E@1", '{"n": 1}')
    assert missing.returncode == 1
    assert missing.stderr == "send-event: aos.UnknownWorld: no world 'nope' in universe default\n"
    bad = run(send_event, kernel, "b1", "demo/E@1", '{"n": "x"}')
    assert bad.returncode == 1 and bad.stderr.startswith("send-event: aos.SchemaViolation: $.value.n")

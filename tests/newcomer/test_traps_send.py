"""Traps and error receipts where a user looks: ``aos world send``, ``aos world journal`` and aos-shell's ``journal``.

A newcomer's workflow that traps used to look like success (``event journaled``,
exit 0), and a failed effect showed as ``receipt error for sha256:...`` with no
reason. These tests do what that user did, with the real CLI and shell against
a real kernel: a bundle whose WASM module traps, and an HTTP effect whose
server is not there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wasmtime

REPO = Path(__file__).resolve().parents[2]

# a workflow that traps on every step: what a newcomer's buggy C compiles to in spirit
BOOM_WAT = """(module
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "step") (param i32 i32) (result i64) unreachable))"""


def _manifest() -> dict:
    state, event = "demo/CounterState@1", "demo/CounterEvent@1"
    return {
        "version": 1,
        "name": "demo/traps",
        "schemas": {state: {"record": {"count": "int"}},
                    event: {"record": {"by": "int", "id": {"option": "text"}}},
                    "demo/Boom@1": {"record": {"by": "int"}}},
        "modules": {"demo/counter_wasm@1": {"runtime": "wasm", "path": "counter.wasm", "hash": "auto"},
                    "demo/boom_wasm@1": {"runtime": "wasm", "path": "boom.wasm", "hash": "auto"}},
        "workflows": {"demo/counter@1": {"module": "demo/counter_wasm@1", "state": state, "event": event},
                      "demo/boom@1": {"module": "demo/boom_wasm@1", "state": state, "event": event},
                      "demo/boom_only@1": {"module": "demo/boom_wasm@1", "state": state, "event": "demo/Boom@1"}},
        "routing": [{"event": event, "workflow": "demo/counter@1"},
                    {"event": event, "workflow": "demo/boom@1"},
                    {"event": "demo/Boom@1", "workflow": "demo/boom_only@1"}],
    }


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A world whose CounterEvent reaches a working counter and a trapping workflow, and whose Boom reaches only the latter."""
    directory = tmp_path / "traps"
    directory.mkdir()
    shutil.copy(REPO / "examples" / "counter" / "counter.wasm", directory / "counter.wasm")
    (directory / "boom.wasm").write_bytes(bytes(wasmtime.wat2wasm(BOOM_WAT)))
    (directory / "manifest.json").write_text(json.dumps(_manifest(), indent=2))
    return directory


@pytest.fixture
def env(kernel) -> dict[str, str]:
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path)
    env.pop("AOS_UNIVERSE", None)
    return env


def aos(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aos.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def shell(kernel, env: dict[str, str], script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aos.shell", "--connect", kernel.address, "--token-file",
                           kernel.token_path, "-c", script], cwd=REPO, env=dict(env, NO_COLOR="1"),
                          capture_output=True, text=True, timeout=60, check=False)


def test_send_reports_each_trap_and_exits_3_only_when_every_workflow_trapped(env, bundle):
    """A trap is reported on stderr with its workflow and message; exit 0 if any workflow ran, 3 if all trapped."""
    assert aos(env, "world", "create", str(bundle), "--id", "t1").returncode == 0

    partial = aos(env, "world", "send", "t1", "demo/CounterEvent@1", '{"by": 2}')
    assert partial.returncode == 0, partial.stderr
    assert partial.stdout == "event journaled at seq 1\n"
    assert partial.stderr == "aos: trap in demo/boom@1: WorkflowTrap: wasm trap: unreachable\n"

    total = aos(env, "world", "send", "t1", "demo/Boom@1", '{"by": 1}')
    assert total.returncode == 3
    assert total.stdout.startswith("event journaled at seq ")
    lines = total.stderr.splitlines()
    assert lines[0] == "aos: trap in demo/boom_only@1: WorkflowTrap: wasm trap: unreachable"
    assert lines[1].startswith("aos: every workflow the event reached trapped (1 step(s))")
    assert "Traceback" not in total.stderr

    as_json = aos(env, "--json", "world", "send", "t1", "demo/Boom@1", '{"by": 1}')
    assert as_json.returncode == 3
    outcome = json.loads(as_json.stdout)["outcome"]
    assert outcome["steps"] == 1 and outcome["intents"] == 0
    assert outcome["traps"] == [{"workflow": "demo/boom_only@1", "key": "", "code": "WorkflowTrap",
                                 "message": "wasm trap: unreachable"}]

    # the working counter still counted, and a clean event reports nothing
    assert json.loads(aos(env, "--json", "world", "state", "t1", "demo/counter@1").stdout) == {
        "state": {"demo/counter@1": {"count": 2}}}


def test_a_clean_send_reports_no_trap(env):
    """An event no workflow traps on prints only the journal position, exits 0, and its outcome lists no trap."""
    assert aos(env, "world", "create", "examples/counter", "--id", "c1").returncode == 0
    sent = aos(env, "world", "send", "c1", "demo/CounterEvent@1", '{"by": 5}')
    assert (sent.returncode, sent.stdout, sent.stderr) == (0, "event journaled at seq 1\n", "")
    outcome = json.loads(aos(env, "--json", "world", "send", "c1", "demo/CounterEvent@1", '{"by": 1}').stdout)["outcome"]
    assert outcome == {"steps": 2, "traps": [], "intents": 0, "rejected": 0, "queued": False}


def test_journal_views_show_which_workflow_trapped_and_why(kernel, env, bundle):
    """`aos world journal` and the shell's `journal` show a trap's workflow, code and message."""
    assert aos(env, "world", "create", str(bundle), "--id", "t2").returncode == 0
    aos(env, "world", "send", "t2", "demo/CounterEvent@1", '{"by": 2}')
    want = "trap            demo/boom@1: WorkflowTrap: wasm trap: unreachable"
    cli = aos(env, "world", "journal", "t2")
    assert any(line.split(None, 1)[1] == want for line in cli.stdout.splitlines()[:-1]), cli.stdout
    seen = shell(kernel, env, "world t2; journal")
    assert seen.returncode == 0, seen.stderr
    assert any(line.split(None, 1)[1:] == [want] for line in seen.stdout.splitlines()), seen.stdout
    sent = shell(kernel, env, 'world t2; send demo/Boom@1 {"by": 1}')
    assert sent.returncode == 0, sent.stderr
    assert "trap in demo/boom_only@1: WorkflowTrap: wasm trap: unreachable" in sent.stdout


def _refusing_port() -> socket.socket:
    """A port bound but never listening: connecting to it is refused at once, and nobody else can take it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def _wait_for_receipt(env: dict[str, str], world: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = json.loads(aos(env, "--json", "world", "journal", world).stdout)["records"]
        receipts = [r for r in records if r["kind"] == "receipt"]
        if receipts:
            return receipts[0]
    raise AssertionError(f"no receipt in {world}'s journal within {timeout} s")


def test_journal_views_show_an_error_receipts_code_and_message(kernel, env):
    """A failed effect's receipt shows its error code and message in the CLI and in the shell, not just `error`."""
    closed = _refusing_port()
    try:
        assert aos(env, "world", "create", "examples/fetch-notify", "--id", "f1").returncode == 0
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/"
        assert aos(env, "world", "send", "f1", "demo/Fetch@1", json.dumps({"url": url})).returncode == 0
        receipt = _wait_for_receipt(env, "f1")
    finally:
        closed.close()
    assert receipt["status"] == "error"
    code, message = receipt["payload"]["error"], receipt["payload"]["message"]
    assert code == "connection_error" and message
    line = next(line for line in aos(env, "world", "journal", "f1").stdout.splitlines() if " receipt " in line)
    assert line.split(None, 2)[2] == f"error for {receipt['intent_hash'][:19]}: {code}: {message}"[:160]
    seen = shell(kernel, env, "world f1; journal")
    assert seen.returncode == 0, seen.stderr
    assert f"error for {receipt['intent_hash'][:19]}: {code}: " in seen.stdout


def test_send_help_documents_the_exit_statuses(env):
    """`aos world send --help` says what exit statuses 1 and 3 mean."""
    text = " ".join(aos(env, "world", "send", "--help").stdout.split())
    assert "1 if it was refused (nothing journaled)" in text
    assert "3 if it was journaled but every workflow it reached trapped" in text

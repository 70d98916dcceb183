"""``aos world ...`` as a user types it: subprocesses of the real CLI against a real kernel."""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def aos(kernel):
    """Run ``aos ARGS...`` in a subprocess pointed at the fixture kernel (cwd: the repo, so ``examples/...`` works)."""
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path)
    env.pop("AOS_UNIVERSE", None)

    def call(*args, check=True):
        done = subprocess.run([sys.executable, "-m", "aos.cli", *args], check=False, cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)
        if check:
            assert done.returncode == 0, f"aos {' '.join(args)} failed: {done.stderr}"
        return done

    def spawn(*args):
        return subprocess.Popen([sys.executable, "-m", "aos.cli", *args], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    call.spawn = spawn
    return call


def test_world_commands_create_send_read_snapshot_and_fork(aos):
    """create, send, state (human and --json), ls, journal, snapshot and fork all work from the command line."""
    created = aos("world", "create", "examples/counter", "--id", "c1")
    assert created.stdout.startswith("created world c1 (demo/counter)")

    sent = aos("world", "send", "c1", "demo/CounterEvent@1", '{"by": 5}')
    assert sent.stdout.strip() == "event journaled at seq 1"
    aos("world", "send", "c1", "demo/CellEvent@1", '{"by": 2, "id": "x"}')

    human = aos("world", "state", "c1").stdout
    assert "demo/counter@1: {" in human and '"count": 5' in human
    assert "demo/counter_py@1: {" in human and "demo/cells@1: {" in human and '"x": {' in human

    as_json = json.loads(aos("--json", "world", "state", "c1", "demo/counter@1").stdout)
    assert as_json == {"state": {"demo/counter@1": {"count": 5}}}
    keyed = json.loads(aos("world", "state", "c1", "demo/cells@1", "--key", '"x"', "--json").stdout)
    assert keyed == {"state": {"demo/cells@1": {"count": 2}}}

    table = aos("world", "ls").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "STATE", "JOURNAL", "LAST", "EVENT"]
    (row,) = [line.split() for line in table[1:] if line.split()[0] == "c1"]
    assert row[1:3] == ["demo/counter", "awake"]

    journal = aos("world", "journal", "c1").stdout.splitlines()
    assert journal[0].split()[:2] == ["0", "snapshot"]
    assert any(line.split()[1:3] == ["event", "demo/CounterEvent@1"] and '{"by": 5}' in line for line in journal)
    assert any(line.split()[1:] == ["state", "demo/counter@1,", "demo/counter_py@1"] for line in journal)
    assert journal[-1].startswith("(next seq ")

    snapshot = aos("world", "snapshot", "c1").stdout.split()
    assert snapshot[0] == "snapshot" and snapshot[1].startswith("sha256:") and len(snapshot[1]) == 71

    forked = aos("world", "fork", "c1", "--id", "c2")
    assert forked.stdout.startswith("forked world c2 (demo/counter (fork))")
    aos("world", "send", "c2", "demo/CounterEvent@1", '{"by": 1}')
    assert json.loads(aos("--json", "world", "state", "c2", "demo/counter@1").stdout) == {
        "state": {"demo/counter@1": {"count": 6}}}
    assert json.loads(aos("--json", "world", "state", "c1", "demo/counter@1").stdout) == {
        "state": {"demo/counter@1": {"count": 5}}}
    ids = [w["worldId"] for w in json.loads(aos("--json", "world", "ls").stdout)["worlds"]]
    assert sorted(ids) == ["c1", "c2"]


def test_world_command_errors_are_one_line_and_exit_1(aos):
    """A malformed value, an unknown world, an unknown schema and fs-notes without --grant-root each exit 1 with one 'aos: ' line."""
    aos("world", "create", "examples/counter", "--id", "c1")
    cases = {
        "malformed": ("world", "send", "c1", "demo/CounterEvent@1", '{"by": 5'),
        "unknown world": ("world", "state", "nope"),
        "unknown schema": ("world", "send", "c1", "demo/Nope@1", '{"by": 1}'),
        "no grant root": ("world", "create", "examples/fs-notes", "--id", "n1"),
    }
    errors = {}
    for what, args in cases.items():
        done = aos(*args, check=False)
        lines = done.stderr.splitlines()
        assert done.returncode == 1, (what, done.returncode, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("aos: "), (what, done.stderr)
        assert done.stdout == "", (what, done.stdout)
        errors[what] = lines[0]
    assert errors["unknown world"].startswith("aos: UnknownWorld: ")
    assert errors["unknown schema"].startswith("aos: SchemaViolation: ")
    assert "--grant-root" in errors["no grant root"]
    # nothing was journaled or created by the failures
    assert json.loads(aos("--json", "world", "state", "c1", "demo/counter@1").stdout) == {
        "state": {"demo/counter@1": None}}
    assert [w["worldId"] for w in json.loads(aos("--json", "world", "ls").stdout)["worlds"]] == ["c1"]


def test_world_journal_tail_follows_new_events_until_sigint(aos):
    """`aos world journal --tail` prints the journal so far, then an event sent by another aos process, and exits on SIGINT."""
    aos("world", "create", "examples/counter", "--id", "c1")
    tail = aos.spawn("world", "journal", "c1", "--tail")
    lines = queue.Queue()

    def pump():
        for line in tail.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()

    def wait_line(predicate, timeout=15.0):
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no such line from the tail; saw {seen}")

    try:
        first = wait_line(lambda line: True)
        assert first.split()[:2] == ["0", "snapshot"]
        aos("world", "send", "c1", "demo/CounterEvent@1", '{"by": 7}')
        event = wait_line(lambda line: "demo/CounterEvent@1" in line)
        assert event.split()[:2] == ["1", "event"] and '{"by": 7}' in event
        state = wait_line(lambda line: line.split()[1:2] == ["state"])
        assert state.split()[0] == "2"
        tail.send_signal(signal.SIGINT)
        code = tail.wait(15)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert code == 130, tail.stderr.read()


def test_world_state_of_a_fork_shows_the_inherited_state(aos):
    """`aos world state` of a fresh fork, with no workflow name given, shows the state it inherited from its source."""
    aos("world", "create", "examples/counter", "--id", "c1")
    aos("world", "send", "c1", "demo/CounterEvent@1", '{"by": 5}')
    aos("world", "fork", "c1", "--id", "c2")
    states = json.loads(aos("--json", "world", "state", "c2").stdout)["state"]
    assert states.get("demo/counter@1") == {"count": 5}

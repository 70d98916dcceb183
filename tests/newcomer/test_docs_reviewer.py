"""examples/reviewer/README.md, command by command: the reviewer runs as documented and its output means what it says.

A newcomer ran ``python examples/reviewer/agent.py`` and got an import error,
then a JSON document nothing said what to do with. These tests run the
documented commands as subprocesses: ``--offline`` (a stand-in model on
127.0.0.1, a real kernel, real file reads), ``aos agent replay`` of the
session it names, the bundle route onto a kernel of one's own, and the
message a Python without the project's packages gets.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aos.testing import KernelProcess

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "examples" / "reviewer" / "agent.py"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small repository to review: one file with a TODO in it."""
    repo = tmp_path / "calc"
    repo.mkdir()
    (repo / "calc.py").write_text("def add(a, b):\n    # TODO: check types\n    return a - b\n")
    return repo


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No provider keys or endpoints from the outside, and a private agent data directory."""
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["AOS_AGENT_DATA"] = str(tmp_path / "agents")
    return env


def _digest(tree: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(tree.rglob("*")):
        digest.update(str(path.relative_to(tree)).encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_the_offline_review_runs_prints_its_events_and_the_review(project, env):
    """`agent.py REPO --offline` exits 0, prints the tool calls, `review:` with the answer, and leaves the repo as it was."""
    before = _digest(project)
    done = _run([sys.executable, str(AGENT), str(project), "--offline"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"session review-\S+: anthropic \S+ reviewing .*calc \(offline stand-in model\)", lines[0])
    assert "[main #5] tool_call_start grep {'pattern': 'TODO|FIXME'}" in lines
    assert "[main #6] tool_call_end grep 'calc.py:2:    # TODO: check types'" in lines
    assert any(line.startswith("[main #10] tool_call_end read_file '1 | def add(a, b):") for line in lines)
    assert "[main #14] processing_end reason=completed turns=3" in lines
    review = lines.index("review:")
    assert lines[review + 1].startswith("I searched the repository and read calc.py (3 lines).")
    assert lines[-1].startswith("replay it with: .venv/bin/aos agent replay review-")
    assert "Traceback" not in done.stderr
    assert _digest(project) == before

    # the line it ends with works: the journal gives back the same events, with no model
    session = lines[-1].split()[6]
    replay = _run([sys.executable, "-m", "aos.cli", "agent", "replay", session, "--repo", str(project)], env)
    assert replay.returncode == 0, replay.stderr
    events = [line for line in lines if line.startswith("[main #")]
    assert replay.stdout.splitlines()[:len(events)] == events


def test_without_the_venv_it_says_how_to_run_it(project, env):
    """Run by a Python that cannot import aos, it prints the venv command in two lines instead of a traceback."""
    done = _run([sys.executable, "-S", str(AGENT), str(project)], env)  # -S: no site-packages, so no aos
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "reviewer: the aos package is not importable here; run it with the project's venv:",
        "    .venv/bin/python examples/reviewer/agent.py REPO   (./run setup creates .venv)"]


def _stand_in():
    spec = importlib.util.spec_from_file_location("reviewer_stand_in", REPO / "examples" / "reviewer" / "stand_in.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bundle_runs_on_a_kernel_of_ones_own(project, env, tmp_path, data_dir):
    """`--bundle DIR`, then `aos world create DIR` and `aos world send ... "$(cat DIR/start.json)"` run the review."""
    bundle = tmp_path / "review"
    wrote = _run([sys.executable, str(AGENT), str(project), "--bundle", str(bundle)], env)
    assert wrote.returncode == 0 and wrote.stdout == f"wrote {bundle}/manifest.json and {bundle}/start.json\n"

    stand_in = _stand_in()
    twin = stand_in.start()
    kernel = KernelProcess(data_dir, extra_args=["--grant-host", str(project)], env={**env, **stand_in.env(twin)})
    try:
        kernel.start()
        cli = {**env, "AOS_CONNECT": kernel.address, "AOS_TOKEN_FILE": kernel.token_path}
        aos = [sys.executable, "-m", "aos.cli"]
        created = _run(aos + ["world", "create", str(bundle), "--id", "review-1"], cli)
        assert created.returncode == 0, created.stderr
        sent = _run(aos + ["world", "send", "review-1", "agent/Command@1", (bundle / "start.json").read_text()], cli)
        assert sent.returncode == 0, sent.stderr
        deadline, kinds = time.monotonic() + 60, []
        while "processing_end" not in kinds and time.monotonic() < deadline:
            records = json.loads(_run(aos + ["--json", "world", "journal", "review-1"], cli).stdout)["records"]
            kinds = [r["value"]["kind"] for r in records if r["kind"] == "domain_event"]
        assert kinds[-1] == "processing_end", kinds
        assert kinds.count("tool_call_end") == 2
    finally:
        kernel.stop()
        twin.stop()

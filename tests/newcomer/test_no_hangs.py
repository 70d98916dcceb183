"""Nothing a newcomer starts waits forever: each of these ends with a clear message and a non-zero status.

- ``aos agent run ""`` (an empty task) is refused before anything starts;
- ``aos --json agent run ... | head -3`` ends once ``head`` has left, aborts
  the session and frees the repository for the next run;
- ``aos journal tail`` and ``aos world journal --tail`` end as soon as the
  kernel they follow stops.

Everything runs as the user ran it: real ``aos`` subprocesses, a real kernel,
a real shell pipeline; the agent's model is a provider twin on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall
from aos.testing import KernelProcess

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-test-no-hangs-0123456789"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("AOS_")}
    env.update(AOS_AGENT_DATA=str(tmp_path / "agent-data"), **extra)
    return env


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "app.py").write_text("print('hi')\n")
    return repo


def test_an_empty_task_is_refused_at_once(tmp_path):
    """`aos agent run --repo R ""` (or only spaces) exits 1 with one line, and starts no kernel."""
    repo = _repo(tmp_path)
    env = _env(tmp_path, ANTHROPIC_API_KEY="sk-not-used-0123456789")
    for task in ("", "   "):
        done = subprocess.run([sys.executable, "-m", "aos.cli", "agent", "run", "--repo", str(repo), task],
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert done.stderr.splitlines() == ['aos: InvalidArgument: the task is empty: say what the agent should do, '
                                            'e.g. aos agent run --repo . "make the failing test pass"']
    assert not (tmp_path / "agent-data").exists()


def test_agent_run_into_head_ends_and_frees_the_repository(tmp_path):
    """`aos --json agent run ... | head -3` ends with a non-zero status and a message once head left, and the
    next run on the repository starts (the kernel lock was released)."""
    repo = _repo(tmp_path)
    # the model's first tool call takes a while, so the session is still running when head leaves
    twin = ProviderTwin("anthropic", api_key=KEY).start()
    twin.script(ModelTurn(tool_calls=[ScriptedCall("shell", json.dumps({"command": "sleep 2; echo slow"}), id="c1")]))
    twin.repeat(ModelTurn(text="done"))
    env = _env(tmp_path, ANTHROPIC_BASE_URL=twin.base_url, ANTHROPIC_API_KEY=KEY)
    aos = f"{sys.executable} -m aos.cli"
    pipeline = (f"{aos} --json agent run --repo {repo} --session s1 'look around' | head -3; "
                "echo \"status=${PIPESTATUS[0]}\" >&2")
    try:
        done = subprocess.run(["bash", "-c", pipeline], env=env, capture_output=True, text=True, timeout=120)
    finally:
        twin.stop()
    assert len(done.stdout.splitlines()) == 3
    assert done.stderr.splitlines()[-1] == "status=1", done.stderr
    assert "aos: OutputClosed: standard output was closed (the reader of the pipe left): the session was aborted" \
        in done.stderr
    assert "Traceback" not in done.stderr
    again = subprocess.run([sys.executable, "-m", "aos.cli", "agent", "run", "--twin", "--repo", str(repo),
                            "--session", "s2", "look around"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    replay = subprocess.run([sys.executable, "-m", "aos.cli", "agent", "replay", "s1", "--repo", str(repo)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0, replay.stderr
    assert "session_end pending=" in replay.stdout and "reason=aborted" in replay.stdout


def test_tails_end_when_the_kernel_stops(data_dir):
    """`aos journal tail` and `aos world journal --tail` exit 1 with one line as soon as their kernel stops."""
    kernel = KernelProcess(data_dir).start()
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path)
    env.pop("AOS_UNIVERSE", None)
    aos = [sys.executable, "-m", "aos.cli"]
    try:
        subprocess.run(aos + ["world", "create", "examples/counter", "--id", "c1"], cwd=REPO, env=env, check=True,
                       capture_output=True)
        subprocess.run(aos + ["journal", "append", "j1", "first"], cwd=REPO, env=env, check=True, capture_output=True)
        tails = {what: subprocess.Popen(aos + args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
                 for what, args in (("raw journal j1", ["journal", "tail", "j1", "--from", "0"]),
                                    ("world c1", ["world", "journal", "c1", "--tail"]))}
        for tail in tails.values():
            assert tail.stdout.readline()  # following: it printed what is there
        assert kernel.stop() == 0
        for what, tail in tails.items():
            _, err = tail.communicate(timeout=30)
            assert tail.returncode == 1
            assert err.splitlines() == [f"aos: KernelUnavailable: the kernel closed the connection while following "
                                        f"{what} (it stopped, or the network broke)"]
    finally:
        kernel.kill()
        for tail in locals().get("tails", {}).values():
            if tail.poll() is None:
                tail.kill()
                tail.wait()

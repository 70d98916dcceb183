"""Trying the agent without an API key: a setup error at once, and ``--twin`` to try it offline.

Without a key ``aos agent run`` stops before anything starts and names the
variable the README names. ``aos agent run --twin`` runs the whole thing (a
kernel for the repository, the session world, grants, tool effects, the
journal) against a scripted provider twin on 127.0.0.1, for each provider,
and ``aos agent replay`` prints it back; replay needs no ``--repo`` inside
the repository and says to pass it elsewhere, and it does not import litellm
(whose import was most of the 4-6 s a replay took).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aos.cli_twin import NOTES

README = Path(__file__).resolve().parents[2] / "README.md"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_API_KEY", "_BASE_URL")) and not k.startswith("AOS_")}
    env["AOS_AGENT_DATA"] = str(tmp_path / "agent-data")
    return env


def _aos(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aos.cli", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("provider, variable", [("anthropic", "ANTHROPIC_API_KEY"), ("openai", "OPENAI_API_KEY"),
                                                ("gemini", "GEMINI_API_KEY")])
def test_no_api_key_is_a_setup_error_before_the_run(tmp_path, provider, variable):
    """With no key, the run exits 1 with one line naming the README's variable and --twin, and starts no kernel."""
    repo = tmp_path / "repo"
    repo.mkdir()
    done = _aos("agent", "run", "--provider", provider, "--repo", str(repo), "fix it", env=_env(tmp_path))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"aos: NotConfigured: no API key for {provider}: set {variable} (or try the "
                                        "agent offline, no key needed: aos agent run --twin ...)"]
    assert variable in README.read_text()  # the variable the README tells users to set
    assert not (tmp_path / "agent-data").exists()


@pytest.mark.parametrize("provider", ["anthropic", "openai", "gemini"])
def test_twin_runs_the_agent_offline_and_replay_prints_it(tmp_path, provider):
    """`aos agent run --twin` edits the repository through the real kernel and exits 0; replay prints the same
    events, from the repository without --repo."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "app.py").write_text("print('hi')\n")
    env = _env(tmp_path)
    run = _aos("agent", "run", "--twin", "--provider", provider, "--repo", str(repo), "--session", "t1",
               "write down the task", env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    notes = (repo / NOTES).read_text()
    assert "Task: write down the task" in notes
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"session t1: {provider} ") and lines[0].endswith(f"(offline twin) in {repo}")
    assert any("tool_call_start shell" in line and "ls -A" in line for line in lines)
    assert any("tool_call_end write_file" in line for line in lines)
    assert lines[-2] == ("processing_end (completed): 4 turn(s), 3 tool call(s), 40 input + 20 output tokens, "
                         "cost $0 (offline twin)")
    replay = _aos("agent", "replay", "t1", env=env, cwd=repo)
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.splitlines()[:-1] == lines[1:-2]


def test_replay_outside_the_repository_asks_for_repo(tmp_path):
    """`aos agent replay S` run elsewhere than the session's repository says to pass --repo."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _aos("agent", "replay", "t1", env=_env(tmp_path), cwd=elsewhere)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"aos: UnknownWorld: no agent sessions for {elsewhere}: pass --repo REPO, "
                                        "the repository the session ran in"]


def test_replay_does_not_import_litellm(tmp_path):
    """Replaying a session (cost line included) never imports litellm, the ~3 s import that made replay slow."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = _env(tmp_path)
    assert _aos("agent", "run", "--twin", "--repo", str(repo), "--session", "t1", "go", env=env).returncode == 0
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "aos.cli", "agent", "replay", "t1", "--repo",
                           str(repo)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert re.search(r"cost \$\d+\.\d{4}$", done.stdout.splitlines()[-1])  # priced without it
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "aos.agents" in imported and not any(name.split(".")[0] == "litellm" for name in imported)

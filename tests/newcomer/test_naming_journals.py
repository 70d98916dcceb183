"""Raw journals and worlds are named apart in the CLI, ``aos status`` and aos-shell.

The user's report: ``aos journal append victim ...`` wrote something that
looked like it belonged to world ``victim``, and ``aos status`` counted raw
journals as worlds (12 against ``aos world ls``'s 10). These tests repeat
that with the real CLI and shell against a real kernel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(kernel) -> dict[str, str]:
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path)
    env.pop("AOS_UNIVERSE", None)
    return env


def aos(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aos.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_status_counts_worlds_and_raw_journals_apart(kernel, env):
    """Two worlds and three raw journals (one named like a world) are reported as 2 worlds and 3 raw journals."""
    for world in ("victim", "other"):
        assert aos(env, "world", "create", "examples/counter", "--id", world).returncode == 0
    for name in ("victim", "log-a", "log-b"):
        appended = aos(env, "journal", "append", name, "x")
        assert appended.stdout == f"appended 1 record(s) to journal {name} at seq 0\n"

    human = aos(env, "status").stdout.splitlines()
    assert "  worlds 2  raw journals 3  " in human[1], human
    status = json.loads(aos(env, "--json", "status").stdout)
    assert (status["hostedWorlds"], status["rawJournals"]) == (2, 3)
    assert len(json.loads(aos(env, "--json", "world", "ls").stdout)["worlds"]) == status["hostedWorlds"]

    shell = subprocess.run([sys.executable, "-m", "aos.shell", "--connect", kernel.address, "--token-file",
                            kernel.token_path, "-c", "status"], cwd=REPO, env=dict(env, NO_COLOR="1"),
                           capture_output=True, text=True, timeout=60, check=False)
    rows = [" ".join(line.split()) for line in shell.stdout.splitlines()]
    assert "worlds 2, all universes" in rows, shell.stdout
    assert any(row.startswith("raw journals 3, all universes") for row in rows), shell.stdout


def test_a_raw_journal_named_like_a_world_does_not_touch_the_world(env):
    """Appending to raw journal `victim` leaves world `victim`'s journal as it was; each listing shows only its own kind."""
    assert aos(env, "world", "create", "examples/counter", "--id", "victim").returncode == 0
    before = json.loads(aos(env, "--json", "world", "journal", "victim").stdout)
    assert aos(env, "journal", "append", "victim", "not", "a", "world").returncode == 0
    assert json.loads(aos(env, "--json", "world", "journal", "victim").stdout) == before

    assert aos(env, "journal", "ls").stdout == "victim\n"  # the raw journal, not the world
    assert json.loads(aos(env, "--json", "journal", "ls").stdout) == {"journals": ["victim"]}
    assert aos(env, "journal", "read", "victim").stdout.splitlines()[0].split() == ["0", "not"]

    missing = aos(env, "journal", "read", "other")
    assert missing.returncode == 1
    assert missing.stderr == "aos: UnknownWorld: no journal 'other' in universe default\n"


def test_help_texts_say_raw_journal_and_point_to_world_journal(env):
    """`aos --help` and `aos journal --help` call the unit a raw journal and send world readers to `aos world journal`."""
    top = aos(env, "--help").stdout
    assert "raw journals" in top and "world journals" not in top
    sub = " ".join(aos(env, "journal", "--help").stdout.split())
    assert "Raw journals of the Journal service" in sub and "aos world journal ID" in sub
    assert "list raw journals" in sub
    append = aos(env, "journal", "append", "--help").stdout
    assert "JOURNAL" in append and "WORLD" not in append

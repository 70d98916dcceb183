"""Governance and the Demiurge from the command line: ``aos world propose|...``, aos-shell, ``aos demiurge``.

Real processes throughout: the CLI and the shell against a real kernel, and
``aos demiurge --twin`` with the kernel and twin it starts itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from demikit import EXAMPLES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DROP_PY = {"ops": [{"op": "remove", "section": "routing",
                    "value": {"event": "demo/CounterEvent@1", "workflow": "demo/counter_py@1"}}]}
BAD = {"ops": [
    {"op": "add", "section": "schemas", "name": "demo/T@1", "value": {"record": {"total": "int"}}},
    {"op": "add", "section": "workflows", "name": "demo/t@1",
     "value": {"module": "demo/counter_py@1", "state": "demo/T@1", "event": "demo/CounterEvent@1"}},
    {"op": "add", "section": "routing", "value": {"event": "demo/CounterEvent@1", "workflow": "demo/t@1"}}]}


def aos(kernel, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aos.cli", "--connect", kernel.address, "--token-file",
                           kernel.token_path, *args], cwd=REPO, input=stdin, capture_output=True, text=True,
                          timeout=90, check=False)


def test_the_cli_walks_a_change_from_propose_to_apply_and_back(kernel):
    """propose, shadow, approve, apply, history, rollback and manifest print what happened and exit 0."""
    assert aos(kernel, "world", "create", str(EXAMPLES / "counter"), "--id", "c").returncode == 0
    for by in (1, 2):
        assert aos(kernel, "world", "send", "c", "demo/CounterEvent@1", json.dumps({"by": by})).returncode == 0
    proposed = aos(kernel, "world", "propose", "c", "-", "--reason", "one counter is enough", stdin=json.dumps(DROP_PY))
    assert proposed.returncode == 0, proposed.stderr
    assert proposed.stdout.splitlines()[1:] == ["  - routing demo/CounterEvent@1 -> demo/counter_py@1",
                                                "next: aos world shadow c p1"]
    shadowed = aos(kernel, "world", "shadow", "c", "p1")
    assert shadowed.returncode == 0
    assert shadowed.stdout.splitlines()[:2] == ["shadow run of p1 on 2 event(s): no problems",
                                                '  state demo/counter_py@1: {"count": 6} -> {"count": 3}']
    assert aos(kernel, "world", "approve", "c", "p1").stdout == "proposal p1 approved\n"
    applied = aos(kernel, "world", "apply", "c", "p1")
    assert applied.returncode == 0 and applied.stdout.startswith("proposal p1 applied: world c runs manifest sha256:")
    history = aos(kernel, "world", "history", "c", "--json")
    assert [c["op"] for c in json.loads(history.stdout)["history"]["history"]] == ["apply"]
    rolled = aos(kernel, "world", "rollback", "c")
    assert rolled.returncode == 0 and rolled.stdout.startswith("rolled back: world c runs manifest")
    manifest = json.loads(aos(kernel, "world", "manifest", "c").stdout)
    assert {"event": "demo/CounterEvent@1", "workflow": "demo/counter_py@1"} in manifest["routing"]


def test_a_shadow_run_with_problems_exits_3_and_approve_is_refused_in_one_line(kernel):
    """A patch that breaks a step: shadow lists the problems and exits 3; approve fails with one line, status 1."""
    aos(kernel, "world", "create", str(EXAMPLES / "counter"), "--id", "c")
    aos(kernel, "world", "send", "c", "demo/CounterEvent@1", '{"by": 1}')
    aos(kernel, "world", "propose", "c", json.dumps(BAD))
    shadowed = aos(kernel, "world", "shadow", "c", "p1")
    assert shadowed.returncode == 3
    assert shadowed.stdout.splitlines()[0] == "shadow run of p1 on 1 event(s): 1 problem(s)"
    assert "problem: schema_violation in demo/t@1: SchemaViolation" in shadowed.stdout
    approved = aos(kernel, "world", "approve", "c", "p1")
    assert approved.returncode == 1 and approved.stdout == ""
    assert approved.stderr.startswith("aos: GovernanceError: proposal p1's shadow run found 1 problem(s)")
    assert approved.stderr.count("\n") == 1
    bad_json = aos(kernel, "world", "propose", "c", "{not json")
    assert bad_json.returncode == 1 and bad_json.stderr.startswith("aos: InvalidArgument: the patch is not valid JSON")


def test_the_shell_governs_the_world_it_is_in(kernel):
    """In aos-shell, propose, shadow, approve, apply and history work on the current world."""
    script = ("create examples/counter --id s; world s; send demo/CounterEvent@1 {\"by\": 5}; "
              f"propose --reason tidy {json.dumps(DROP_PY)}; shadow p1; approve p1; apply p1; history")
    done = subprocess.run([sys.executable, "-m", "aos.shell", "--connect", kernel.address, "--token-file",
                           kernel.token_path, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=90,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "proposal p1 for world s: manifest sha256:" in done.stdout
    assert "shadow run of p1 on 1 event(s): no problems" in done.stdout
    assert "proposal p1 applied: world s runs manifest" in done.stdout
    assert "  p1    applied   - routing demo/CounterEvent@1 -> demo/counter_py@1, shadow ok  (tidy)" in done.stdout


def test_aos_demiurge_twin_reads_a_world_offline_and_an_unknown_world_is_one_line(tmp_path):
    """``--twin`` starts its own kernel and twin, answers from the world's overview, exits 0; a typo is one line."""
    env = dict(os.environ, AOS_DEMIURGE_DATA=str(tmp_path / "dm"))
    for name in [k for k in env if k.endswith("_API_KEY")]:
        env.pop(name)
    args = [sys.executable, "-m", "aos.cli", "demiurge", "--twin", "--bundle", str(EXAMPLES / "counter"), "counter"]
    done = subprocess.run([*args, "what is this world?"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    answer = [line for line in done.stdout.splitlines() if line.startswith("World counter runs manifest")]
    assert answer and "3 workflow(s)" in answer[0] and "Governance: 0 proposal(s)" in answer[0]
    assert done.stdout.splitlines()[-1].startswith("processing_end (completed): 3 turn(s), 2 tool call(s)")
    missing = subprocess.run([sys.executable, "-m", "aos.cli", "demiurge", "--twin", "nope", "hello"], cwd=REPO,
                             env=env, capture_output=True, text=True, timeout=120, check=False)
    assert missing.returncode == 1 and missing.stderr.endswith("aos: UnknownWorld: no world 'nope' in universe "
                                                               "default\n")

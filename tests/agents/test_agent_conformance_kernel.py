"""The agent conformance rows G1-G18 (docs/agents.md) that need the kernel: real files, real
processes, real provider wires. Each scenario x profile is one ``aos agent run`` against a provider
twin; all are launched concurrently when the module's first test starts and each test waits for its own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agentkit import (
    KEY,
    PROVIDERS,
    AgentRun,
    Router,
    ScriptedModel,
    agent_env,
    call,
    error_flags,
    launch_selected,
    make_repo,
    run_agent,
)
from aos.adapters.llm.testing import (
    ErrorReply,
    ModelTurn,
    ProviderTwin,
    ScriptedCall,
    Turn,
)


def expect(condition: bool, message: str) -> None:
    """An assertion inside a scripted step: it ends the run with a model error that ``check`` reports."""
    if not condition:
        raise AssertionError(message)


# -- scenarios: (files, steps) per provider ----------------------------------------------------------
MOVE_PATCH = ("*** Begin Patch\n"
              "*** Add File: new.txt\n+created\n"
              "*** Update File: keep.txt\n@@\n one\n-two\n+TWO\n"
              "*** Update File: old.txt\n*** Move to: moved/renamed.txt\n@@\n-old body\n+moved body\n"
              "*** Delete File: gone.txt\n"
              "*** End Patch\n")


def g2_files(provider: str):
    """Create, read, edit: OpenAI's patch adds/updates/moves/deletes; edit_file is unique, ambiguous, replace_all."""
    if provider == "openai":
        files = {"keep.txt": "one\ntwo\n", "old.txt": "old body\n", "gone.txt": "bye\n"}
        steps = [[call("write_file", file_path="made.txt", content="made ✓ é\n")],
                 [call("read_file", file_path="made.txt")],
                 lambda s: (expect("1 | made ✓ é" in s.last, s.last), [call("apply_patch", patch=MOVE_PATCH)])[1],
                 [call("read_file", file_path="moved/renamed.txt")],
                 lambda s: (expect("moved body" in s.last, s.last), "G2=OK")[1]]
        return files, steps
    files = {"vals.py": "x = 1\nx = 1\ny = 2\n"}
    steps = [[call("write_file", file_path="made.txt", content="made ✓ é\n")],
             [call("read_file", file_path="made.txt")],
             [call("edit_file", file_path="vals.py", old_string="x = 1", new_string="x = 3")],  # ambiguous
             lambda s: (expect("not unique" in s.last and "replace_all" in s.last, s.last),
                        [call("edit_file", file_path="vals.py", old_string="x = 1", new_string="x = 3",
                              replace_all=True)])[1],
             [call("edit_file", file_path="vals.py", old_string="y = 2", new_string="y = 4")],
             "G2=OK"]
    return files, steps


BAD_PATCH = ("*** Begin Patch\n"
             "*** Update File: a.txt\n@@\n-alpha\n+ALPHA\n"
             "*** Update File: b.txt\n@@\n-this line is not in b\n+whatever\n"
             "*** End Patch\n")


def g3_files(provider: str):
    """A patch whose second operation fails changes no file; the error the model sees names the file."""
    return ({"a.txt": "alpha\n", "b.txt": "beta\n"},
            [[call("apply_patch", patch=BAD_PATCH)],
             lambda s: (expect("b.txt" in s.last, s.last), "G3=SAW_ERROR")[1]])


def g5_files(provider: str):
    """An unknown tool and bad arguments become error results; the loop goes on."""
    return ({"f.txt": "ok\n"},
            [[call("no_such_tool", x=1), ScriptedCall("read_file", '{"offset": 1}')],
             [call("read_file", file_path="f.txt")],
             "G5=OK"])


TIMEOUT_CMD = "echo $$ > shell.pid; sleep 30 & echo $! > child.pid; echo started; wait"


def g6_files(provider: str):
    """Shell: exit code, stdout and stderr reach the model; no API key in env; a timeout kills the command."""
    return ({},
            [[call("shell", command="echo out-line; echo err-line >&2; exit 3")],
             [call("shell", command="env")],
             [call("shell", command=TIMEOUT_CMD, timeout_ms=500)],
             "G6=OK"])


HANDSHAKE = ("touch {me}.ready; for i in $(seq 100); do test -e {other}.ready && {{ echo {me}-saw-{other}; "
             "exit 0; }}; sleep 0.05; done; echo {me}-alone; exit 1")


def g4_files(provider: str):
    """Two shell calls in one response that each wait for the other, and a read: all at once, results in order."""
    return ({"r.txt": "third\n"},
            [[call("shell", command=HANDSHAKE.format(me="A", other="B"), timeout_ms=8000),
              call("shell", command=HANDSHAKE.format(me="B", other="A"), timeout_ms=8000),
              call("read_file", file_path="r.txt")],
             "G4=OK"])


def g7_files(provider: str):
    """grep: case_insensitive, glob_filter, no match; glob: newest first, no match."""
    return ({"src/a.py": "NEEDLE = 1\n", "src/b.txt": "needle here\n", "logs/old.log": "o\n", "logs/new.log": "n\n"},
            [[call("grep", pattern="needle", case_insensitive=True),
              call("grep", pattern="needle", case_insensitive=True, glob_filter="*.py"),
              call("grep", pattern="absent-[0-9]{9}"),
              call("glob", pattern="logs/*.log"),
              call("glob", pattern="**/*.none")],
             "G7=OK"])


def g8_files(provider: str):
    """A 100k-character read and a 300-line shell output: the model gets them truncated."""
    big = "".join(f"line-{n:04d} " + "x" * 89 + "\n" for n in range(1, 1001))
    return ({"big.txt": big}, [[call("read_file", file_path="big.txt"), call("shell", command="seq 1 300")],
                               "G8=OK"])


def g18_files(provider: str):
    """Provider state on a tool-call response (reasoning signature, thought signature, call id) comes back."""
    turn = ModelTurn(tool_calls=[ScriptedCall("read_file", '{"file_path": "f.txt"}', id="call_fidelity_1",
                                              signature="sig-gemini-G18" if provider == "gemini" else None)],
                     reasoning="I should read f.txt" if provider != "gemini" else None,
                     reasoning_signature={"openai": "enc-openai-G18", "anthropic": "sig-anthropic-G18"}.get(provider))
    return {"f.txt": "fidelity\n"}, [turn, "G18=OK"]


def scope_files(provider: str):
    """File tools outside the repository: a read by absolute path and a write through ``..`` are refused."""
    outside = "{work}/outside.txt"  # made absolute in _start
    return ({"in.txt": "inside\n"},
            [[call("read_file", file_path=outside), call("write_file", file_path="../escaped.txt", content="x\n"),
              call("read_file", file_path="{repo}/in.txt")],
             "SCOPE=OK"])


def g10_files(provider: str):
    """A model that never stops calling tools, run with ``--max-turns 2``."""
    return {"f.txt": "x\n"}, [[call("read_file", file_path="f.txt")], [call("shell", command="true")], "unreached"]


def g12_files(provider: str):
    """The same call ten times in a row, then an answer."""
    return {"f.txt": "same\n"}, [[call("read_file", file_path="f.txt")]] * 10 + ["LOOP=SEEN"]


def g15_files(provider: str):
    """A 429 is retried inside the LLM adapter; the session then goes on."""
    return {}, [ErrorReply(429, "slow down", headers={"retry-after": "0"}), [call("shell", command="echo after-429")],
                "G15=OK"]


def g15_auth_files(provider: str):
    """A 401 whose message echoes the key: the session ends with an error, no retry, and the key never shows."""
    return {}, [ErrorReply(401, "Incorrect API key provided: {api_key}")]


DOCS = {"AGENTS.md": "DOC-AGENTS-7731\n", "CLAUDE.md": "DOC-CLAUDE-7731\n", "GEMINI.md": "DOC-GEMINI-7731\n",
        ".codex/instructions.md": "DOC-CODEX-7731\n"}
OWN_DOC = {"openai": "DOC-CODEX-7731", "anthropic": "DOC-CLAUDE-7731", "gemini": "DOC-GEMINI-7731"}


def g17_files(provider: str):
    """Project docs in the repository: AGENTS.md and every provider's own file."""
    return dict(DOCS), ["G17=OK"]


CHILD_TASK = "CHILD-TASK-4242: write child.txt"


def g14_files(provider: str):
    """The parent spawns a subagent, waits for it, and answers with what it said; the child writes a file."""
    parent = [[call("spawn_agent", task=CHILD_TASK)],
              lambda s: [call("wait", agent_id=json.loads(s.last)["agent_id"])],
              lambda s: "PARENT-SAW: " + json.loads(s.last)["output"]]
    child = [[call("write_file", file_path="child.txt", content="from the child\n")], "CHILD-DONE-4242"]
    return {}, (parent, child)


SCENARIOS = {"G14": g14_files, "SCOPE": scope_files, "G10": g10_files, "G12": g12_files, "G15": g15_files, "G15auth": g15_auth_files,
             "G17": g17_files, "G2": g2_files, "G3": g3_files, "G4": g4_files, "G5": g5_files, "G6": g6_files, "G7": g7_files,
             "G8": g8_files, "G18": g18_files}
MATRIX = [(g, p) for g in SCENARIOS for p in PROVIDERS if not (g == "G3" and p != "openai")]


def _start(row: str, provider: str, work) -> AgentRun:
    files, steps = SCENARIOS[row](provider)
    repo = make_repo(work, files)
    if row == "SCOPE":  # absolute paths: a secret next to the repository, and the repository's own file
        (work / "outside.txt").write_text("SECRET-OUTSIDE\n")
        steps[0] = [ScriptedCall(c.name, c.arguments.replace("{work}", str(work)).replace("{repo}", str(repo)))
                    for c in steps[0]]
    if row == "G7":  # newest first needs distinct mtimes
        os.utime(repo / "logs/old.log", (time.time() - 3600, time.time() - 3600))
    started = time.monotonic()
    extra = ["--max-turns", "2"] if row == "G10" else []
    model = None
    if row == "G14":
        parent, child = steps
        steps, model = parent, Router(ScriptedModel(provider, parent), {CHILD_TASK: ScriptedModel(provider, child)})
    run = run_agent(provider, repo, steps, work, task=f"conformance {row}", session=row.lower(), extra=extra,
                    model=model)
    run.wall = time.monotonic() - started  # type: ignore[attr-defined]
    return run


@pytest.fixture(scope="module")
def launched(request, tmp_path_factory) -> dict:
    """Every selected row x provider of this module, started at once in the background."""
    return launch_selected(request, tmp_path_factory, ("row", "provider"), _start)


def get(launched, row: str, provider: str, **check) -> AgentRun:
    return launched[(row, provider)].result(timeout=110).check(**check)


def wait_until(predicate, timeout: float = 10.0, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def param(row: str):
    return pytest.mark.parametrize("row,provider", [(g, p) for g, p in MATRIX if g == row])


# -- grants ----------------------------------------------------------------------------------------
@param("SCOPE")
def test_file_tools_outside_the_repository_are_refused(row, provider, launched):
    """The session's grants cover the repository only: reading a file next to it and writing through ``..``
    are error results and touch nothing, while an absolute path inside the repository works."""
    run = get(launched, row, provider)
    outside, _escaped, inside = run.requests[1].new(3)
    assert "SECRET-OUTSIDE" not in outside, outside
    assert [e["is_error"] for e in run.tool_ends()] == [True, True, False], run.tool_ends()
    assert not (run.repo.parent / "escaped.txt").exists()
    assert "1 | inside" in inside


# -- G2 / G3 -----------------------------------------------------------------------------------------
@param("G2")
def test_g2_file_tools_really_change_files_and_ambiguity_is_an_error_result(row, provider, launched):
    """write_file, read_file and the profile's edit tool change the files on disk; an ambiguous edit_file is an
    is_error result naming replace_all that the model is sent, and changes nothing."""
    run = get(launched, row, provider)
    repo = run.repo
    assert (repo / "made.txt").read_bytes() == "made ✓ é\n".encode()
    if provider == "openai":
        assert (repo / "new.txt").read_text() == "created\n"
        assert (repo / "keep.txt").read_text() == "one\nTWO\n"
        assert (repo / "moved/renamed.txt").read_text() == "moved body\n"
        assert not (repo / "old.txt").exists() and not (repo / "gone.txt").exists()
        patch_end = run.tool_ends("apply_patch")[0]
        assert not patch_end["is_error"]
        assert all(x in patch_end["output"] for x in ("A new.txt", "M keep.txt", "D gone.txt", "R old.txt"))
        return
    assert (repo / "vals.py").read_text() == "x = 3\nx = 3\ny = 4\n"
    edits = run.tool_ends("edit_file")
    assert [e["is_error"] for e in edits] == [True, False, False]
    assert "not unique" in edits[0]["output"] and "found 2" in edits[0]["output"]
    assert "2 replacements" in edits[1]["output"] and "1 replacement" in edits[2]["output"]
    ambiguous_sent = run.requests[3]  # the request after the ambiguous edit
    assert "not unique" in ambiguous_sent.last
    if provider == "anthropic":
        assert error_flags(provider, ambiguous_sent.body)[-1] is True


@param("G3")
def test_g3_a_patch_with_a_failing_operation_changes_no_file(row, provider, launched):
    """A patch whose second operation does not apply leaves every file as it was, and the error result the
    model is sent names the failing file."""
    run = get(launched, row, provider)
    assert (run.repo / "a.txt").read_text() == "alpha\n"  # the first operation was valid, yet not applied
    assert (run.repo / "b.txt").read_text() == "beta\n"
    (end,) = run.tool_ends("apply_patch")
    assert end["is_error"] and "b.txt" in end["output"] and "hunk 1" in end["output"], end
    assert "b.txt" in run.requests[1].last


# -- G5 ----------------------------------------------------------------------------------------------
@param("G5")
def test_g5_unknown_tool_and_bad_arguments_are_error_results_and_the_loop_continues(row, provider, launched):
    """An unknown tool and a call missing a required argument each become an error result the model is
    sent, in call order, and the session goes on to the next tool round."""
    run = get(launched, row, provider)
    first = run.requests[1].new(2)
    assert "Unknown tool" in first[0] and "no_such_tool" in first[0], first
    assert "Invalid arguments" in first[1] and "file_path" in first[1], first
    ends = run.tool_ends()
    assert [e["is_error"] for e in ends] == [True, True, False]
    assert "1 | ok" in run.requests[2].last


# -- G6 ----------------------------------------------------------------------------------------------
@param("G6")
def test_g6_shell_reports_exit_code_and_streams_and_kills_a_command_past_its_timeout(row, provider, launched):
    """The model is sent the exit code, stdout and stderr of a failing command; the command's environment has
    no API key; a command past timeout_ms is reported with the timeout marker and its background child dies."""
    run = get(launched, row, provider)
    failing = run.requests[1].last
    assert "exit_code: 3" in failing and re.search(r"stdout:\nout-line\n", failing), failing
    assert re.search(r"stderr:\nerr-line", failing), failing
    env_out = run.requests[2].last
    assert "PATH=" in env_out and KEY not in env_out and "_API_KEY=" not in env_out
    timed_out = run.requests[3].last
    assert "started" in timed_out and "[ERROR: Command timed out after 500ms" in timed_out, timed_out
    assert run.tool_ends("shell")[2]["is_error"]
    child = int((run.repo / "child.pid").read_text())
    shell = int((run.repo / "shell.pid").read_text())
    assert wait_until(lambda: not alive(child) and not alive(shell), timeout=5), "the timed-out command lives on"
    assert run.wall < 25, run.wall  # type: ignore[attr-defined]  # nobody waited for `sleep 30`


@pytest.mark.parametrize("row,provider", [("G6", "anthropic")])
def test_g6_a_sub_second_timeout_is_honoured(row, provider, launched):
    """timeout_ms=500 stops the command within about 500 ms, as the timeout marker the model is sent says."""
    run = get(launched, row, provider)
    duration = int(re.search(r"duration_ms: (\d+)", run.requests[3].last).group(1))
    assert duration < 900, duration


def test_g16_interrupting_the_cli_kills_the_running_command(tmp_path):
    """Ctrl-C on ``aos agent run`` while a shell command runs ends the CLI with 130 and leaves neither the
    command's shell nor its background child running."""
    repo = make_repo(tmp_path, {})
    model = ScriptedModel("anthropic", [[call("shell", command=TIMEOUT_CMD, timeout_ms=60_000)], "never reached"])
    twin = ProviderTwin("anthropic", api_key=KEY).start()
    twin.repeat(Turn(model))
    env = agent_env("anthropic", twin.base_url, tmp_path / "agent-data")
    proc = subprocess.Popen([sys.executable, "-m", "aos.cli", "agent", "run", "--repo", str(repo), "--provider",
                             "anthropic", "--session", "g16", "sleep"], env=env, cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: (repo / "child.pid").exists() and (repo / "shell.pid").exists()
                          and (repo / "child.pid").read_text().strip() != "", timeout=30), "the command never ran"
        child, shell = int((repo / "child.pid").read_text()), int((repo / "shell.pid").read_text())
        assert alive(child)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        twin.stop()
    assert proc.returncode == 130
    assert wait_until(lambda: not alive(child) and not alive(shell), timeout=5), "the command outlived the CLI"


# -- G4 ----------------------------------------------------------------------------------------------
@param("G4")
def test_g4_parallel_calls_in_one_response_run_concurrently_and_return_in_call_order(row, provider, launched):
    """Two shell calls that only finish if the other runs at the same time both succeed, and the next request
    holds the three results in call order."""
    run = get(launched, row, provider)
    a, b, r = run.requests[1].new(3)
    assert "A-saw-B" in a and "exit_code: 0" in a, a
    assert "B-saw-A" in b and "exit_code: 0" in b, b
    assert "third" in r
    kinds = [(e["kind"], e["data"].get("call_id")) for e in run.events() if e["kind"].startswith("tool_call")]
    starts = [c for k, c in kinds if k == "tool_call_start"]
    ends = [c for k, c in kinds if k == "tool_call_end"]
    assert len(set(starts)) == 3 and sorted(starts) == sorted(ends)  # paired by call_id
    assert [k for k, _ in kinds][:3] == ["tool_call_start"] * 3  # all started before any ended


# -- G7 ----------------------------------------------------------------------------------------------
@param("G7")
def test_g7_grep_and_glob_options_and_empty_results(row, provider, launched):
    """grep honours case_insensitive and glob_filter and says "No matches found"; glob lists newest first and
    says "No files matched"."""
    run = get(launched, row, provider)
    both, py_only, none, logs, no_files = run.requests[1].new(5)
    assert "a.py" in both and "b.txt" in both, both
    assert "a.py" in py_only and "b.txt" not in py_only, py_only
    assert none.strip() == "No matches found", none
    names = [os.path.basename(line) for line in logs.strip().split("\n")]
    assert names == ["new.log", "old.log"], logs
    assert no_files.strip() == "No files matched", no_files


# -- G8 ----------------------------------------------------------------------------------------------
@param("G8")
def test_g8_the_model_gets_truncated_output_and_the_journal_keeps_it_whole(row, provider, launched):
    """The model's request holds the head/tail-truncated read (with the warning) and the line-truncated shell
    output, while replay's tool_call_end events carry both outputs whole."""
    run = get(launched, row, provider)
    read_sent, shell_sent = run.requests[1].new(2)
    assert "[WARNING: Tool output was truncated." in read_sent
    assert len(read_sent) < 52_000 and "line-0001" in read_sent and "line-1000" in read_sent
    assert "line-0500" not in read_sent
    assert re.search(r"\[\.\.\. \d+ lines omitted \.\.\.\]", shell_sent), shell_sent[-500:]
    assert "\n150\n" not in shell_sent
    read_end, = run.tool_ends("read_file")
    shell_end, = run.tool_ends("shell")
    assert len(read_end["output"]) > 100_000 and "line-0500" in read_end["output"]
    assert "WARNING" not in read_end["output"]
    assert "\n150\n" in shell_end["output"] and "omitted" not in shell_end["output"]


# -- G18 ---------------------------------------------------------------------------------------------
@param("G18")
def test_g18_provider_state_of_a_tool_call_turn_is_echoed_on_the_wire(row, provider, launched):
    """The request after a tool call echoes what the provider needs back: OpenAI's call_id and reasoning
    item, Anthropic's signed thinking block, Gemini's thoughtSignature on the functionCall part."""
    run = get(launched, row, provider)
    body = run.requests[1].body
    if provider == "openai":
        items = body["input"]
        assert any(i.get("type") == "function_call" and i.get("call_id") == "call_fidelity_1" for i in items)
        assert any(i.get("type") == "function_call_output" and i.get("call_id") == "call_fidelity_1" for i in items)
        assert any(i.get("type") == "reasoning" and i.get("encrypted_content") == "enc-openai-G18" for i in items)
    elif provider == "anthropic":
        assistant = [m for m in body["messages"] if m["role"] == "assistant"][-1]["content"]
        assert assistant[0].get("type") == "thinking" and assistant[0].get("signature") == "sig-anthropic-G18"
        assert any(b.get("type") == "tool_use" and b.get("id") == "call_fidelity_1" for b in assistant)
    else:
        parts = [p for c in body["contents"] if c.get("role") == "model" for p in c.get("parts", [])]
        call_part = next(p for p in parts if "functionCall" in p)
        assert call_part.get("thoughtSignature") == "sig-gemini-G18", call_part
    assert "fidelity" in run.requests[1].last


# -- G10 / G12 ---------------------------------------------------------------------------------------
@param("G10")
def test_g10_max_turns_ends_the_run_with_turn_limit(row, provider, launched):
    """With ``--max-turns 2`` the session makes two LLM calls, ends with ``turn_limit`` and the CLI exits 1."""
    run = get(launched, row, provider, returncode=1, requests=2)
    kinds = [e["kind"] for e in run.events()]
    assert "turn_limit" in kinds and kinds.count("assistant_text_end") == 2, kinds
    assert run.proc.stdout.splitlines()[-2].startswith("processing_end (turn_limit): 2 turn(s)"), run.proc.stdout[-500:]


@param("G12")
def test_g12_a_repeated_call_is_detected_and_the_model_is_warned(row, provider, launched):
    """Ten identical calls emit ``loop_detection`` and the next request carries the loop warning."""
    run = get(launched, row, provider)
    assert [e["kind"] for e in run.events()].count("loop_detection") == 1
    assert "Loop detected" in json.dumps(run.requests[10].body)
    assert "Loop detected" not in json.dumps(run.requests[9].body)


# -- G15 ---------------------------------------------------------------------------------------------
@param("G15")
def test_g15_a_429_is_retried_and_the_session_continues(row, provider, launched):
    """A rate-limited first call is retried by the LLM adapter; the tool round and the answer follow."""
    run = get(launched, row, provider)
    assert "after-429" in run.requests[2].last
    assert [e["kind"] for e in run.events()].count("error") == 0


@param("G15auth")
def test_g15_an_authentication_error_ends_the_session_without_retry_or_leak(row, provider, launched):
    """A 401 is not retried: one request, an ``error`` event, CLI exit 1, and the echoed key appears neither in
    the CLI output nor in the journal."""
    run = get(launched, row, provider, returncode=1, requests=1)
    events = run.events()
    assert "error" in [e["kind"] for e in events]
    assert KEY not in json.dumps(events)


# -- G17 ---------------------------------------------------------------------------------------------
@param("G17")
def test_g17_the_system_prompt_has_the_environment_and_only_this_profiles_docs(row, provider, launched):
    """The first request's system prompt holds the environment block, AGENTS.md and this provider's own doc
    file, and no other provider's."""
    run = get(launched, row, provider)
    body = json.dumps(run.requests[0].body)
    assert "<environment>" in body and "DOC-AGENTS-7731" in body and OWN_DOC[provider] in body
    assert [d for d in OWN_DOC.values() if d != OWN_DOC[provider] and d in body] == []


# -- G14 ---------------------------------------------------------------------------------------------
@param("G14")
def test_g14_a_subagent_runs_through_the_kernel_and_wait_returns_its_result(row, provider, launched):
    """spawn_agent starts a child that makes its own LLM calls and writes a file; wait returns the child's
    output, success and turns used to the parent."""
    run = get(launched, row, provider)
    child = run.model.by_marker[CHILD_TASK]
    assert len(child.seen) == 2 and "Wrote" in child.seen[1].last
    assert (run.repo / "child.txt").read_text() == "from the child\n"
    waited = json.loads(run.requests[2].last)
    assert waited["output"] == "CHILD-DONE-4242" and waited["success"] is True and waited["turns_used"] == 2, waited
    assert "PARENT-SAW: CHILD-DONE-4242" in run.final_text()
    assert any(e["session"] != "main" for e in run.events())  # the child's events are in the transcript

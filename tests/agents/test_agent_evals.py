"""The upstream AOS agent-eval cases (aos-agent-eval ``cases/01..11``) through a real kernel.

Each case x profile is one ``aos agent run`` in a temporary repository
against a provider twin whose scripted model reacts to what it is sent.
The checks are the upstream ones (``tool_called``, ``tool_output_contains``,
``files``) plus the final answer. Upstream's ``stat``, ``exists`` and
``list_dir`` host tools have no CAL counterpart: those cases use ``shell``.
All runs are launched concurrently when the module's first test starts; each
test waits for its own.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agentkit import (
    PROVIDERS,
    AgentRun,
    Seen,
    call,
    launch_selected,
    make_repo,
    run_agent,
)


def plain(read_output: str) -> str:
    """A ``read_file`` result without its ``N | `` line numbers."""
    return "\n".join(re.sub(r"^\s*\d+ \| ", "", line) for line in read_output.split("\n"))


def found(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in {text!r}"
    return m.group(1) if m.groups() else m.group(0)


@dataclass
class Case:
    files: dict[str, str]
    steps: list
    tools: list[str]  # upstream tool_called, in order
    outputs: list[str]  # upstream tool_output_contains: each in some tool_call_end output of the journal
    answer: str  # the final answer must contain this
    disk: dict[str, str | None]  # files after the run (None: must not exist)
    sent: list[str] | None = None  # each must be in a tool result the model was sent


def read_write_token(provider: str) -> Case:
    return Case(
        files={"notes/secret.txt": "TOKEN=alpha-9421\n"},
        steps=[[call("read_file", file_path="notes/secret.txt")],
               lambda s: [call("write_file", file_path="out/token.txt",
                               content=found(r"TOKEN=(\S+)", s.last) + "\n")],
               "WROTE_TOKEN"],
        tools=["read_file", "write_file"], outputs=["TOKEN=alpha-9421", "Wrote 11 bytes"], answer="WROTE_TOKEN",
        disk={"out/token.txt": "alpha-9421\n"})


PATCH = ("*** Begin Patch\n*** Add File: notes/added.txt\n+added by patch\n*** Update File: src/greet.py\n@@\n"
         " def greet():\n-    return 'hello'\n+    return 'hello, patch'\n*** End Patch\n")


def apply_patch(provider: str) -> Case:
    files = {"src/greet.py": "def greet():\n    return 'hello'\n\nGREETING = 'hello'\n"}
    if provider == "openai":
        return Case(files, [[call("apply_patch", patch=PATCH)], "PATCH=OK"], ["apply_patch"],
                    ["Applied patch", "A notes/added.txt", "M src/greet.py"], "PATCH=OK",
                    {"notes/added.txt": "added by patch\n",
                     "src/greet.py": "def greet():\n    return 'hello, patch'\n\nGREETING = 'hello'\n"})
    # edit_file profiles: the same intent, with replace_all over both occurrences
    return Case(files, [[call("edit_file", file_path="src/greet.py", old_string="'hello'",
                              new_string="'hello, patch'", replace_all=True)], "PATCH=OK"], ["edit_file"],
                ["2 replacements"], "PATCH=OK",
                {"src/greet.py": "def greet():\n    return 'hello, patch'\n\nGREETING = 'hello, patch'\n"})


def exec_roundtrip(provider: str) -> Case:
    return Case(
        files={}, steps=[[call("shell", command="echo exec-$((6 * 7)) && echo side >&2")],
                         lambda s: "EXEC=" + found(r"stdout:\n(exec-\d+)", s.last)],
        tools=["shell"], outputs=["exit_code: 0", "exec-42", "side"], answer="EXEC=exec-42", disk={},
        sent=["exec-42"])


def write_file(provider: str) -> Case:
    return Case(files={}, steps=[[call("write_file", file_path="deep/er/new.txt", content="hello from write\n")],
                                 "WRITE=OK"],
                tools=["write_file"], outputs=["Wrote 17 bytes"], answer="WRITE=OK",
                disk={"deep/er/new.txt": "hello from write\n"})


def edit_file(provider: str) -> Case:
    """Read, then change the line it read (OpenAI's edit tool is apply_patch)."""
    def edit(s: Seen):
        line = found(r"(mode=\w+)", plain(s.last))
        if provider == "openai":
            return [call("apply_patch", patch=f"*** Begin Patch\n*** Update File: app.ini\n@@\n-{line}\n"
                                              "+mode=release\n*** End Patch\n")]
        return [call("edit_file", file_path="app.ini", old_string=line, new_string="mode=release")]

    return Case(files={"app.ini": "[app]\nmode=debug\nport=8080\n"},
                steps=[[call("read_file", file_path="app.ini")], edit, "EDIT=OK"],
                tools=["read_file", "apply_patch" if provider == "openai" else "edit_file"],
                outputs=["mode=debug", "M app.ini" if provider == "openai" else "1 replacement"], answer="EDIT=OK",
                disk={"app.ini": "[app]\nmode=release\nport=8080\n"})


def grep_token(provider: str) -> Case:
    return Case(files={"src/a.py": "x = 1\n", "src/b.py": "y = 2\n\n# NEEDLE-5150 lives here\n",
                       "docs/readme.md": "nothing\n"},
                steps=[[call("grep", pattern=r"NEEDLE-\d+")],
                       lambda s: "FOUND=" + found(r"^(\S+?):\d+:", s.last)],
                tools=["grep"], outputs=["NEEDLE-5150"], answer="src/b.py", disk={}, sent=["b.py:3:"])


def glob_configs(provider: str) -> Case:
    return Case(files={"config/app.json": "{}\n", "config/nested/db.json": "{}\n", "config/app.yaml": "a: 1\n",
                       "src/main.py": "pass\n"},
                steps=[[call("glob", pattern="**/*.json")],
                       lambda s: "CONFIGS=" + ",".join(sorted(os.path.basename(p) for p in s.last.split("\n")))],
                tools=["glob"], outputs=["app.json", "db.json"], answer="CONFIGS=app.json,db.json", disk={})


def stat_file(provider: str) -> Case:
    return Case(files={"notes/stats.txt": "12345\n"},
                steps=[[call("shell", command="stat -c 'size_bytes=%s' notes/stats.txt")],
                       lambda s: "STAT=OK" if int(found(r"size_bytes=(\d+)", s.last)) > 0 else "STAT=EMPTY"],
                tools=["shell"], outputs=["size_bytes=6"], answer="STAT=OK", disk={})


def exists_file(provider: str) -> Case:
    check = "for f in notes/here.txt notes/gone.txt; do test -e $f && echo $f=true || echo $f=false; done"
    return Case(files={"notes/here.txt": "x\n"},
                steps=[[call("shell", command=check)],
                       lambda s: "EXISTS=" + found(r"here.txt=(\w+)", s.last) + "/" + found(r"gone.txt=(\w+)", s.last)],
                tools=["shell"], outputs=["notes/here.txt=true", "notes/gone.txt=false"], answer="EXISTS=true/false",
                disk={})


def list_dir(provider: str) -> Case:
    return Case(files={"docs/a.md": "a\n", "docs/b.md": "b\n", "docs/sub/c.md": "c\n"},
                steps=[[call("shell", command="ls -1 docs")],
                       lambda s: "ENTRIES=" + ",".join(found(r"stdout:\n([^:]*)\nstderr:", s.last).split())],
                tools=["shell"], outputs=["a.md\nb.md\nsub"], answer="ENTRIES=a.md,b.md,sub", disk={})


def fallback_log_report(provider: str) -> Case:
    """List the jobs, read the task, check the preferred log, fall back, extract, write the report."""
    state: dict = {}

    def read_task(s: Seen):
        state["task_file"] = "jobs/" + found(r"(task-\d+\.json)", s.last)
        return [call("read_file", file_path=state["task_file"])]

    def check_preferred(s: Seen):
        state["task"] = json.loads(plain(s.last))
        return [call("shell", command=f"test -e {state['task']['preferred_log']} && echo exists=true "
                                      "|| echo exists=false")]

    def choose_log(s: Seen):
        log = state["task"]["preferred_log" if "exists=true" in s.last else "fallback_log"]
        return [call("read_file", file_path=log)]

    def report(s: Seen):
        token = found(r"(\S+) acquired", plain(s.last))
        return [call("write_file", file_path=state["task"]["report_path"], content=f"RESULT={token}\n")]

    task = {"preferred_log": "logs/primary.log", "fallback_log": "logs/fallback.log", "needle": "token-8831",
            "report_path": "reports/final.txt"}
    return Case(files={"jobs/task-418.json": json.dumps(task, indent=2) + "\n",
                       "logs/fallback.log": "INFO boot\nINFO token-8831 acquired\nINFO done\n"},
                steps=[[call("shell", command="ls -1 jobs")], read_task, check_preferred, choose_log, report,
                       "CHAIN=OK"],
                tools=["shell", "read_file", "shell", "read_file", "write_file"],
                outputs=["task-418.json", "exists=false", "INFO token-8831 acquired", "Wrote 18 bytes"],
                answer="CHAIN=OK", disk={"reports/final.txt": "RESULT=token-8831\n", "logs/primary.log": None})


CASES: dict[str, Callable[[str], Case]] = {
    "read-write-token": read_write_token, "apply-patch": apply_patch, "exec-roundtrip": exec_roundtrip,
    "write-file": write_file, "edit-file": edit_file, "grep-token": grep_token, "glob-configs": glob_configs,
    "stat-file": stat_file, "exists-file": exists_file, "list-dir": list_dir,
    "fallback-log-report": fallback_log_report,
}


def _start(case: str, provider: str, work) -> tuple[Case, AgentRun]:
    spec = CASES[case](provider)
    repo = make_repo(work, spec.files)
    return spec, run_agent(provider, repo, spec.steps, work, task=f"agent eval: {case}", session=case)


@pytest.fixture(scope="module")
def launched(request, tmp_path_factory) -> dict:
    """Every selected case x provider of this module, started at once in the background."""
    return launch_selected(request, tmp_path_factory, ("case", "provider"), _start)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("case", list(CASES))
def test_agent_eval_case(case, provider, launched):
    """The scripted agent does the upstream case through the kernel: the files on disk, the tools the journal
    records, their outputs and the final answer are the case's expectations."""
    spec, run = launched[(case, provider)].result(timeout=110)
    run.check()
    assert run.tools_called() == spec.tools
    outputs = [e["output"] for e in run.tool_ends()]
    for needle in spec.outputs:
        assert any(needle in out for out in outputs), (needle, outputs)
    assert not any(e["is_error"] for e in run.tool_ends()), run.tool_ends()
    assert spec.answer in run.final_text()
    for rel, text in spec.disk.items():
        path = run.repo / rel
        assert (path.read_text() if path.exists() else None) == text, rel
    for needle in spec.sent or []:
        # the model's request after the tool ran carried the result, in this provider's wire shape
        assert any(needle in out for out in run.requests[-1].outputs), (needle, run.requests[-1].outputs)
    assert [e["kind"] for e in run.events()][-1] == "processing_end"

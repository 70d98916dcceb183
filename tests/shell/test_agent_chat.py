"""`agent new` and `agent chat` in the real shell, against a kernel that grants the repository and a provider twin."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pexpect
import pytest

from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall
from aos.kernel.client import run
from aos.shell.commands import execute, grammars
from aos.shell.parse import parse
from aos.shell.render import Inline, Line
from aos.shell.session import Session, Target
from aos.testing import KernelProcess

KEY = "sk-test-shell-chat"


@pytest.fixture
def repo(tmp_path) -> str:
    path = tmp_path / "repo"
    path.mkdir()
    (path / "notes.txt").write_text("hello\n")
    return str(path)


@pytest.fixture
def twin() -> Iterator[ProviderTwin]:
    twin = ProviderTwin("anthropic", api_key=KEY).start()
    try:
        yield twin
    finally:
        twin.stop()


@pytest.fixture
def kernel(data_dir, repo, twin) -> Iterator[KernelProcess]:
    """The shell fixtures' kernel, here granting the repository and calling the twin for anthropic."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
    env.update(ANTHROPIC_BASE_URL=twin.base_url, ANTHROPIC_API_KEY=KEY)
    proc = KernelProcess(data_dir, env=env, extra_args=["--grant-host", repo]).start()
    try:
        yield proc
    finally:
        proc.kill()


def test_a_two_turn_chat_streams_the_answers_and_keeps_the_prompt(kernel, twin, repo, spawn_shell, where):
    """`agent new` enters the session world; each `agent chat TEXT` shows that turn's answer, then the prompt."""
    twin.script(ModelTurn(text="Hello from the twin, turn one.", chunks=["Hello from ", "the twin, ", "turn one."]),
                ModelTurn(text="And this is turn two."))
    sh = spawn_shell()
    sh.expect(where("default"))
    sh.sendline(f"agent new --repo {repo} --provider anthropic --id chat1")
    sh.expect(rf"created agent world chat1: anthropic \S+ on {repr(repo)[1:-1]}")
    sh.expect("talk to it: agent chat TEXT")
    sh.expect(where("default/chat1"))

    sh.sendline("agent chat hello")
    sh.expect("Hello from the twin, turn one.")
    sh.expect(where("default/chat1"))
    sh.sendline("agent chat and again")
    sh.expect("And this is turn two.")
    sh.expect(where("default/chat1"))
    assert "error" not in sh.before
    sh.sendline("grants")  # the prompt still works: the agent world's grants include the repository
    sh.expect(rf"repo(\x1b\[[0-9;]*m)*\s+host\.fs\s+.*{repr(repo)[1:-1]}")
    sh.expect(where("default/chat1"))
    sh.sendline("exit")
    sh.expect(pexpect.EOF)
    assert len(twin.requests) == 2 and "and again" in json.dumps(twin.requests[1].body["messages"][-1])


def test_ctrl_c_interrupts_a_turn_and_returns_to_a_working_prompt(kernel, twin, repo, spawn_shell, where):
    """Ctrl-C while a tool runs aborts the turn, says so, and the prompt works; the closed session refuses more chat."""
    twin.script(ModelTurn(tool_calls=[ScriptedCall("shell", json.dumps({"command": "sleep 60"}), id="call_1")]))
    sh = spawn_shell()
    sh.expect(where("default"))
    sh.sendline(f"agent new --repo {repo} --id chat2")
    sh.expect(where("default/chat2"))
    sh.sendline("agent chat wait for it")
    sh.expect(r"> shell .*sleep 60")
    sh.sendcontrol("c")
    sh.expect(r"\(turn interrupted: the session is closed\)")
    sh.expect(where("default/chat2"))
    sh.sendline("world")
    sh.expect("in world chat2")
    sh.sendline("agent chat are you there")
    sh.expect(r"error: InvalidArgument: the agent session in chat2 is closed")
    sh.expect(where("default/chat2"))
    sh.sendline("exit")
    sh.expect(pexpect.EOF)


def test_chat_with_no_text_takes_a_turn_per_line_until_an_empty_line(kernel, twin, repo, spawn_shell, where):
    """`agent chat` alone prompts `you>` for each turn, shows each answer, and an empty line returns to the shell."""
    twin.script(ModelTurn(text="First reply."), ModelTurn(text="Second reply."))
    sh = spawn_shell()
    sh.expect(where("default"))
    sh.sendline(f"agent new --repo {repo} --id chat3")
    sh.expect(where("default/chat3"))
    sh.sendline("agent chat")
    sh.expect("you> ")
    sh.sendline("one")
    sh.expect("First reply.")
    sh.expect("you> ")
    sh.sendline("two")
    sh.expect("Second reply.")
    sh.expect("you> ")
    sh.sendline("")
    sh.expect(where("default/chat3"))
    sh.sendline("world")
    sh.expect("in world chat3")
    sh.sendline("exit")
    sh.expect(pexpect.EOF)
    assert len(twin.requests) == 2


def test_model_text_streams_in_the_pieces_it_arrives_in(kernel, twin, repo):
    """The command layer shows streamed text as it comes (one `Inline` per chunk), not again at the turn's end."""
    twin.script(ModelTurn(text="one two three", chunks=["one ", "two ", "three"]))

    async def main():
        session = Session(Target(kernel.address, kernel.token_path, "k"))
        shown: list = []
        for line in (f"agent new --repo {repo} --id stream1", "agent chat count"):
            await execute(session, parse(line, grammars()), shown.extend)
        session.close()
        return shown

    shown = run(main())
    assert [b.text for b in shown if isinstance(b, Inline)] == ["one ", "two ", "three"]
    assert not any(isinstance(b, Line) and "three" in b.text for b in shown)

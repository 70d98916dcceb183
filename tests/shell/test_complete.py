"""Tab completion and the spinner, without a terminal."""

from __future__ import annotations

import asyncio
import io
import os

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from aos.kernel.client import run
from aos.shell.repl import ShellCompleter
from aos.shell.runner import Runner
from aos.shell.session import Session, Target

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _texts(completer: ShellCompleter, line: str) -> list[str]:
    event = CompleteEvent(completion_requested=True)
    return [c.text for c in completer.get_completions(Document(line, len(line)), event)]


def test_commands_options_subcommands_and_paths_complete(tmp_path):
    """Tab completes command names, a command's options, `cas` and `agent` actions and file paths where a command
    takes one."""
    (tmp_path / "bundle-a").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    completer = ShellCompleter(Session(Target("unix:/nowhere", "/nowhere", "t")))
    assert _texts(completer, "wor") == ["world", "worlds"]
    assert _texts(completer, "help sn") == ["snapshot"]
    assert _texts(completer, "journal --t") == ["--tail"]
    assert _texts(completer, "cas ") == ["put", "get"]
    assert _texts(completer, f"create {tmp_path}/bun") == ["dle-a"]
    assert _texts(completer, f"worlds; cas put {tmp_path}/no") == ["tes.txt"]
    assert _texts(completer, "cas get sha") == []
    assert _texts(completer, "agent ") == ["new", "chat"]
    assert _texts(completer, "agent new --pro") == ["--provider"]
    assert _texts(completer, "agent new --provider o") == ["openai"]
    assert _texts(completer, f"agent new --repo {tmp_path}/bun") == ["dle-a"]
    assert _texts(completer, "rev") == ["revoke"]


def test_world_ids_complete_from_the_kernel(kernel):
    """`world <Tab>` offers the ids of the universe's worlds, read from the kernel, and `..`."""

    async def main():
        runner = Runner(Session(Target(kernel.address, kernel.token_path, "k")), out=io.StringIO(), err=io.StringIO())
        counter = os.path.join(REPO, "examples", "counter")
        await runner.run_text(f"create {counter} --id alpha; create {counter} --id beta")
        completer = ShellCompleter(runner.session)
        document = Document("world ", 6)
        found = [c.text async for c in completer.get_completions_async(document, CompleteEvent())]
        runner.session.close()
        return found

    assert run(main()) == ["alpha", "beta", ".."]


def test_a_slow_command_gets_a_spinner_that_is_wiped_when_done():
    """Past `spin_after` seconds a spinner with the elapsed time shows on stderr, and its line is cleared at the end."""
    err = io.StringIO()
    runner = Runner(Session(Target("unix:/nowhere", "/nowhere", "t")), out=io.StringIO(), err=err,
                    spinner=True, spin_after=0.05)

    async def slow() -> None:
        async with runner.spinning("create"):
            await asyncio.sleep(0.4)  # the slow command itself, not a wait for a condition
        async with runner.spinning("fast"):
            pass

    asyncio.run(slow())
    text = err.getvalue()
    assert "\r⠋ create 0s" in text and text.endswith("\r\x1b[K") and "fast" not in text

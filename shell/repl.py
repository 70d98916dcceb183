"""The interactive loop: prompt_toolkit's async prompt on the same event loop as
the kernel connection (so the Cap'n Proto calls and the prompt share it).

Ctrl-C at the prompt clears the line; Ctrl-C while a command runs cancels it;
Ctrl-D (or ``exit``) leaves. History is kept between runs; Tab completes
command names, world ids and file paths.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncGenerator, Iterable

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.styles import Style

from aos.errors import AosError
from aos.shell.commands import COMMANDS, ExitShell
from aos.shell.runner import Runner
from aos.shell.session import Session

STYLE = Style.from_dict({"aos": "ansibrightblack", "where": "ansicyan bold", "mark": ""})
PATH_ARGS = {"create": (1,), "cas": (2, 3)}  # which word positions are file paths
OPTIONS = {name: sorted(spec.grammar.flags | spec.grammar.valued) for name, spec in COMMANDS.items()}


def history_path() -> str:
    """``$AOS_SHELL_HISTORY``, else ``~/.local/share/aos/shell_history`` (XDG_DATA_HOME honoured)."""
    if os.environ.get("AOS_SHELL_HISTORY"):
        return os.environ["AOS_SHELL_HISTORY"]
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "aos", "shell_history")


def _history() -> History:
    path = history_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a"):
            pass
    except OSError:
        return InMemoryHistory()
    return FileHistory(path)


class ShellCompleter(Completer):
    """Commands, their options, world ids (from the kernel, cached briefly) and paths."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.paths = PathCompleter(expanduser=True)
        self._world_ids: list[str] = []
        self._fetched = 0.0

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        yield from self._static(document, complete_event, self._world_ids)

    async def get_completions_async(self, document: Document,
                                    complete_event: CompleteEvent) -> AsyncGenerator[Completion, None]:
        words = document.text_before_cursor.split()
        if words and words[0] == "world" and self.session.connected and time.monotonic() - self._fetched > 2:
            try:
                listed = await (await self.session.worlds()).list()
                self._world_ids = sorted(w["worldId"] for w in listed)
                self._fetched = time.monotonic()
            except AosError:
                pass
        for completion in self._static(document, complete_event, self._world_ids):
            yield completion

    def _static(self, document: Document, event: CompleteEvent, world_ids: list[str]) -> Iterable[Completion]:
        text = document.text_before_cursor.rsplit(";", 1)[-1].lstrip()
        words = text.split()
        if not text.endswith(" "):
            current = words.pop() if words else ""
        else:
            current = ""
        if not words:
            yield from _matching(sorted(COMMANDS), current)
            return
        name, position = words[0], len(words)
        if current.startswith("--"):
            yield from _matching(["--" + o for o in OPTIONS.get(name, [])], current)
        elif name == "world" and position == 1:
            yield from _matching(world_ids + [".."], current)
        elif name == "help" and position == 1:
            yield from _matching(sorted(COMMANDS), current)
        elif name == "cas" and position == 1:
            yield from _matching(["put", "get"], current)
        elif name == "agent" and position == 1:
            yield from _matching(["new", "chat"], current)
        elif name == "agent" and words[-1] == "--provider":
            yield from _matching(["anthropic", "openai", "gemini"], current)
        elif position in PATH_ARGS.get(name, ()) or words[-1] in ("--grant-root", "--repo"):
            if name == "cas" and words[1] == "get" and position == 2:
                return
            yield from self.paths.get_completions(Document(current, len(current)), event)


def _matching(candidates: Iterable[str], prefix: str) -> Iterable[Completion]:
    for candidate in candidates:
        if candidate.startswith(prefix):
            yield Completion(candidate, -len(prefix))


def prompt_message(session: Session) -> FormattedText:
    return FormattedText([("class:aos", "aos "), ("class:where", session.where()), ("class:mark", "> ")])


async def repl(runner: Runner) -> int:
    """Prompt, run, repeat until ``exit`` or Ctrl-D. Returns the exit status (0)."""
    prompt: PromptSession[str] = PromptSession(
        history=_history(), completer=ShellCompleter(runner.session), complete_while_typing=False,
        style=STYLE, include_default_pygments_style=False,
    )
    chat: PromptSession[str] = PromptSession(style=STYLE, include_default_pygments_style=False)

    async def ask(message: str) -> str | None:
        try:
            return await chat.prompt_async(FormattedText([("class:where", message)]))
        except (KeyboardInterrupt, EOFError):
            return None

    runner.ask = ask
    await runner.connect()
    while True:
        try:
            text = await prompt.prompt_async(lambda: prompt_message(runner.session))
        except KeyboardInterrupt:
            continue
        except EOFError:
            return 0
        try:
            await runner.run_text(text)
        except ExitShell:
            return 0

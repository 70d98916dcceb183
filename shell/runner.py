"""Run lines of commands and show what they return: shared by the REPL and scripts.

Each command runs as its own task, so Ctrl-C (SIGINT, the terminal being in
cooked mode while a command runs) cancels that command and nothing else; a
command may catch the cancellation to clean up and report (``agent chat``
aborts the turn), and still counts as interrupted. A
failing command prints one line, ``error: <Code>: message``, never a
traceback. A command still running after a second gets a spinner on stderr
when stderr is a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import signal
import sys
import time
import traceback
from collections.abc import AsyncIterator
from typing import TextIO

from aos.errors import AosError
from aos.shell.commands import ALIASES, COMMANDS, Ask, ExitShell, execute, grammars
from aos.shell.parse import Command, parse, split_commands
from aos.shell.render import Inline, Line, Output, error_line, render
from aos.shell.session import Session

SPIN = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Outcome(enum.Enum):
    OK = "ok"
    ERROR = "error"
    INTERRUPTED = "interrupted"


class Runner:
    """Parses, executes and prints; owns the output streams and their colour."""

    def __init__(self, session: Session, out: TextIO | None = None, err: TextIO | None = None,
                 color: bool = False, spinner: bool | None = None, spin_after: float = 1.0) -> None:
        self.session = session
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.color = color
        self.spinner = self.err.isatty() if spinner is None else spinner
        self.spin_after = spin_after
        self._grammars = grammars()
        self._task: asyncio.Task[Output] | None = None
        self._open = False  # the last output ended with an ``Inline``: its line is still open
        # reads one line from the user while a command runs (`agent chat` with no text); the REPL sets it
        self.ask: Ask | None = None

    def emit(self, blocks: Output) -> None:
        if not blocks:
            return
        text = render(blocks, self.color)
        if self._open and not isinstance(blocks[0], Inline):
            text = "\n" + text
        self._open = isinstance(blocks[-1], Inline)
        print(text, end="" if self._open else "\n", file=self.out, flush=True)

    def end_line(self) -> None:
        """End a line left open by streamed text (before an error, a prompt, the next command)."""
        if self._open:
            self._open = False
            print(file=self.out, flush=True)

    def note(self, blocks: Output) -> None:
        """News about the connection: on stderr, so a script's stdout stays its output."""
        print(render(blocks, self.color and self.err.isatty()), file=self.err, flush=True)

    def error(self, exc: BaseException) -> None:
        from aos.cli_errors import debugging

        self.end_line()
        if debugging() and not isinstance(exc, AosError):
            traceback.print_exception(exc, file=self.err)
        print(error_line(exc, self.color and self.err.isatty()), file=self.err, flush=True)

    async def connect(self) -> bool:
        """Connect now (the REPL does at start, to greet or to explain why not)."""
        try:
            for news in await self.session.ensure():
                self.note([Line(news, "warn")])
            if self.session.cluster is not None:
                await self.session.ping()
                what = "a cluster's scheduler"
            else:
                assert self.session.kernel is not None
                what = f"aos-kernel {(await self.session.kernel.status())['version']}"
        except AosError as exc:
            self.session.lost()
            self.error(exc)
            return False
        self.emit([Line(f"connected to {what} at {self.session.target.address}; "
                        "type help for commands, Ctrl-D to leave", "dim")])
        return True

    async def run_text(self, text: str) -> Outcome:
        """Run every command in ``text`` (``;`` or newline separated); stop at the first that fails."""
        try:
            lines = split_commands(text)
        except AosError as exc:
            self.error(exc)
            return Outcome.ERROR
        for line in lines:
            outcome = await self.run_line(line)
            if outcome is not Outcome.OK:
                return outcome
        return Outcome.OK

    async def run_line(self, line: str) -> Outcome:
        try:
            cmd = parse(line, self._grammars)
        except AosError as exc:
            self.error(exc)
            return Outcome.ERROR
        return await self.run_command(cmd)

    async def run_command(self, cmd: Command) -> Outcome:
        """Execute one command as a task that SIGINT cancels; print its output or its error."""
        loop = asyncio.get_running_loop()
        task = self._task = asyncio.create_task(execute(self.session, cmd, self.emit, self.note,
                                                          self._ask if self.ask else None))
        # (re)installed each time: the prompt installs its own while it runs. Left in place after the
        # command, so a Ctrl-C that comes between the command and the next prompt is ignored.
        self._catch_sigint(loop)
        spec = COMMANDS.get(ALIASES.get(cmd.name, cmd.name))
        try:
            async with self.spinning(cmd.name, self.spinner and spec is not None and not spec.streams):
                output = await task
        except ExitShell:
            raise
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
            self.emit([Line("(interrupted)", "dim")])
            return Outcome.INTERRUPTED
        except AosError as exc:
            self.error(exc)
            return Outcome.ERROR
        except Exception as exc:  # a bug of ours or a foreign error: still one line, and go on
            self.error(exc)
            return Outcome.ERROR
        finally:
            self._task = None
        self.emit(output)
        self.end_line()
        # a command that handles its own Ctrl-C (`agent chat` aborts the turn) returns normally, but was interrupted
        return Outcome.INTERRUPTED if task.cancelling() else Outcome.OK

    def _catch_sigint(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, self._interrupt)

    async def _ask(self, prompt: str) -> str | None:
        """One line from the user while a command runs; None at Ctrl-D or Ctrl-C, or with no way to ask."""
        if self.ask is None:
            return None
        self.end_line()
        try:
            return await self.ask(prompt)
        finally:
            self._catch_sigint(asyncio.get_running_loop())  # the prompt took SIGINT over while it ran

    def _interrupt(self) -> None:
        if self._task is not None:
            self._task.cancel()

    @contextlib.asynccontextmanager
    async def spinning(self, label: str, enabled: bool = True) -> AsyncIterator[None]:
        """While the body runs longer than ``spin_after`` seconds, a spinner and the seconds so far on stderr."""
        if not enabled:
            yield
            return
        started = time.monotonic()
        shown = False

        async def spin() -> None:
            nonlocal shown
            await asyncio.sleep(self.spin_after)
            for n in range(1 << 30):
                shown = True
                self.err.write(f"\r{SPIN[n % len(SPIN)]} {label} {time.monotonic() - started:.0f}s")
                self.err.flush()
                await asyncio.sleep(0.1)

        spinner = asyncio.ensure_future(spin())
        try:
            yield
        finally:
            spinner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await spinner
            if shown:
                self.err.write("\r\x1b[K")
                self.err.flush()

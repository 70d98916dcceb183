"""Fixtures for the shell tests: the real ``aos-shell`` in a pseudo-terminal, or as a script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pexpect
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ESC = r"(?:\x1b\[[0-9;?]*[A-Za-z])*"  # the colour and cursor codes prompt_toolkit writes around the prompt


def prompt_re(where: str) -> str:
    """The prompt ``aos WHERE> `` as prompt_toolkit draws it (escape codes between the parts)."""
    return "aos " + ESC + re.escape(where) + ESC + ">"


@pytest.fixture
def shell_env(tmp_path) -> dict[str, str]:
    """Environment for a shell under test: history under tmp_path, no CPR queries, no inherited kernel."""
    env = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", XDG_DATA_HOME=str(tmp_path / "xdg"))
    for name in ("AOS_CONNECT", "AOS_TOKEN_FILE", "AOS_UNIVERSE", "AOS_DATA", "NO_COLOR", "AOS_SHELL_HISTORY"):
        env.pop(name, None)
    return env


@pytest.fixture
def spawn_shell(kernel, shell_env, tmp_path) -> Iterator[Callable[..., Any]]:
    """Start ``python -m aos.shell --connect ... --token-file ...`` in a pseudo-terminal (cwd: the repo).

    Everything the shells write is kept in ``tmp_path/screen.log``.
    """
    children: list[pexpect.spawn] = []
    log = open(tmp_path / "screen.log", "a", encoding="utf-8")

    def spawn(token_file: str | None = None, *extra: str) -> pexpect.spawn:
        args = ["-m", "aos.shell", "--connect", kernel.address, "--token-file", token_file or kernel.token_path, *extra]
        child = pexpect.spawn(sys.executable, args, cwd=REPO, env=shell_env, encoding="utf-8",
                              dimensions=(50, 220), timeout=15)
        child.logfile_read = log  # the whole screen, for reading after a failure
        children.append(child)
        return child

    yield spawn
    for child in children:
        if child.isalive():
            child.terminate(force=True)
    log.close()


@pytest.fixture
def where(kernel) -> Callable[[str], str]:
    """The prompt regex for a place in the fixture kernel: ``where("default/c1")``."""
    label = os.path.basename(kernel.data_dir)
    return lambda place: prompt_re(f"{label}:{place}")


@pytest.fixture
def shell_script(kernel, shell_env) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``aos-shell`` without a terminal: ``-c COMMANDS`` or, with ``stdin=``, from a pipe."""

    def call(commands: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        args = [sys.executable, "-m", "aos.shell", "--connect", kernel.address, "--token-file", kernel.token_path]
        if commands is not None:
            args += ["-c", commands]
        return subprocess.run(args, check=False, cwd=REPO, env=shell_env, input=stdin if stdin is not None else "",
                              capture_output=True, text=True, timeout=60)

    return call

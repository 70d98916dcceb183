"""docs/tutorial.md, run as written: every file it says to save, every command it shows, the output it pastes.

The tutorial is executed like a doctest. Each "Save this as `PATH`:" block is
written to disk; each ``$ command`` of a console block runs in bash from the
repository root (``aos-kernel`` lines restart a real kernel with the flags
and environment they show; the stand-in model runs as the background process
the tutorial starts), and its stdout and stderr must equal the pasted output
once the things that differ between runs (hashes, pids, ports, times) are
masked. The tutorial's ``/tmp/aos-tutorial`` becomes a fresh directory.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aos.testing import KernelProcess

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / "docs" / "tutorial.md"
SCRATCH = "/tmp/aos-tutorial"

SAVE = re.compile(r"Save this as\s+`([^`]+)`:\n\n```\w*\n(.*?)```", re.S)
BLOCK = re.compile(r"```\n(\$ .*?)```", re.S)
MASKS = [
    (re.compile(r"sha256:[0-9a-f]+(\.\.\.)?"), "sha256:H"),
    (re.compile(r"pid=\d+"), "pid=N"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"\b\d+s ago\b"), "N ago"),
    (re.compile(r"\bin \d+\.\d+s\b"), "in T"),
    # aos world ls: whether a world is awake and its journal height depend on when it last hibernated
    (re.compile(r"^(\S+ +\S+) +(?:awake|hibernated) +\d+ +.*$"), r"\1 STATE"),
]


def _mask(line: str) -> str:
    for pattern, replacement in MASKS:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def saved_files(text: str) -> list[tuple[str, str]]:
    return SAVE.findall(text)


def commands(text: str) -> list[tuple[str, list[str], int]]:
    """Every ``$ command`` of the console blocks, the output lines shown under it, and where its block starts."""
    out: list[tuple[str, list[str], int]] = []
    for match in BLOCK.finditer(text):
        lines = match.group(1).splitlines()
        i = 0
        while i < len(lines):
            command = lines[i][2:]
            while command.endswith("\\"):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            i += 1
            shown = []
            while i < len(lines) and not lines[i].startswith("$ "):
                shown.append(lines[i])
                i += 1
            out.append((command, shown, match.start()))
    return out


@pytest.fixture
def scratch() -> Iterator[Path]:
    # short: the kernel's unix socket path must stay under 108 bytes
    path = Path(tempfile.mkdtemp(prefix="aost-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Terminal:
    """The reader's terminals: one environment, one kernel at a time, background processes."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("AOS_") and not k.endswith(("_API_KEY", "_BASE_URL")) and k != "PYTHONPATH"}
        self.kernel: KernelProcess | None = None
        self.background: list[subprocess.Popen[str]] = []
        self.status = 0

    def run(self, command: str) -> list[str]:
        if command.startswith("export "):
            name, _, value = command[len("export "):].partition("=")
            self.env[name] = value
            return []
        if command.startswith(". "):
            for line in Path(command[2:]).read_text().splitlines():
                name, _, value = line.removeprefix("export ").partition("=")
                self.env[name] = value
            return []
        if command == "echo $?":
            return [str(self.status)]
        if "aos-kernel" in command:
            return self.start_kernel(command)
        if "stand_in.py" in command:
            return self.start_stand_in(command)
        if "world send poll2" in command and '"weight": 5' in command:
            self.wait_for_the_close_timer()  # "Wait ten seconds": until the timer's receipt is journaled
        done = subprocess.run(["bash", "-c", command], cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=120, check=False)
        self.status = done.returncode
        return done.stdout.splitlines() + done.stderr.splitlines()

    def start_kernel(self, command: str) -> list[str]:
        if self.kernel is not None:
            assert self.kernel.stop() == 0  # Ctrl-C
        words = shlex.split(command)
        extra_env = dict(w.split("=", 1) for w in words[:words.index(".venv/bin/aos-kernel")])
        args = words[words.index(".venv/bin/aos-kernel") + 1:]
        self.kernel = KernelProcess(self.env["AOS_DATA"], extra_args=args, env={**self.env, **extra_env}).start()
        return list(self.kernel.output)

    def start_stand_in(self, command: str) -> list[str]:
        script, _, target = command.partition(" > ")
        proc = subprocess.Popen(shlex.split(script), cwd=REPO, env=self.env, stdout=open(target.strip(), "w"),
                                stderr=subprocess.PIPE, text=True)
        self.background.append(proc)
        assert proc.stderr is not None
        return [proc.stderr.readline().rstrip("\n")]  # written once the variables are in the file

    def wait_for_the_close_timer(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listed = subprocess.run([".venv/bin/aos", "--json", "world", "journal", "poll2"], cwd=REPO, env=self.env,
                                    capture_output=True, text=True, timeout=60, check=True)
            if any(r["kind"] == "receipt" for r in json.loads(listed.stdout)["records"]):
                return
        raise AssertionError("the poll's close timer never fired")

    def close(self) -> None:
        if self.kernel is not None:
            self.kernel.stop()
        for proc in self.background:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.timeout(300)
def test_the_tutorial_runs_as_written(scratch):
    """Every saved file and command of docs/tutorial.md works in order, with the output the tutorial shows."""
    for tool in ("clang", "wasm-ld"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install clang lld, or ./run setup)")
    text = TUTORIAL.read_text().replace(SCRATCH, str(scratch))
    steps = commands(text)
    assert len(steps) > 30 and len(dict(saved_files(text))) == 6  # the parse found it (6 files, a manifest twice)

    saves = list(SAVE.finditer(text))
    terminal = Terminal(scratch)
    written = 0
    try:
        for command, shown, at in steps:
            while written < len(saves) and saves[written].start() < at:  # the files saved before this block
                path, content = saves[written].groups()
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(content)
                written += 1
            got = terminal.run(command)
            assert [_mask(line) for line in got] == [_mask(line) for line in shown] or \
                sorted(_mask(line) for line in got) == sorted(_mask(line) for line in shown), \
                f"$ {command}\nshown:\n" + "\n".join(shown) + "\ngot:\n" + "\n".join(got)
    finally:
        terminal.close()
    assert written == len(saves)

"""Run ``aos-kernel`` as a child process and know where it listens.

``KernelProcess`` starts the daemon, waits on its own "ready" line (never on
a sleep), and reads back its addresses, health port and admin token. The CLI
uses it for ``aos demo`` and ``aos agent run``; tests use it (through
``aos.testing``) to put a real kernel behind every test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from aos.errors import KernelError


class KernelStartError(KernelError):
    """``aos-kernel`` exited or never said "ready". The message is one line: the kernel's own
    reason when it gave one; ``output`` holds everything it printed."""

    def __init__(self, reason: str, output: list[str]) -> None:
        super().__init__(f"aos-kernel did not start: {reason}")
        self.reason = reason
        self.output = output

    @property
    def locked_by(self) -> int | None:
        """The pid of the kernel already using the data directory, when that is why."""
        found = re.search(r"another aos-kernel \(pid (\d+)\)", self.reason)
        return int(found.group(1)) if found else None


@dataclass
class KernelProcess:
    """A real ``aos-kernel`` in a subprocess, with its data dir and addresses.

    ``exit_with_parent``: the kernel stops by itself when this process exits,
    however it exits (``--exit-with PID``), so a kernel started for one command
    (``aos agent run``, ``aos demo``) never outlives it.
    """

    data_dir: str
    listen: list[str] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    proc: subprocess.Popen[str] | None = None
    addresses: list[str] = field(default_factory=list)
    health: str = ""
    output: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    exit_with_parent: bool = False

    @property
    def socket(self) -> str:
        return os.path.join(self.data_dir, "kernel.sock")

    @property
    def address(self) -> str:
        return self.addresses[0]

    @property
    def token_path(self) -> str:
        return os.path.join(self.data_dir, "admin.token")

    @property
    def admin_token(self) -> str:
        with open(self.token_path) as f:
            return f.read().strip()

    def command(self) -> list[str]:
        listen = self.listen or [f"unix:{self.socket}"]
        args = [sys.executable, "-m", "aos.kernel.daemon", "--data", self.data_dir]
        for address in listen:
            args += ["--listen", address]
        if self.exit_with_parent:
            args += ["--exit-with", str(os.getpid())]
        return args + self.extra_args

    def start(self, timeout: float = 30.0) -> KernelProcess:
        env = dict(os.environ if self.env is None else self.env)
        self.output, self.log_lines, self.addresses = [], [], []
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
        )
        ready = threading.Event()

        def read_stdout() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                line = line.rstrip("\n")
                self.output.append(line)
                if line.startswith("listening "):
                    self.addresses.append(line.split(" ", 1)[1])
                elif line.startswith("health grpc "):
                    self.health = line.split(" ", 2)[2]
                elif line == "ready":
                    ready.set()
            ready.set()  # stdout closed: the process is gone

        def read_stderr() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log_lines.append(line.rstrip("\n"))

        self._readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()
        try:
            became_ready = ready.wait(timeout)
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): never leave a half-started kernel behind
            self.kill()
            raise
        if not became_ready or self.proc.poll() is not None or "ready" not in self.output:
            self.kill()
            output = self.output + self.log_lines[-20:]
            raise KernelStartError(self._reason(became_ready), output)
        return self

    def _reason(self, became_ready: bool) -> str:
        """The kernel's one-line complaint (``aos-kernel: ...`` on stderr), else what is known."""
        for line in reversed(self.log_lines):
            if line.startswith("aos-kernel: "):
                return line[len("aos-kernel: "):]
        if not became_ready:
            return "it did not say ready in time"
        last = next((line for line in reversed(self.log_lines) if line.strip()), "")
        return f"it exited with status {self.proc.returncode if self.proc else '?'}" + (f": {last}" if last else "")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._close_pipes()
        return code

    def kill(self) -> None:
        """SIGKILL: the crash every durability claim must survive."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._close_pipes()

    def _close_pipes(self) -> None:
        # the readers end at EOF once the process is gone; then the pipes can close
        for reader in getattr(self, "_readers", []):
            reader.join(5)
        if self.proc is not None:
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None and not pipe.closed:
                    pipe.close()

    def wait_for_log(self, needle: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.log_lines):
                if needle in line:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line containing {needle!r}; last lines: {self.log_lines[-10:]}")

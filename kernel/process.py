"""Run ``aos-kernel`` as a child process and know where it listens.

``KernelProcess`` starts the daemon, waits on its own "ready" line (never on
a sleep), and reads back its addresses, health port and admin token. The CLI
uses it for ``aos demo`` and ``aos agent run``; tests use it (through
``aos.testing``) to put a real kernel behind every test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field


class KernelStartError(RuntimeError):
    pass


@dataclass
class KernelProcess:
    """A real ``aos-kernel`` in a subprocess, with its data dir and addresses."""

    data_dir: str
    listen: list[str] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    proc: subprocess.Popen[str] | None = None
    addresses: list[str] = field(default_factory=list)
    health: str = ""
    output: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)

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
        if not ready.wait(timeout) or self.proc.poll() is not None or "ready" not in self.output:
            self.kill()
            raise KernelStartError(
                "aos-kernel did not become ready:\n" + "\n".join(self.output + self.log_lines[-20:])
            )
        return self

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

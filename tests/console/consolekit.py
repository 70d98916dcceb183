"""Shared pieces of the console tests: a scripted world with real effects, and the console process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from aos.kernel.world.testing import SCRIPTED_MODULE, SCRIPTED_SCHEMAS

SCRIPT = "test/Script@1"
WORKFLOW = "test/scripted@1"


def scripted_manifest(root: str) -> dict[str, Any]:
    """A world around the scripted workflow (it emits what its event lists) with timer, portal, blob and a
    read-only host.fs grant on ``root``."""
    return {
        "version": 1,
        "name": "test/scripted",
        "schemas": {
            **SCRIPTED_SCHEMAS,
            "sys/BlobPut@1": {"record": {"data": "bytes"}},
            "sys/BlobPutReceipt@1": {"record": {"hash": "text", "size": "nat"}},
            "sys/TimerSetParams@1": {"record": {"deliver_at_ns": "nat", "key": {"option": "text"}}},
            "sys/TimerSetReceipt@1": {"record": {"delivered_at_ns": "nat", "key": {"option": "text"}}},
            "sys/FsPath@1": {"record": {"path": "text"}},
            "sys/Any@1": "any",
        },
        "modules": {"test/scripted@1": {"runtime": "python", "python_module": SCRIPTED_MODULE}},
        "workflows": {
            WORKFLOW: {"module": "test/scripted@1", "entry": "scripted", "state": "test/ScriptState@1",
                       "event": SCRIPT, "effects": ["sys/blob.put@1", "sys/timer.set@1", "sys/host.fs.read@1",
                                                    "sys/portal.send@1"]},
        },
        "effects": {
            "sys/blob.put@1": {"params": "sys/BlobPut@1", "receipt": "sys/BlobPutReceipt@1", "cap": "blob"},
            "sys/timer.set@1": {"params": "sys/TimerSetParams@1", "receipt": "sys/TimerSetReceipt@1", "cap": "timer"},
            "sys/host.fs.read@1": {"params": "sys/FsPath@1", "receipt": "sys/Any@1", "cap": "host.fs"},
            "sys/portal.send@1": {"params": "sys/Any@1", "receipt": "sys/Any@1", "cap": "portal"},
        },
        "grants": {
            "blob": {"cap": "blob"},
            "timer": {"cap": "timer"},
            "portal": {"cap": "portal"},
            "files": {"cap": "host.fs", "params": {"root": root, "read_only": True}},
        },
        "routing": [{"event": SCRIPT, "workflow": WORKFLOW}],
    }


def effect(name: str, **params: Any) -> dict[str, Any]:
    return {"effect": name, "params": params}


@dataclass
class ConsoleProcess:
    """``aos console`` in a subprocess; ``login`` is the one-time link it prints."""

    connect: str
    token_file: str
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    login: str = ""
    base: str = ""

    def start(self, timeout: float = 30.0) -> ConsoleProcess:
        args = [sys.executable, "-m", "aos.cli", "console", "--connect", self.connect, "--token-file",
                self.token_file, "--listen", "127.0.0.1:0", *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line.rstrip("\n"))
                found = re.search(r"(http://127\.0\.0\.1:\d+)/login\?token=\S+", line)
                if found:
                    self.login, self.base = found.group(0), found.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or not self.login:
            self.stop()
            raise RuntimeError("aos console did not print a login link: " + " | ".join(self.output[-10:]))
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)

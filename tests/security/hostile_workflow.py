"""A Python workflow that does what a hostile or broken module would: the security
suite puts this directory on a kernel's PYTHONPATH and allows the module with
``--python-module hostile_workflow``.

Importing it leaves a mark when ``HOSTILE_IMPORT_MARK`` names a file, so a test
can tell whether a kernel imported it at all.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

if os.environ.get("HOSTILE_IMPORT_MARK"):
    with open(os.environ["HOSTILE_IMPORT_MARK"], "a") as mark:
        mark.write("imported\n")


class Escape(BaseException):
    """Not an ``Exception``: a workflow's way to get past ``except Exception``."""


def _spin() -> None:
    while True:
        pass


ACTIONS = {
    "exit": lambda: sys.exit(0),
    "exit3": lambda: sys.exit(3),
    "interrupt": lambda: (_ for _ in ()).throw(KeyboardInterrupt()),
    "generator_exit": lambda: (_ for _ in ()).throw(GeneratorExit()),
    "base": lambda: (_ for _ in ()).throw(Escape("escaped")),
    "recursion": lambda: step({"event": {"value": {"do": "recursion"}}, "state": None}),
    "memory_error": lambda: (_ for _ in ()).throw(MemoryError()),
    "spin": _spin,
    "sleep": lambda: time.sleep(3600),
    "input": lambda: input(),
    "ok": lambda: None,
}


def step(inp: dict[str, Any]) -> dict[str, Any]:
    """Do what the event says; count the events that got through."""
    value = inp["event"]["value"]
    ACTIONS[value.get("do", "ok")]()
    state = inp["state"] or {"n": 0}
    return {"state": {"n": state["n"] + 1}}


def schemas() -> dict[str, Any]:
    return {"test/HostileState@1": {"record": {"n": "nat"}}, "test/Hostile@1": {"record": {"do": {"option": "text"}}}}


def manifest(module: str = "hostile_workflow", entry: str = "step") -> dict[str, Any]:
    return {
        "version": 1,
        "name": "test/hostile-python",
        "schemas": schemas(),
        "modules": {"test/hostile@1": {"runtime": "python", "python_module": module}},
        "workflows": {"test/hostile@1": {"module": "test/hostile@1", "entry": entry,
                                         "state": "test/HostileState@1", "event": "test/Hostile@1"}},
        "routing": [{"event": "test/Hostile@1", "workflow": "test/hostile@1"}],
    }

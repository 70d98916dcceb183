"""The Python workflow runtime, and the operator's allow list that bounds it.

A Python workflow runs in the kernel's own interpreter with the kernel's
authority, so a manifest may not pick the module: any importable name would
do (``subprocess`` with entry ``run``, ``sys`` with ``exit``), and even the
import runs code. The operator names the trusted modules (``aos-kernel
--python-module``); the kernel checks a manifest against that list *before*
importing anything, and an entry must be a public function defined in the
module itself, so a name the module merely imported (``os``, ``rmtree``) is
never callable as a workflow.

Inside the allow list a workflow is still not allowed to hurt the kernel:
whatever it raises (``SystemExit`` and ``KeyboardInterrupt`` included) is a
trap for that world, and a step that runs past its deadline is interrupted
(by ``SIGALRM`` on the kernel's main thread) and traps. That deadline is the
one thing here that depends on time: a step cut off by it may finish on a
faster replay, which then refuses the journal as nondeterministic and the
kernel quarantines the world, instead of hanging.
"""

from __future__ import annotations

import importlib
import inspect
import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType, ModuleType
from typing import Any

from aos.kernel.world import cbor
from aos.kernel.world.abi import Trap
from aos.kernel.world.errors import CborError, ModuleLoadError

# the project's own workflows: the agent SDK's session and the example worlds
DEFAULT_PYTHON_MODULES: tuple[str, ...] = ("aos.agents.session", "aos.agents.factory.*", "aos.kernel.world.examples.*")
DEFAULT_STEP_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class PythonAllowList:
    """Module names the operator trusts: ``pkg.mod`` exactly, or ``pkg.*`` for
    every module below ``pkg``."""

    patterns: tuple[str, ...] = DEFAULT_PYTHON_MODULES

    @classmethod
    def of(cls, extra: Iterable[str] = (), defaults: bool = True) -> PythonAllowList:
        names = (DEFAULT_PYTHON_MODULES if defaults else ()) + tuple(n.strip() for n in extra if n.strip())
        return cls(tuple(dict.fromkeys(names)))

    def allows(self, module: str) -> bool:
        for pattern in self.patterns:
            if pattern.endswith(".*"):
                if module.startswith(pattern[:-1]) and len(module) > len(pattern) - 1:
                    return True
            elif module == pattern:
                return True
        return False


class StepDeadline(BaseException):
    """Raised inside a Python step by the deadline alarm. A ``BaseException`` so
    that a workflow's own ``except Exception`` does not swallow it."""


class _Alarm:
    """One process-wide ``SIGALRM`` handler that interrupts only a step in progress."""

    def __init__(self) -> None:
        self.active = False
        self.installed = False

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        if self.active:
            self.active = False
            raise StepDeadline()

    def arm(self, seconds: float) -> bool:
        if seconds <= 0 or threading.current_thread() is not threading.main_thread():
            return False  # signals reach the main thread only; elsewhere there is no deadline
        if not self.installed:
            signal.signal(signal.SIGALRM, self._fire)
            self.installed = True
        self.active = True
        signal.setitimer(signal.ITIMER_REAL, seconds)
        return True

    def disarm(self) -> None:
        self.active = False
        signal.setitimer(signal.ITIMER_REAL, 0)


_ALARM = _Alarm()


class PythonRuntime:
    """A Python module from the operator's allow list whose public functions
    take the decoded step input and return the output dict. Anything a
    function raises, and running past ``step_seconds``, becomes a trap."""

    def __init__(self, module_path: str, allowed: PythonAllowList | None = None,
                 step_seconds: float = DEFAULT_STEP_SECONDS) -> None:
        allowed = allowed or PythonAllowList()
        if not allowed.allows(module_path):
            raise ModuleLoadError(
                f"python module {module_path!r} is not on this kernel's allow list "
                f"({', '.join(allowed.patterns) or 'empty'}); an operator adds it with "
                f"aos-kernel --python-module {module_path}")
        try:
            self._mod: ModuleType = importlib.import_module(module_path)
        except Exception as exc:  # noqa: BLE001 -- an import that fails is the module's problem, not the kernel's
            raise ModuleLoadError(f"cannot import python workflow module {module_path!r}: "
                                  f"{type(exc).__name__}: {exc}") from None
        self.step_seconds = step_seconds
        self._entries: dict[str, Any] = {}  # checked entry functions by name (a module is imported once)

    def entry(self, name: str) -> Any:
        """The workflow function ``name``, or raise ``ModuleLoadError``."""
        found = self._entries.get(name)
        if found is not None:
            return found
        fn = getattr(self._mod, name, None) if name.isidentifier() and not name.startswith("_") else None
        if not inspect.isfunction(fn) or fn.__module__ != self._mod.__name__:
            raise ModuleLoadError(f"python module {self._mod.__name__!r} defines no public function {name!r}")
        self._entries[name] = fn
        return fn

    def call(self, entry: str, step_input: dict[str, Any], state_bytes: bytes | None = None) -> Any | Trap:
        try:
            fn = self.entry(entry)
        except ModuleLoadError as exc:
            return Trap("WorkflowTrap", str(exc))
        try:
            # a fresh, canonically decoded copy: the function sees exactly what a
            # replay would give it (lists, not tuples) and cannot mutate journal objects
            if state_bytes is None:
                fresh = cbor.decode_body_trusted(cbor.encode_body(step_input))
            else:  # the state decodes from the cell's bytes (a copy already); the rest is copied
                rest = cbor.decode_body_trusted(cbor.encode_body({k: v for k, v in step_input.items() if k != "state"}))
                fresh = {"ctx": rest["ctx"], "event": rest["event"], "state": cbor.decode_trusted(state_bytes),
                         "version": rest["version"]}  # the keys in canonical order, as a decode gives them
        except CborError as exc:
            return Trap("WorkflowTrap", f"input not encodable: {exc}")
        armed = _ALARM.arm(self.step_seconds)
        try:
            try:
                result = fn(fresh)
            finally:
                if armed:  # the alarm may still fire up to here; the outer handler takes it
                    _ALARM.disarm()
        except StepDeadline:
            return Trap("DeadlineExceeded", f"step ran longer than {self.step_seconds:g} s")
        except BaseException as exc:  # noqa: BLE001 -- SystemExit, KeyboardInterrupt too: a trap, never the kernel's end
            return Trap("WorkflowTrap", f"{type(exc).__name__}: {exc}")
        return result

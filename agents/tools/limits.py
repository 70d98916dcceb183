"""Time budgets for the file-tool cores, checked cooperatively.

A tool's input comes from a world or a model, so its cost must be bounded.
The cores never block in one step for long (their regexes run in RE2, which
is linear, and every other loop is Python, which gives up the GIL every few
milliseconds), so a ``Deadline`` checked between steps is enough to stop
them: ``check()`` raises ``ToolTimeout`` once the budget is spent. Work in a
core has no side effects, so abandoning it leaves nothing half done.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import ToolTimeout


class Deadline:
    """``seconds`` from now on ``clock``; ``None`` never expires."""

    __slots__ = ("_at", "_clock", "seconds")

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._at = None if seconds is None else clock() + seconds

    def expired(self) -> bool:
        return self._at is not None and self._clock() >= self._at

    def check(self) -> None:
        """Raise ``ToolTimeout`` if the budget is spent."""
        if self.expired():
            raise ToolTimeout(f"gave up after {self.seconds:g}s (the tool's time limit); narrow the request")


NEVER = Deadline(None)

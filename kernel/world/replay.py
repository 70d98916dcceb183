"""Replay a journal through a ``World`` and check that it derives the same records.

How it works: input records are applied; the derived records each produces
are remembered and every derived record that follows in the journal must be
byte-identical to the next remembered one. Anything else (a tampered value,
a changed module, a reordered record) raises ``NondeterminismError``. A
journal may end while derived records are still expected (the driver crashed
after journaling an input but before its derived records were durable):
``finish()`` returns them so the driver appends them, and only then starts
their intents.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from aos.kernel.world.errors import NondeterminismError
from aos.kernel.world.records import Record
from aos.kernel.world.stepper import StepResult, World


class Replayer:
    """Feed journal records in order with ``feed``; call ``finish`` at the end."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._expect: deque[Record] = deque()

    def feed(self, record: Record) -> StepResult | None:
        """Apply an input record or check a derived one. Raises ``NondeterminismError``."""
        if not record.input:
            if not self._expect:
                raise NondeterminismError(f"journal has a {record.kind} record replay did not derive")
            want = self._expect.popleft()
            if want.encode() != record.encode():
                raise NondeterminismError(
                    f"at seq {self.world.seq}: journal has {record.to_value()!r}, replay derived {want.to_value()!r}")
            return None
        if self._expect:
            raise NondeterminismError(
                f"at seq {self.world.seq}: journal lacks derived {self._expect[0].kind} record before next input")
        res = self.world.apply(record)  # type: ignore[arg-type]
        if res.status == "rejected" and res.error is not None and res.error.code in ("Nondeterminism", "Internal"):
            raise NondeterminismError(res.error.message)
        self._expect.extend(res.records)
        return res

    def finish(self) -> tuple[Record, ...]:
        """Derived records the journal is missing at its end (journal them)."""
        rest = tuple(self._expect)
        self._expect.clear()
        return rest


def replay(world: World, records: Iterable[Record]) -> tuple[Record, ...]:
    """Feed all ``records`` into ``world``; return the missing tail (see ``finish``)."""
    r = Replayer(world)
    for rec in records:
        r.feed(rec)
    return r.finish()

"""Where the console records its interventions.

Every write the console makes (send an event, revoke or restore a grant,
hibernate, snapshot, fork, steer or abort an agent) is recorded twice: a
``request`` record before the call and a ``result`` record after it, so an
action whose result was lost still shows. With a Kernel token the records go
to the raw journal ``console.audit`` of the world's universe, through the
Journal capability (read it with ``aos journal read console.audit -u U``);
a token for worlds or one world cannot mint a Journal capability, so the
records go to a local JSON-lines file (``--audit-file``). Events sent are
in the world's own journal as well; a grant change, a hibernation or a
snapshot request is only here (a snapshot also leaves its marker record).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from aos.errors import SeqConflict, UnknownWorld

AUDIT_JOURNAL = "console.audit"


def default_audit_file() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "aos", "console-audit.jsonl")


def audit_record(phase: str, action: str, universe: str, world: str, who: dict[str, str],
                 params: dict[str, Any], outcome: dict[str, Any] | None = None) -> dict[str, Any]:
    record = {"at_ms": time.time_ns() // 1_000_000, "phase": phase, "action": action, "universe": universe,
              "world": world, **who, "params": params}
    if outcome is not None:
        record["outcome"] = outcome
    return record


class AuditLog:
    """Appends audit records to ``console.audit`` (Kernel token) or to a file (narrower tokens)."""

    def __init__(self, journal_for: Any, path: str) -> None:
        # journal_for(universe) -> JournalClient, or None when the token cannot mint one
        self._journal_for = journal_for
        self.path = path
        self._lock = asyncio.Lock()

    def where(self, universe: str = "") -> str:
        if self._journal_for is not None:
            return f"raw journal {AUDIT_JOURNAL} in universe {universe}" if universe else \
                f"raw journal {AUDIT_JOURNAL} in the universe of each world acted on"
        return f"file {self.path}"

    async def append(self, record: dict[str, Any]) -> None:
        data = json.dumps(record, sort_keys=True).encode()
        async with self._lock:  # one console appends in order; other writers are handled by SeqConflict
            if self._journal_for is None:
                await asyncio.to_thread(self._append_file, data)
                return
            journal = await self._journal_for(record["universe"])
            for _ in range(8):
                try:
                    next_seq, epoch = await journal.head(AUDIT_JOURNAL)
                except UnknownWorld:
                    next_seq, epoch = 0, 0
                try:
                    await journal.append(AUDIT_JOURNAL, next_seq, epoch, [data])
                    return
                except SeqConflict:
                    continue  # another console appended in between: read the head again
            raise SeqConflict(f"could not append to {AUDIT_JOURNAL}: it keeps moving")

    def _append_file(self, data: bytes) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    async def recent(self, universe: str, limit: int = 50) -> list[dict[str, Any]]:
        """The last ``limit`` records (of the universe's journal, or of the file)."""
        if self._journal_for is None:
            return await asyncio.to_thread(self._recent_file, limit)
        journal = await self._journal_for(universe)
        try:
            next_seq, _ = await journal.head(AUDIT_JOURNAL)
        except UnknownWorld:
            return []
        records, _ = await journal.read(AUDIT_JOURNAL, max(0, next_seq - limit), limit)
        return [json.loads(r) for r in records]

    def _recent_file(self, limit: int) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                lines = f.read().splitlines()[-limit:]
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

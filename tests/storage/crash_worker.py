"""A kernel that kills itself (SIGKILL) at an exact point of the storage protocol, for the crash tests.

Usage: ``crash_worker.py URL SCENARIO ACKS``. The storage handle is wrapped so
that, once armed, the process dies immediately before or after one chosen
PUT: nothing after that point runs, exactly as if the host lost power there.
ACKS gets one line per acknowledged record (``world_seq payload``), flushed
before the next write. Scenarios:

- ``append-after-put`` / ``append-before-put``: five acknowledged turns,
  then die right after / right before the sixth turn's log PUT.
- ``checkpoint-after-segment``: five turns, then die between the
  checkpoint's segment PUT and its head update.
- ``release-after-segment``: the same during a release (a hand-over).
- ``takeover-after-fence`` / ``takeover-after-segment``: as host B, steal
  the world from host A (alive in the test process) and die right after the
  fence landed in A's log / after the world's segment, before the head update.
- ``open-after-head-bump``: reopen host A's log and die between the log head
  bump and the fence object.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

from aos.kernel.storage import ObjectLogs, ObjectStore, StorageConfig, Stored, WorldHeads
from aos.kernel.storage.layout import log_head_key, log_key, log_prefix

UNIVERSE, WORLD = "crash", "w"


class DieAt:
    """An ObjectStore that SIGKILLs this process before or after the first PUT matching a test, once armed."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.trigger: tuple[str, Callable[[str], bool]] | None = None

    def arm(self, when: str, matches: Callable[[str], bool]) -> None:
        self.trigger = (when, matches)

    def _hit(self, when: str, key: str) -> None:
        if self.trigger is not None and self.trigger[0] == when and self.trigger[1](key):
            os.kill(os.getpid(), signal.SIGKILL)

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        self._hit("before", key)
        etag = self.inner.put(key, data, if_none_match=if_none_match, if_match=if_match)
        self._hit("after", key)
        return etag

    def get(self, key: str) -> Stored | None:
        return self.inner.get(key)

    def list(self, prefix: str, start_after: str = "") -> Iterator[str]:
        return self.inner.list(prefix, start_after)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def writer_scenario(store: DieAt, scenario: str, acks_path: str) -> None:
    logs = ObjectLogs(store)
    heads = WorldHeads(store, logs, logs.open("host-a", "host-a"))
    own = heads.acquire(UNIVERSE, WORLD)
    with open(acks_path, "w") as acks:
        for n in range(5):
            heads.commit_turn({own: [f"a:{n}".encode()]})
            acks.write(f"{n} a:{n}\n")
            acks.flush()
    log = heads.log
    assert log is not None
    if scenario in ("append-after-put", "append-before-put"):
        store.arm(scenario.split("-")[1], lambda key: key == log_key("host-a", log.next_seq))
        heads.commit_turn({own: [b"a:5"]})
    elif scenario == "checkpoint-after-segment":
        store.arm("after", lambda key: "/seg/" in key)
        heads.checkpoint(own)
    elif scenario == "release-after-segment":
        store.arm("after", lambda key: "/seg/" in key)
        heads.release(own)


def main() -> None:
    url, scenario, acks_path = sys.argv[1:4]
    store = DieAt(StorageConfig.from_url(url).open())
    if scenario.startswith(("append", "checkpoint", "release")):
        writer_scenario(store, scenario, acks_path)
    elif scenario.startswith("takeover"):
        logs = ObjectLogs(store)
        heads = WorldHeads(store, logs, logs.open("host-b", "host-b"))
        if scenario == "takeover-after-fence":
            store.arm("after", lambda key: key.startswith(log_prefix("host-a")) and not key.endswith("/head"))
        else:
            store.arm("after", lambda key: "/seg/" in key)
        heads.acquire(UNIVERSE, WORLD)
    elif scenario == "open-after-head-bump":
        store.arm("after", lambda key: key == log_head_key("host-a"))
        ObjectLogs(store).open("host-a", "host-a")
    print(f"{scenario}: the crash point was never reached", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()

"""A host restarting while its worlds fail over: at start it owns again only the worlds whose head
still names it, and one taken over between its look at the head and its reacquire is gone, never
taken back (that would fence the live host that took it over, which then stops). Found by
tests/scheduler/test_chaos.py: a SIGKILLed host restarted during its own failover fenced the host
that had just acquired one of its worlds.
"""

from __future__ import annotations

import asyncio

import pytest

from aos.errors import OwnershipLost
from aos.kernel.storage import ObjectLogs, StorageConfig, WorldHeads
from aos.kernel.storage.hosting import HostStorage
from aos.kernel.storage.testing import Backend
from aos.kernel.store import KernelStore


def test_a_restarted_host_does_not_take_back_a_world_taken_over_meanwhile(backend: Backend, tmp_path) -> None:
    disk = KernelStore(str(tmp_path / "host-a"))
    first = HostStorage(StorageConfig.from_url(backend.url), disk, "host-a")
    first.open()
    asyncio.run(first.create("u", "w"))
    # host-a dies; host-b takes the world over, fencing host-a's generation
    objects = backend.open()
    logs = ObjectLogs(objects)
    b = WorldHeads(objects, logs, logs.open("host-b", "host-b"))
    taken = b.acquire("u", "w")
    # host-a starts again (a new generation) and, having read the head while it still named host-a,
    # reacquires: refused, and host-b keeps writing
    again = HostStorage(StorageConfig.from_url(backend.url), disk, "host-a")
    again.open()
    with pytest.raises(OwnershipLost):
        asyncio.run(again.reacquire("u", "w"))
    b.commit_turn({taken: [b"after"]})
    head = WorldHeads(backend.open()).head("u", "w")
    assert head is not None and head.owner == "host-b"
    assert WorldHeads(backend.open()).history("u", "w").records == (b"after",)

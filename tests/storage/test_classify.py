"""Sorting a host's ops by world (kernel/storage/classify.py), against the keys the real stores write.

The ops are made by the kernel's own stores on a real RocksDB (journal,
registry, mailboxes, timers), so a change of key encoding there breaks
these tests rather than silently leaving a world's state behind on a move.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator

import pytest

from aos.kernel.host.effects import inbox
from aos.kernel.host.registry import WorldMeta, WorldRegistry, journal_universe
from aos.kernel.journal.store import JournalStore
from aos.kernel.mailbox.store import MailboxStore
from aos.kernel.store import GroupCommitter, KernelStore, Op
from aos.kernel.storage.classify import Kind, Owned, TurnClassifier, classify, timers_of, world_state_ops
from aos.kernel.timers.store import TimerStore


class Capture(GroupCommitter):
    """A committer that writes for real and remembers every turn's ops."""

    def __init__(self, store: KernelStore) -> None:
        self.turns_seen: list[list[Op]] = []

        def write(ops: list[Op]) -> None:
            self.turns_seen.append(list(ops))
            store.write(ops)

        super().__init__(store, writer=write)


@pytest.fixture
def store() -> Iterator[KernelStore]:
    with tempfile.TemporaryDirectory(prefix="aos-classify-") as path:
        db = KernelStore(path)
        try:
            yield db
        finally:
            db.close()


def test_every_kind_of_world_state_is_sorted_to_its_world(store: KernelStore) -> None:
    """Records, the journal head, the registry entry, inbox mail and ids, and world timers each name their world."""

    async def main() -> list[list[Op]]:
        committer = Capture(store)
        committer.start()
        journal, mail = JournalStore(store, committer), MailboxStore(store, committer)
        timers = TimerStore(store, committer, mail)
        await journal.append(journal_universe("u"), "w1", 0, 1, [b"r0", b"r1"])
        await committer.commit([WorldRegistry(store).put_op(WorldMeta("u", "w1", "w1", "m", "h", 0))])
        await mail.send("u", inbox("w1"), "msg-1", b"payload")
        await timers.schedule("u", "#wt.abc", 10**15, inbox("w1"), b"fire")
        await timers.schedule("u", "client-timer", 10**15, "client-box", b"x")
        await journal.append("u", "raw", 0, 1, [b"not a world"])  # a raw journal: the host's
        await mail.send("u", "client-box", "m", b"x")
        await committer.close()
        return committer.turns_seen

    ops = [op for turn in asyncio.run(main()) for op in turn]
    owned = {(op.family, classify(op)) for op in ops}
    assert ("journal", Owned(Kind.RECORD, "u", "w1", 0)) in owned
    assert ("journal", Owned(Kind.RECORD, "u", "w1", 1)) in owned
    assert ("heads", Owned(Kind.DERIVED, "u", "w1")) in owned
    for family in ("worlds", "mail", "maildedup", "timers"):
        assert (family, Owned(Kind.STATE, "u", "w1")) in owned, family
    host = [op for op in ops if classify(op) is None]
    assert {op.family for op in host} >= {"journal", "heads", "mail", "maildedup", "timers"}  # raw and client ones
    assert all(b"w1" not in op.key for op in host)


def test_a_timer_delete_goes_to_the_world_the_timer_was_aimed_at() -> None:
    """A delete carries no target: it is resolved from the same turn first, then from what was stored."""
    from aos.kernel.names import key

    set_op = Op("timers", key("u", "#wt.t1"), b"\x00" * 8 + (len("#world.w1")).to_bytes(2, "big") + b"#world.w1")
    delete = Op("timers", key("u", "#wt.t1"), None)
    assert classify(delete) is None  # alone, nobody can tell
    turn = TurnClassifier(lambda k: None)
    assert turn.classify(set_op) == Owned(Kind.STATE, "u", "w1")
    assert turn.classify(delete) == Owned(Kind.STATE, "u", "w1")
    later = TurnClassifier(lambda k: ("u", "w1") if k == delete.key else None)
    assert later.classify(delete) == Owned(Kind.STATE, "u", "w1")
    assert timers_of([set_op]) == {set_op.key: ("u", "w1")} and timers_of([set_op, delete]) == {}
    # out of a log tail: the world's earlier state says whose timer it was
    assert world_state_ops([[delete]], "u", "w1", earlier=[set_op]) == [delete]
    assert world_state_ops([[delete]], "u", "w2", earlier=[set_op]) == []

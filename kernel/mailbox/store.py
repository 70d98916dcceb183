"""Durable mailboxes: at-least-once delivery, deduplicated by message id.

How it works: a mailbox is a queue of messages under ``mail`` keyed by a
per-mailbox sequence number; ``maildedup`` remembers every message id a
mailbox ever accepted, so a resend is recognised forever. A message leaves
the queue only when a subscriber acknowledged it (``ack``), so a crash between
delivery and acknowledgement means one repeat, never a loss.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from aos.kernel.names import key, seq_key
from aos.kernel.notify import Notifier
from aos.kernel.store import GroupCommitter, KernelStore, Op

_MESSAGE = struct.Struct(">qH")  # sentAtMs, len(messageId); then id, then payload


@dataclass(frozen=True, slots=True)
class MailMessage:
    mailbox: str
    message_id: str
    payload: bytes
    sent_at_ms: int
    seq: int


def _encode(message_id: str, payload: bytes, sent_at_ms: int) -> bytes:
    raw_id = message_id.encode()
    return _MESSAGE.pack(sent_at_ms, len(raw_id)) + raw_id + payload


def _decode(mailbox: str, seq: int, raw: bytes) -> MailMessage:
    sent_at_ms, id_len = _MESSAGE.unpack_from(raw)
    start = _MESSAGE.size
    return MailMessage(mailbox, raw[start : start + id_len].decode(), raw[start + id_len :], sent_at_ms, seq)


class MailboxStore:
    def __init__(self, store: KernelStore, committer: GroupCommitter) -> None:
        self._store = store
        self._committer = committer
        self._next_seq: dict[bytes, int] = {}
        self._in_flight: set[bytes] = set()  # dedup keys accepted but not yet synced
        self.arrived = Notifier()
        self._attempts: dict[tuple[bytes, int], int] = {}  # deliveries since this kernel started
        # in-process consumers (the world host) hear of every arrival: (universe, mailbox)
        self.arrival_listeners: list[Callable[[str, str], None]] = []

    def attempt(self, box_key: bytes, seq: int) -> int:
        """Count one more delivery of a queued message; returns its attempt number."""
        count = self._attempts.get((box_key, seq), 0) + 1
        self._attempts[(box_key, seq)] = count
        return count

    def _allocate(self, box_key: bytes) -> int:
        seq = self._next_seq.get(box_key)
        if seq is None:
            seq = 0
            it = self._store.family("mail").iter()
            it.seek_for_prev(box_key + b"\xff" * 8)
            if it.valid() and it.key().startswith(box_key):
                seq = int.from_bytes(it.key()[len(box_key) :], "big") + 1
        self._next_seq[box_key] = seq + 1
        return seq

    def forget(self, universe: str, mailbox: str) -> None:
        """Drop what is cached about a mailbox whose messages were replaced under the store (a world's
        inbox that arrived from or left for another kernel); its next seq is read again on next use."""
        self._next_seq.pop(key(universe, mailbox), None)

    def enqueue_ops(self, universe: str, mailbox: str, message_id: str, payload: bytes) -> list[Op] | None:
        """The writes that enqueue a message, or None if the id was seen before.

        The caller must commit the ops and then call ``committed``.
        """
        dedup_key = key(universe, mailbox, message_id)
        if dedup_key in self._in_flight or self._store.get("maildedup", dedup_key) is not None:
            return None
        self._in_flight.add(dedup_key)
        box_key = key(universe, mailbox)
        seq = self._allocate(box_key)
        now_ms = time.time_ns() // 1_000_000
        return [
            Op("mail", seq_key(box_key, seq), _encode(message_id, payload, now_ms)),
            Op("maildedup", dedup_key, b""),
        ]

    def claim_ops(self, universe: str, mailbox: str, message_id: str) -> list[Op] | None:
        """The write that marks a message id seen, for mail consumed in the same write as it arrives (a
        portal event journaled straight into an awake world): None if the id was seen before. The caller
        commits the ops with what consumed the message, then calls ``claimed``."""
        dedup_key = key(universe, mailbox, message_id)
        if dedup_key in self._in_flight or self._store.get("maildedup", dedup_key) is not None:
            return None
        self._in_flight.add(dedup_key)
        return [Op("maildedup", dedup_key, b"")]

    def claimed(self, universe: str, mailbox: str, message_id: str) -> None:
        self._in_flight.discard(key(universe, mailbox, message_id))

    def committed(self, universe: str, mailbox: str, message_id: str) -> None:
        self._in_flight.discard(key(universe, mailbox, message_id))
        self.arrived.notify(key(universe, mailbox))
        for listener in self.arrival_listeners:
            listener(universe, mailbox)

    async def send(self, universe: str, mailbox: str, message_id: str, payload: bytes) -> bool:
        ops = self.enqueue_ops(universe, mailbox, message_id, payload)
        if ops is None:
            return False
        try:
            await self._committer.commit(ops)
        finally:
            self.committed(universe, mailbox, message_id)
        return True

    def queued(self, universe: str, mailbox: str, limit: int) -> list[MailMessage]:
        box_key = key(universe, mailbox)
        out = []
        for raw_key, raw in self._store.scan("mail", box_key):
            out.append(_decode(mailbox, int.from_bytes(raw_key[len(box_key) :], "big"), raw))
            if len(out) >= limit:
                break
        return out

    def count(self, universe: str, mailbox: str) -> int:
        return sum(1 for _ in self._store.scan("mail", key(universe, mailbox)))

    def ack_ops(self, universe: str, mailbox: str, seqs: list[int]) -> list[Op]:
        """The deletes that acknowledge messages; commit them with whatever consumed them."""
        box_key = key(universe, mailbox)
        return [Op("mail", seq_key(box_key, seq), None) for seq in seqs]

    async def ack(self, universe: str, mailbox: str, seqs: list[int]) -> None:
        box_key = key(universe, mailbox)
        await self._committer.commit(self.ack_ops(universe, mailbox, seqs))
        for seq in seqs:
            self._attempts.pop((box_key, seq), None)

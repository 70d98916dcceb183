"""The storage contracts: what a kernel needs from shared storage, as Protocols
and frozen records, whatever the backend (S3 via boto3, or a local directory).

Four layers, each over the one below:

- ``ObjectStore``: named immutable-or-CAS objects with S3's conditional
  writes (``If-None-Match: *`` creates, ``If-Match: <etag>`` replaces).
  Everything above is written against this, so S3 and a directory behave
  identically by construction, and one conformance suite checks both.
- ``LogStore`` / ``WriteAheadLog``: a per-host write-ahead log of group-commit
  turns (``LogBatch``, one object per turn), fenced in the manner of SlateDB.
- ``WorldStore``: per-world heads (owner, epoch, flushed seq, unflushed tail,
  snapshot) and segments; acquire, checkpoint, release, cold reads.
- ``BlobStore``: the universe's content-addressed blobs.

Calls are blocking (boto3 is): a kernel calls them from its commit thread,
exactly where ``KernelStore.write`` runs today.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aos.errors import Fenced, OwnershipLost, StorageError, StorageUnavailable
from aos.kernel.store import Op

if TYPE_CHECKING:
    from aos.kernel.storage.ownership import Ownership

__all__ = [
    "BlobStore",
    "CorruptObject",
    "FenceResult",
    "Fenced",
    "LogBatch",
    "LogHead",
    "LogStore",
    "ObjectStore",
    "Op",
    "OwnershipLost",
    "PreconditionFailed",
    "Snapshot",
    "StorageError",
    "StorageUnavailable",
    "Stored",
    "TailRef",
    "WorldHead",
    "WorldHistory",
    "WorldStore",
    "WriteAheadLog",
]


# --- errors that stay inside the storage layer (no wire code of their own) ----------------------


class PreconditionFailed(StorageError):
    """A conditional write lost: the object exists (If-None-Match) or is not the expected version (If-Match).

    The protocol layers above turn it into ``Fenced``, ``OwnershipLost`` or a
    retry; it never reaches a client as such.
    """


class CorruptObject(StorageError):
    """An object's bytes do not decode as what its key says it is (tampered, truncated or foreign)."""


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    """An object's bytes and the ETag to pass as ``if_match`` to replace exactly this version."""

    data: bytes
    etag: str


@dataclass(frozen=True, slots=True)
class LogBatch:
    """One object of a write-ahead log: a turn's ops, or (``fence``) a generation boundary.

    ``epoch`` is the log generation that wrote it. A fence of epoch E at seq F
    ends every generation below E: their writers write contiguously and so
    must all lose the race for F.
    """

    log: str
    seq: int
    epoch: int
    writer: str
    ops: tuple[Op, ...] = ()
    fence: bool = False


@dataclass(frozen=True, slots=True)
class LogHead:
    """``logs/<log>/head``: the log's newest generation and where its fence is (-1: none yet)."""

    log: str
    epoch: int
    owner: str | None  # the writer of generation ``epoch``; None when it was a takeover fence
    fence_seq: int


@dataclass(frozen=True, slots=True)
class FenceResult:
    """A fence that is in the log: every generation below ``epoch`` wrote only below ``seq``."""

    log: str
    epoch: int
    seq: int


@dataclass(frozen=True, slots=True)
class TailRef:
    """Where a world's unflushed records are: log ``log``, generation ``log_epoch``, from seq ``start``."""

    log: str
    log_epoch: int
    start: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A world snapshot blob that covers the world's records below ``seq``."""

    address: str
    seq: int


@dataclass(frozen=True, slots=True)
class WorldHead:
    """``u/<universe>/worlds/<world>/head``: who owns the world and where its history is.

    Records ``[0, flushed)`` are in the world's segments. With an owner, later
    records are in ``tail``; released (no owner), ``flushed`` is the whole
    history. ``epoch`` goes up by one on every acquire.

    ``ops`` counts the world's state ops (registry entry, inbox mail, accepted
    mail ids, kernel timers: ``classify.py``) already in its op segments; the
    rest are in the same tail. ``address`` is where the owner says it can be
    reached (its listen address), so others can say where the world went.
    """

    universe: str
    world: str
    owner: str | None
    epoch: int
    flushed: int
    tail: TailRef | None
    snapshot: Snapshot | None = None
    ops: int = 0
    address: str | None = None

    @property
    def released(self) -> bool:
        return self.owner is None


@dataclass(frozen=True, slots=True)
class WorldHistory:
    """A world's records from ``first`` on, read without touching any other world's objects."""

    head: WorldHead | None
    first: int
    records: tuple[bytes, ...]

    @property
    def next_seq(self) -> int:
        return self.first + len(self.records)


# --- contracts ----------------------------------------------------------------------------------


class ObjectStore(Protocol):
    """S3's object model: whole-object PUT with conditions, GET with ETag, ordered LIST."""

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        """Store ``data`` under ``key``; return its ETag.

        ``if_none_match`` creates only (``PreconditionFailed`` if the key
        exists); ``if_match`` replaces only that version (``PreconditionFailed``
        if it changed or is gone). Raises ``StorageUnavailable`` once retries
        are exhausted: the write may or may not have happened.
        """
        ...

    def get(self, key: str) -> Stored | None:
        """The object and its ETag, or None if there is no such key."""
        ...

    def list(self, prefix: str, start_after: str = "") -> Iterator[str]:
        """Keys under ``prefix`` in byte order, after ``start_after`` if given."""
        ...


class WriteAheadLog(Protocol):
    """One generation of a log, held by its single writer."""

    log: str
    epoch: int
    writer: str

    @property
    def next_seq(self) -> int:
        """The seq the next append will take."""
        ...

    def append(self, ops: Sequence[Op]) -> int:
        """Write one turn as one object; return its seq once it is in the store.

        Raises ``Fenced`` if a newer generation fenced the log (this writer must
        stop acknowledging anything, for good), ``StorageUnavailable`` if the
        store kept failing (the handle is then unusable: reopen the log).
        """
        ...


class LogStore(Protocol):
    """Opening, fencing and reading logs."""

    def open(self, log: str, writer: str) -> WriteAheadLog:
        """Start a new generation of ``log`` owned by ``writer``, fencing every older one."""
        ...

    def fence(self, log: str, by: str) -> FenceResult:
        """End the current generation of ``log`` without taking it over (a dead host's log)."""
        ...

    def read(self, log: str, start: int = 0) -> Iterator[LogBatch]:
        """The log's objects from ``start``, in seq order, until the first missing seq."""
        ...

    def head(self, log: str) -> LogHead | None:
        ...


class WorldStore(Protocol):
    """World ownership and per-world history (see ``worldhead.py`` for the protocol)."""

    def head(self, universe: str, world: str) -> WorldHead | None:
        ...

    def history(self, universe: str, world: str, from_seq: int = 0) -> WorldHistory:
        """The world's records from ``from_seq``, reading only its own objects and its owner's log tail."""
        ...

    def acquire(self, universe: str, world: str) -> Ownership:
        """Become the world's only writer: epoch + 1, the previous owner fenced and recovered if it did not release."""
        ...

    def commit_turn(self, appends: Mapping[Ownership, list[bytes]]) -> int:
        """Append several owned worlds' records as one log object; return its log seq once stored."""
        ...

    def checkpoint(self, own: Ownership, snapshot: Snapshot | None = None) -> WorldHead:
        """Move committed records to the world's segments; ``OwnershipLost`` if it was taken."""
        ...

    def release(self, own: Ownership, snapshot: Snapshot | None = None) -> WorldHead:
        """Flush everything and leave the world unowned, so the next acquirer needs no fence."""
        ...


class BlobStore(Protocol):
    """A universe's content-addressed blobs (``sha256:<hex>``), verified on every read."""

    def put(self, universe: str, data: bytes) -> str:
        ...

    def get(self, universe: str, address: str) -> bytes:
        ...

    def has(self, universe: str, address: str) -> bool:
        ...

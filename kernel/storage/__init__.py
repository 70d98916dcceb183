"""Shared storage: a universe's journals, world heads and blobs on S3 (or a directory).

A kernel started with ``--storage`` runs on it (``HostStorage``, with the
hand-over in ``kernel/host/handover.py``; see docs/storage.md). The pieces,
bottom up:

- ``StorageConfig.from_url("s3://BUCKET/PREFIX" | "file:///PATH").open()``:
  an ``ObjectStore`` (``S3Objects`` over boto3, or ``LocalObjects``).
- ``ObjectLogs``: per-host write-ahead logs, one object per group-commit
  turn, fenced in the manner of SlateDB (``open``, ``fence``, ``read``,
  ``recover``); ``LogWriter.append`` raises ``Fenced`` once superseded.
- ``WorldHeads``: acquire, checkpoint and release worlds, cold reads of one
  world's history (``history``); ``OwnershipLost`` when a world was taken.
- ``ObjectCas``: content-addressed blobs with the host's RocksDB as a cache.
- ``classify``: which hosted world a kernel op belongs to (``classify.py``).
- ``HostStorage``: one kernel's log in its group commit, its worlds'
  checkpoints, acquire and release (``hosting.py``).
"""

from aos.kernel.storage.classify import classify
from aos.kernel.storage.config import StorageConfig
from aos.kernel.storage.contract import (
    BlobStore,
    CorruptObject,
    FenceResult,
    Fenced,
    LogBatch,
    LogHead,
    LogStore,
    ObjectStore,
    OwnershipLost,
    PreconditionFailed,
    Snapshot,
    StorageError,
    StorageUnavailable,
    Stored,
    TailRef,
    WorldHead,
    WorldHistory,
    WorldStore,
    WriteAheadLog,
)
from aos.kernel.storage.local import LocalObjects
from aos.kernel.storage.objects import RequestCounter, S3Objects
from aos.kernel.storage.ownership import Ownership
from aos.kernel.storage.s3cas import BlobCache, KernelStoreCache, ObjectCas
from aos.kernel.storage.s3log import LogWriter, ObjectLogs
from aos.kernel.storage.hosting import HostStorage
from aos.kernel.storage.worldhead import WorldHeads

__all__ = [
    # configuration and objects
    "StorageConfig",
    "ObjectStore",
    "S3Objects",
    "LocalObjects",
    "RequestCounter",
    "Stored",
    # the log
    "LogStore",
    "WriteAheadLog",
    "ObjectLogs",
    "LogWriter",
    "LogBatch",
    "LogHead",
    "FenceResult",
    # worlds
    "WorldStore",
    "WorldHeads",
    "Ownership",
    "WorldHead",
    "WorldHistory",
    "TailRef",
    "Snapshot",
    # blobs
    "BlobStore",
    "BlobCache",
    "ObjectCas",
    "KernelStoreCache",
    # the kernel
    "HostStorage",
    "classify",
    # errors
    "StorageError",
    "StorageUnavailable",
    "Fenced",
    "OwnershipLost",
    "PreconditionFailed",
    "CorruptObject",
]

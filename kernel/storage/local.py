"""The local backend: the ``ObjectStore`` contract over a directory.

One file per key; conditional writes are checked and applied under an
``flock`` on ``<root>/.lock`` (so they are atomic across threads *and*
processes, which lets two kernels on one machine fence each other exactly as
they would on S3); every write goes to a temporary file that is fsynced and
renamed into place, and the directory is fsynced, so a write that returned
survives a crash and a reader never sees half an object. ETags are the MD5 of
the bytes in quotes, like S3's for single-part objects.

Everything above the object layer (log, world heads, CAS) is the same code on
both backends, so this is also what ``file:///PATH`` storage means: the
shared-storage protocol on one machine, without S3.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from aos.errors import InvalidArgument, StorageUnavailable
from aos.kernel.storage.contract import PreconditionFailed, Stored
from aos.kernel.storage.objects import RequestCounter

_TMP = ".tmp-"


def etag_of(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


class LocalObjects:
    """``ObjectStore`` over the directory ``root`` (created if missing)."""

    def __init__(self, root: str, counter: RequestCounter | None = None) -> None:
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot create the storage directory {root}: {exc.strerror}") from None
        self.root = os.path.realpath(root)
        self._lock_path = os.path.join(self.root, ".lock")
        self.counter = counter if counter is not None else RequestCounter()

    def __repr__(self) -> str:
        return f"LocalObjects({self.root})"

    def _path(self, key: str) -> str:
        pieces = key.split("/")
        if not key or any(p in ("", ".", "..") or p.startswith(_TMP) for p in pieces) or key == ".lock":
            raise InvalidArgument(f"bad object key {key[:80]!r}")
        return os.path.join(self.root, *pieces)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # flock locks belong to the open file description, so a fresh open per
        # call excludes other threads of this process as well as other processes
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        path = self._path(key)
        self.counter.add("PutObject")
        data = bytes(data)
        try:
            with self._locked():
                if if_none_match or if_match is not None:
                    current = _read(path)
                    if if_none_match and current is not None:
                        raise PreconditionFailed(f"{key}: the object exists")
                    if if_match is not None and (current is None or etag_of(current) != _quoted(if_match)):
                        raise PreconditionFailed(f"{key}: the object changed or is gone")
                _write_synced(path, data)
        except OSError as exc:
            raise StorageUnavailable(f"PUT {key}: {exc.strerror or exc}") from None
        return etag_of(data)

    def get(self, key: str) -> Stored | None:
        path = self._path(key)
        self.counter.add("GetObject")
        try:
            data = _read(path)
        except OSError as exc:
            raise StorageUnavailable(f"GET {key}: {exc.strerror or exc}") from None
        return None if data is None else Stored(data, etag_of(data))

    def list(self, prefix: str, start_after: str = "") -> Iterator[str]:
        # S3 LIST has no directories: every key under the prefix, recursively, in byte order
        base, _, _ = prefix.rpartition("/")
        top = os.path.join(self.root, *base.split("/")) if base else self.root
        self.counter.add("ListObjectsV2")
        keys = []
        try:
            for folder, dirs, files in os.walk(top):
                dirs[:] = [d for d in dirs if not d.startswith(_TMP)]
                rel = os.path.relpath(folder, self.root)
                rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
                for name in files:
                    name_key = rel + name
                    if name.startswith(_TMP) or name_key == ".lock":
                        continue
                    if name_key.startswith(prefix) and name_key > start_after:
                        keys.append(name_key)
        except OSError as exc:
            raise StorageUnavailable(f"LIST {prefix}: {exc.strerror or exc}") from None
        keys.sort(key=lambda k: k.encode())
        # S3 returns at most 1,000 keys per request: count the pages it would have cost
        extra = (len(keys) - 1) // 1000
        if extra > 0:
            self.counter.add("ListObjectsV2", extra)
        yield from keys


def _quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: str, data: bytes) -> None:
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        # create each missing level and sync its parent, so the new file's path survives a crash
        missing = []
        walk = folder
        while not os.path.isdir(walk):
            missing.append(walk)
            walk = os.path.dirname(walk)
        for level in reversed(missing):
            os.mkdir(level)
            _fsync_dir(os.path.dirname(level))
    tmp = os.path.join(folder, f"{_TMP}{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)

"""``Cas`` over Cap'n Proto: conversion and scope checks only; logic is in ``store``."""

from __future__ import annotations

import hashlib
from typing import Any

from aos.caps.held import HeldImpl
from aos.errors import CorruptBlob, PayloadTooLarge, PermissionDenied, ProtocolError, ResourceExhausted
from aos.kernel.rpc import check_size, current_peer, remote
from aos.schemas import cas_capnp


class CasImpl(HeldImpl, cas_capnp.Cas.Server):  # type: ignore[misc,name-defined]
    def _writable(self) -> None:
        if self.grant.scope.read_only:
            raise PermissionDenied("this CAS capability is read-only")

    @remote()
    async def put(self, data: bytes, _context: Any, **kwargs: Any) -> str:
        self._writable()
        check_size(data, self.services.limits.max_message_bytes, "blob")
        return await self.services.cas.put(self.grant.scope.universe, data)

    @remote()
    async def get(self, hash: str, _context: Any, **kwargs: Any) -> bytes:
        data = self.services.cas.get(self.grant.scope.universe, hash)
        if len(data) > self.services.limits.max_message_bytes:
            raise PayloadTooLarge(f"blob is {len(data)} bytes, more than one message; use read()")
        return data

    @remote()
    async def has(self, hash: str, _context: Any, **kwargs: Any) -> bool:
        return self.services.cas.has(self.grant.scope.universe, hash)

    @remote()
    async def stat(self, hash: str, _context: Any, **kwargs: Any) -> int:
        return self.services.cas.size(self.grant.scope.universe, hash)

    @remote()
    async def upload(self, _context: Any, **kwargs: Any) -> Any:
        self._writable()
        return BlobWriterImpl(self)

    @remote()
    async def read(self, hash: str, offset: int, length: int, _context: Any, **kwargs: Any) -> bytes:
        data = self.services.cas.get(self.grant.scope.universe, hash)
        length = min(length, self.services.limits.max_message_bytes)
        return data[offset : offset + length]

    @remote()
    async def readOnly(self, _context: Any, **kwargs: Any) -> Any:
        return self.services.attenuate(self.grant, read_only=True)


class BlobWriterImpl(cas_capnp.BlobWriter.Server):  # type: ignore[misc,name-defined]
    """Buffers one upload in memory; nothing is stored until ``commit``.

    It counts against its connection's uploads until it is committed, dropped
    by the client, or its connection ends (then its buffer is freed at once).
    """

    def __init__(self, cas: CasImpl) -> None:
        self._cas = cas
        self._chunks = bytearray()
        self._hasher = hashlib.sha256()
        self._done = False
        self.peer = current_peer()
        if self.peer is not None:
            self.peer.add_upload(self)

    @property
    def buffered(self) -> int:
        return len(self._chunks)

    def release(self) -> None:
        self._done = True
        self._chunks = bytearray()

    @remote(check_grant=False)
    async def write(self, chunk: bytes, _context: Any, **kwargs: Any) -> None:
        if self._done:
            raise ProtocolError("this upload was already committed")
        self._cas.grant.check()
        limits = self._cas.services.limits
        check_size(chunk, limits.max_message_bytes, "chunk")
        if len(self._chunks) + len(chunk) > limits.max_blob_bytes:
            raise PayloadTooLarge(f"blob would exceed the limit of {limits.max_blob_bytes} bytes")
        if self.peer is not None and len(chunk) > self.peer.upload_room():
            raise ResourceExhausted(
                f"this connection's uploads would buffer more than {self.peer.limits.upload_bytes} bytes;"
                " commit or drop one first"
            )
        self._chunks += chunk
        self._hasher.update(chunk)

    @remote(check_grant=False)
    async def commit(self, expectedHash: str, _context: Any, **kwargs: Any) -> Any:
        if self._done:
            raise ProtocolError("this upload was already committed")
        self._cas.grant.check()
        self._done = True
        if self.peer is not None:
            self.peer.end_upload(self)
        address = "sha256:" + self._hasher.hexdigest()
        if expectedHash and expectedHash != address:
            raise CorruptBlob(f"upload hashes to {address}, not the expected {expectedHash}")
        data, self._chunks = bytes(self._chunks), bytearray()
        stored = await self._cas.services.cas.put(self._cas.grant.scope.universe, data)
        return stored, len(data)

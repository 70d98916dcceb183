"""One running kernel: data directory, storage, listeners, health.

``KernelServer.start`` takes the data-directory lock, opens RocksDB, makes
sure an admin token exists, and starts every listener; ``stop`` undoes it in
reverse, writing whatever is queued before the database closes.

With ``storage`` (``--storage``) the kernel is one host of a shared store:
its log is opened (and what RocksDB missed replayed) before any service
exists, every turn goes through it, and its listeners are up before its
worlds are re-acquired, so the heads it writes name where it listens.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import capnp

from aos.caps.gateway import GatewayImpl
from aos.errors import DataDirLocked, InvalidArgument
from aos.kernel.config import KernelConfig
from aos.kernel.health import HealthEndpoint
from aos.kernel.rpc import Peer, PeerLimits
from aos.kernel.services import KernelServices
from aos.kernel.store import GroupCommitter, KernelStore

if TYPE_CHECKING:
    from aos.kernel.storage.hosting import HostStorage

log = logging.getLogger("aos.kernel")
# kernel/storage/hosting.py META_HOST, named here so an embedded kernel never imports boto3
_SHARED_MARK = b"storage.host"
COMMIT_LINGER = 0.02  # seconds a busy turn may wait for its callers on shared storage

ADMIN_TOKEN_FILE = "admin.token"
# Room for one maximal Data payload plus framing, in 8-byte words.
_TRAVERSAL_SLACK_WORDS = 1 << 16


@dataclass(frozen=True, slots=True)
class Address:
    kind: str  # unix | tcp
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.kind == "unix" else f"tcp:{self.host}:{self.port}"


def parse_address(text: str) -> Address:
    """``unix:PATH`` or ``tcp:HOST:PORT`` (IPv6 hosts in brackets)."""
    kind, sep, rest = text.partition(":")
    if sep and kind == "unix" and rest:
        return Address("unix", path=os.path.abspath(rest))
    if sep and kind == "tcp":
        host, _, port = rest.rpartition(":")
        if host and port.isdigit():
            return Address("tcp", host=host.strip("[]"), port=int(port))
    raise InvalidArgument(f"bad address {text!r}: use unix:PATH or tcp:HOST:PORT")


@dataclass
class KernelServer:
    config: KernelConfig
    addresses: list[Address] = field(default_factory=list)
    health: HealthEndpoint | None = None
    services: KernelServices | None = None
    _lock_fd: int = -1
    _store: KernelStore | None = None
    _committer: GroupCommitter | None = None
    storage: HostStorage | None = None
    _servers: list[Any] = field(default_factory=list)
    _connections: set[asyncio.Task[None]] = field(default_factory=set)
    fatal: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def admin_token_path(self) -> str:
        return os.path.join(self.config.data_dir, ADMIN_TOKEN_FILE)

    async def start(self) -> None:
        config = self.config
        listen = [parse_address(a) for a in config.listen_or_default]
        os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
        self._lock()
        self._store = KernelStore(os.path.join(config.data_dir, "db"))
        writer = None
        if config.storage:
            from aos.kernel.storage.config import StorageConfig
            from aos.kernel.storage.hosting import HostStorage

            self.storage = HostStorage(StorageConfig.from_url(config.storage), self._store, config.host_id)
            await asyncio.get_running_loop().run_in_executor(None, self.storage.open)
            self.storage.on_lost = lambda exc: self.fatal.set()
            writer = self.storage.write
        else:
            self._refuse_shared_directory()
        # on S3 a turn is a billed request: let busy turns fill (kernel/store.py GroupCommitter linger)
        linger = COMMIT_LINGER if self.storage is not None else 0.0
        self._committer = GroupCommitter(self._store, on_fatal=lambda exc: self.fatal.set(), writer=writer,
                                         linger=linger)
        if self.storage is not None:
            self.storage.committer = self._committer
        self._committer.start()
        self.services = KernelServices(config, self._store, self._committer, self.storage)
        self.services.timers.start()
        await self._ensure_admin_token()
        tls = self._tls_context()
        if self.storage is None:
            await self.services.worlds.start()
        for address in listen:
            self.addresses.append(await self._listen(address, tls))
        if self.storage is not None:
            tcp = [a for a in self.addresses if a.kind == "tcp"]
            self.storage.address = str((tcp or self.addresses)[0])
            await self.services.worlds.start()
        if config.health:
            self.health = HealthEndpoint(config.health)
            self.health.start()
            log.info("event=health_listening addr=%s", self.health.address)

    def _refuse_shared_directory(self) -> None:
        assert self._store is not None
        raw = self._store.get("meta", _SHARED_MARK)
        if raw is not None:
            import json

            mine = json.loads(raw)
            raise InvalidArgument(f"this data directory is host {mine['host']} on shared storage: start aos-kernel "
                                  f"with --storage {mine['storage']}")

    def _lock(self) -> None:
        path = os.path.join(self.config.data_dir, "kernel.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirLocked(
                f"another aos-kernel (pid {holder}) is using {self.config.data_dir}; stop it or pick another --data"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    async def _ensure_admin_token(self) -> None:
        if os.path.exists(self.admin_token_path):
            return
        assert self.services is not None
        token = await self.services.save(self.services.grants.root)
        tmp = self.admin_token_path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.admin_token_path)
        log.info("event=admin_token_written path=%s", self.admin_token_path)

    def _tls_context(self) -> ssl.SSLContext | None:
        if not (self.config.tls_cert and self.config.tls_key):
            return None
        from aos.kernel.tls import listener_context

        return listener_context(self.config.tls_cert, self.config.tls_key)

    async def _listen(self, address: Address, tls: ssl.SSLContext | None) -> Address:
        if address.kind == "unix":
            if os.path.exists(address.path):
                if await _someone_listens(address.path):
                    raise DataDirLocked(f"{address} is in use by another process")
                os.unlink(address.path)
            server = await capnp.AsyncIoStream.create_unix_server(self._on_connection, address.path)
            os.chmod(address.path, 0o660)
            bound = address
        else:
            server = await capnp.AsyncIoStream.create_server(self._on_connection, address.host, address.port, ssl=tls)
            port = server.sockets[0].getsockname()[1]
            bound = Address("tcp", host=address.host, port=port)
        self._servers.append(server)
        log.info("event=listening addr=%s tls=%s", bound, "yes" if tls and bound.kind == "tcp" else "no")
        return bound

    async def _on_connection(self, stream: Any) -> None:
        assert self.services is not None
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        self.services.connections += 1
        words = (self.config.limits.max_message_bytes // 8) * 2 + _TRAVERSAL_SLACK_WORDS
        # What this connection holds (calls, subscriptions, uploads) is bounded by
        # and freed with its Peer. The connection's end is `on_disconnect`: the
        # two-party network resolves it on EOF, a reset or an abort, whatever
        # else still refers to the Gateway; a server object's __del__ is not a
        # signal (pycapnp may hold it past the connection, or a cycle may).
        peer = Peer(PeerLimits(upload_bytes=self.config.limits.max_blob_bytes))
        try:
            server = capnp.TwoPartyServer(stream, bootstrap=GatewayImpl(self.services, peer), traversal_limit_in_words=words)
            await server.on_disconnect()
        except Exception as exc:  # a broken peer must never take the kernel down
            log.info("event=connection_error error=%r", str(exc)[:200])
        except asyncio.CancelledError:
            # stop() cancels open connections; end normally, since pycapnp's done-callback calls
            # result() on this task and would log a cancelled one as an error with a traceback
            pass
        finally:
            peer.close()
            self.services.connections -= 1
            if task is not None:
                self._connections.discard(task)

    async def stop(self) -> None:
        if self.health is not None:
            self.health.stop()
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self.services is not None:
            await self.services.worlds.close()
            await self.services.timers.stop()
            await self.services.close()
        if self.storage is not None and self.storage.heads is not None and self._committer is not None \
                and not self.fatal.is_set():
            await self.storage.checkpoint_all()  # so the next start reads little of the log
        if self._committer is not None:
            await self._committer.close()
        if self.storage is not None:
            await self.storage.close()
        if self._store is not None:
            self._store.close()
        for address in self.addresses:
            if address.kind == "unix" and os.path.exists(address.path):
                os.unlink(address.path)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


async def _someone_listens(path: str) -> bool:
    try:
        _, writer = await asyncio.open_unix_connection(path)
    except OSError:
        return False
    writer.close()
    return True

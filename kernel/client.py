"""Python client for a running kernel: connect, restore a token, call typed facades.

Usage::

    from aos.kernel.client import Connection, run

    async def main():
        async with await Connection.open("unix:/path/kernel.sock") as conn:
            kernel = await conn.restore_kernel(open(token_file).read().strip())
            cas = await kernel.cas("demo")
            address = await cas.put(b"hello")

    run(main())

Every method raises the same ``AosError`` subclasses the kernel raised
(``StaleEpoch``, ``Revoked``, ...); a lost connection is ``KernelUnavailable``.
All of this must run inside pycapnp's event loop: use ``run`` (or
``capnp.run``) around your top-level coroutine.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import capnp

from aos.errors import AosError, InvalidArgument, KernelUnavailable, PayloadTooLarge, PermissionDenied, error_from_remote
from aos.kernel.host import jsonvalue
import aos.kernel.world.errors  # noqa: F401  (registers the world error codes for error_from_remote)
import aos.kernel.world.governance  # noqa: F401  (and the governance codes: Governance, PatchRejected)
from aos.schemas import caps_capnp, cas_capnp, journal_capnp, kernel_capnp, mailbox_capnp, timers_capnp, world_capnp

T = TypeVar("T")

CHUNK = 4 << 20  # upload/read chunk size; below the kernel's default 8 MiB message limit


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool = False) -> T:
    """Run a coroutine on a fresh event loop with pycapnp's KJ loop attached.

    ``use_uvloop`` runs it on uvloop instead of the stock asyncio loop. That is
    safe for processes that are only Cap'n Proto *clients* (a pycapnp server on
    uvloop segfaults here, so the kernel never uses it); see bench/ for what it
    buys.
    """
    if use_uvloop:
        import uvloop

        return uvloop.run(capnp.run(main))
    return asyncio.run(capnp.run(main))


def translate(exc: BaseException) -> AosError:
    if isinstance(exc, capnp.KjException):
        if exc.type == "DISCONNECTED" or "disconnected" in (exc.description or "").lower()[:80]:
            return KernelUnavailable(f"connection to the kernel lost: {exc.description.strip()[:200]}")
        return error_from_remote(exc.description or "")
    if isinstance(exc, OSError):
        return KernelUnavailable(str(exc))
    if isinstance(exc, AosError):
        return exc
    return AosError(str(exc))


async def call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except (capnp.KjException, OSError) as exc:
        raise translate(exc) from None


@dataclass(frozen=True, slots=True)
class CapInfo:
    kind: str
    grant_id: str
    universe: str
    read_only: bool
    world: str
    send_to: str
    receive_from: str
    description: str

    @classmethod
    def from_wire(cls, info: Any) -> CapInfo:
        return cls(
            kind=str(info.kind),
            grant_id=info.grantId,
            universe=info.universe,
            read_only=info.readOnly,
            world=info.world,
            send_to=info.sendTo,
            receive_from=info.receiveFrom,
            description=info.description,
        )


@dataclass(frozen=True, slots=True)
class Message:
    mailbox: str
    message_id: str
    payload: bytes
    sent_at_ms: int
    attempt: int


HANDSHAKE_TIMEOUT = 10.0  # seconds


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """How a client checks a kernel whose TCP listeners speak TLS (``aos-kernel --tls-cert/--tls-key``).

    ca_file: PEM file of the certificate authority to trust (for a self-signed kernel, its
        certificate itself); empty: the system's trusted CAs (``AOS_TLS_CA``).
    server_name: the name the kernel's certificate must carry; empty: the host of the
        address (``AOS_TLS_SERVER_NAME``). Use it when connecting by IP to a certificate
        issued for a name, or through a tunnel.
    """

    ca_file: str = ""
    server_name: str = ""

    @classmethod
    def from_env(cls, ca_file: str | None = None, server_name: str | None = None) -> TlsOptions | None:
        """Options from the arguments, else ``AOS_TLS_CA`` / ``AOS_TLS_SERVER_NAME``; None when neither asks for TLS."""
        ca = ca_file if ca_file is not None else os.environ.get("AOS_TLS_CA", "")
        name = server_name if server_name is not None else os.environ.get("AOS_TLS_SERVER_NAME", "")
        return cls(ca, name) if ca or name else None

    def context(self) -> ssl.SSLContext:
        """A verifying client context (certificate chain and host name); raises ``InvalidArgument``
        when the CA file cannot be read."""
        try:
            return ssl.create_default_context(cafile=self.ca_file or None)
        except ssl.SSLError as exc:
            raise InvalidArgument(f"TLS CA file {self.ca_file}: not a PEM certificate ({exc.reason or exc})") from None
        except OSError as exc:
            raise InvalidArgument(f"TLS CA file {self.ca_file}: {exc.strerror or exc}") from None


def host_tls(address: str, tls: TlsOptions | None) -> TlsOptions | None:
    """How to reach a host by the address it advertises: TLS, trusting ``tls``'s CA (the name is the
    address's own), for a ``tls:`` address; plain for any other, whatever ``tls`` says."""
    if not address.startswith("tls:"):
        return None
    return TlsOptions(tls.ca_file) if tls is not None else None


class Connection:
    """One Cap'n Proto connection to a kernel, starting at its Gateway."""

    def __init__(self, client: Any, stream: Any, address: str) -> None:
        self._client = client
        self._stream = stream
        self.address = address
        self.gateway = client.bootstrap().cast_as(caps_capnp.Gateway)

    @classmethod
    async def open(cls, address: str, *, tls: ssl.SSLContext | TlsOptions | None = None,
                   server_hostname: str | None = None) -> Connection:
        """Connect to ``unix:PATH``, ``tcp:HOST:PORT``, or ``tls:HOST:PORT`` (TCP with TLS).

        A TCP address speaks TLS when ``tls`` is given (an ``ssl.SSLContext`` or
        ``TlsOptions``) or the address says ``tls:``; ``server_hostname`` (or
        ``TlsOptions.server_name``) is the name the kernel's certificate must
        carry, by default the address's host. ``tls`` is ignored for unix
        sockets, which never speak TLS.
        """
        kind, _, rest = address.partition(":")
        try:
            if kind == "unix" and rest:
                stream = await capnp.AsyncIoStream.create_unix_connection(rest)
            elif kind in ("tcp", "tls") and ":" in rest:
                host, _, port = rest.rpartition(":")
                if not port.isdigit():
                    raise InvalidArgument(f"bad address {address!r}: the port must be a number")
                extra: dict[str, Any] = {}
                if kind == "tls" and tls is None:
                    tls = TlsOptions()
                if isinstance(tls, TlsOptions):
                    server_hostname = server_hostname or tls.server_name or None
                    tls = tls.context()
                if tls is not None:
                    # a TLS client talking to a plain listener would otherwise wait a minute for a handshake
                    extra = {"ssl": tls, "server_hostname": server_hostname or host.strip("[]"),
                             "ssl_handshake_timeout": HANDSHAKE_TIMEOUT}
                stream = await capnp.AsyncIoStream.create_connection(host.strip("[]"), int(port), **extra)
            else:
                raise InvalidArgument(f"bad address {address!r}: use unix:PATH, tcp:HOST:PORT or tls:HOST:PORT")
        except ssl.SSLError as exc:
            detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
            if exc.reason == "WRONG_VERSION_NUMBER":
                detail += " (the listener does not speak TLS: connect with tcp: and no TLS options)"
            raise KernelUnavailable(f"cannot reach a kernel at {address}: TLS: {detail}") from None
        except (OSError, TimeoutError) as exc:
            reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
            raise KernelUnavailable(f"cannot reach a kernel at {address}: {reason}") from None
        client = capnp.TwoPartyClient(stream, traversal_limit_in_words=(64 << 20) // 8)
        return cls(client, stream, address)

    def disconnected(self) -> asyncio.Future[None]:
        """Resolves when the connection is lost (the kernel stopped or the network broke):
        what a client that only waits, such as a tail, watches to notice that."""
        return self._client.on_disconnect()  # type: ignore[no-any-return]

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.gateway = None
        self._client.close()

    async def restore(self, token: str) -> tuple[Any, CapInfo]:
        reply = await call(self.gateway.restore(token))
        return reply.cap, CapInfo.from_wire(reply.info)

    async def restore_kernel(self, token: str) -> KernelClient:
        cap, info = await self.restore(token)
        if info.kind != "kernel":
            raise PermissionDenied(f"that token is for a {info.kind} capability, not the kernel")
        return KernelClient(cap.cast_as(kernel_capnp.Kernel), self)

    async def restore_as(self, token: str) -> Any:
        """Restore a token into the facade its kind calls for."""
        return (await self.restore_with_info(token))[0]

    async def restore_with_info(self, token: str) -> tuple[RemoteCap, CapInfo]:
        """Restore a token of any kind: ``(the facade its kind calls for, what it is)``."""
        cap, info = await self.restore(token)
        facade = _FACADES[info.kind]
        return facade(cap.cast_as(facade.interface), self), info

    async def save(self, facade: RemoteCap) -> str:
        return (await call(self.gateway.save(facade.cap.cast_as(caps_capnp.Held)))).token

    async def drop(self, token: str) -> None:
        await call(self.gateway.drop(token))


class RemoteCap:
    interface: Any = caps_capnp.Held

    def __init__(self, cap: Any, conn: Connection, revoker: Any = None) -> None:
        self.cap = cap
        self.conn = conn
        self.revoker = RevokerClient(revoker, conn) if revoker is not None else None

    async def info(self) -> CapInfo:
        return CapInfo.from_wire((await call(self.cap.info())).info)

    async def save(self) -> str:
        return await self.conn.save(self)


class RevokerClient(RemoteCap):
    interface = caps_capnp.Revoker

    async def revoke(self) -> None:
        await call(self.cap.revoke())


class Subscription:
    """A journal tail or mailbox subscription; ``cancel`` or drop it to stop."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def cancel(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            await call(handle.cancel())


class KernelClient(RemoteCap):
    interface = kernel_capnp.Kernel

    async def _mint(self, method: str, universe: str, facade: type[RemoteCap]) -> Any:
        reply = await call(getattr(self.cap, method)(universe))
        return facade(getattr(reply, method), self.conn, reply.revoker)

    async def cas(self, universe: str) -> CasClient:
        return await self._mint("cas", universe, CasClient)  # type: ignore[no-any-return]

    async def journal(self, universe: str) -> JournalClient:
        return await self._mint("journal", universe, JournalClient)  # type: ignore[no-any-return]

    async def timers(self, universe: str) -> TimersClient:
        return await self._mint("timers", universe, TimersClient)  # type: ignore[no-any-return]

    async def mailbox(self, universe: str) -> MailboxClient:
        return await self._mint("mailbox", universe, MailboxClient)  # type: ignore[no-any-return]

    async def worlds(self, universe: str) -> WorldsClient:
        return await self._mint("worlds", universe, WorldsClient)  # type: ignore[no-any-return]

    async def delegate(self) -> KernelClient:
        """A revocable Kernel capability with the same authority (see ``revoker``)."""
        reply = await call(self.cap.delegate())
        return KernelClient(reply.kernel, self.conn, reply.revoker)

    async def status(self) -> dict[str, Any]:
        status = (await call(self.cap.status())).status
        return status.to_dict()  # type: ignore[no-any-return]

    async def universes(self) -> list[dict[str, Any]]:
        """[{name, worlds, awake, quarantined, events, receipts, casBytes, casBlobs, casCounted}]"""
        return [u.to_dict() for u in (await call(self.cap.universes())).universes]

    async def deliver_portal(self, universe: str, from_world: str, to_world: str, message_id: str,
                             event_schema: str, value: bytes) -> bool:
        """Host to host: portal mail (``value`` canonical CBOR) into ``universe/to_world``'s inbox on this
        kernel; False if ``message_id`` came before. ``WorldMoved`` when the world is not there."""
        reply = await call(self.cap.deliverPortal(universe, from_world, to_world, message_id, event_schema, value))
        return bool(reply.accepted)


class CasClient(RemoteCap):
    interface = cas_capnp.Cas

    async def put(self, data: bytes) -> str:
        """Store bytes of any size (chunked above ``CHUNK``); returns ``sha256:<hex>``."""
        if len(data) <= CHUNK:
            return (await call(self.cap.put(data))).hash  # type: ignore[no-any-return]
        writer = (await call(self.cap.upload())).writer
        view = memoryview(data)
        for start in range(0, len(data), CHUNK):
            await call(writer.write(bytes(view[start : start + CHUNK])))
        return (await call(writer.commit(""))).hash  # type: ignore[no-any-return]

    async def get(self, address: str) -> bytes:
        """Read a whole blob of any size: one call, or chunks when it exceeds one message."""
        try:
            return (await call(self.cap.get(address))).data  # type: ignore[no-any-return]
        except PayloadTooLarge:
            pass
        size = await self.stat(address)
        parts = []
        for offset in range(0, size, CHUNK):
            parts.append((await call(self.cap.read(address, offset, CHUNK))).data)
        return b"".join(parts)

    async def has(self, address: str) -> bool:
        return (await call(self.cap.has(address))).present  # type: ignore[no-any-return]

    async def stat(self, address: str) -> int:
        return (await call(self.cap.stat(address))).size  # type: ignore[no-any-return]

    async def read_only(self) -> CasClient:
        reply = await call(self.cap.readOnly())
        return CasClient(reply.cas, self.conn, reply.revoker)


class _JournalPusher(journal_capnp.JournalSubscriber.Server):  # type: ignore[misc,name-defined]
    def __init__(self, callback: Callable[[int, list[bytes]], Awaitable[None]]) -> None:
        self._callback = callback

    async def push(self, seq: int, records: Any, _context: Any, **kwargs: Any) -> None:
        await self._callback(seq, [bytes(r) for r in records])


class JournalClient(RemoteCap):
    """The raw journals of one universe (journal.capnp): named, append-only logs of opaque
    records. They are not worlds: a ``world`` parameter names a journal (the wire's
    historical name), and a world's own journal is read with ``WorldClient.journal``."""

    interface = journal_capnp.Journal

    async def append(self, world: str, expected_seq: int, epoch: int, records: list[bytes]) -> int:
        return (await call(self.cap.append(world, expected_seq, epoch, records))).seq  # type: ignore[no-any-return]

    async def read(self, world: str, from_seq: int = 0, limit: int = 0) -> tuple[list[bytes], int]:
        reply = await call(self.cap.read(world, from_seq, limit))
        return [bytes(r) for r in reply.records], reply.nextSeq

    async def head(self, world: str) -> tuple[int, int]:
        reply = await call(self.cap.head(world))
        return reply.nextSeq, reply.epoch

    async def fence(self, world: str, epoch: int) -> int:
        return (await call(self.cap.fence(world, epoch))).nextSeq  # type: ignore[no-any-return]

    async def list(self, after: str = "", limit: int = 0) -> list[str]:
        return list((await call(self.cap.list(after, limit))).worlds)

    async def tail(self, world: str, from_seq: int, on_records: Callable[[int, list[bytes]], Awaitable[None]]) -> Subscription:
        reply = await call(self.cap.tail(world, from_seq, _JournalPusher(on_records)))
        return Subscription(reply.handle)

    async def restrict(self, world: str = "", read_only: bool = False) -> JournalClient:
        reply = await call(self.cap.restrict(world, read_only))
        return JournalClient(reply.journal, self.conn, reply.revoker)


class TimersClient(RemoteCap):
    interface = timers_capnp.Timers

    async def schedule(self, deliver_at_ms: int, key: str, payload: bytes, target: str) -> None:
        await call(self.cap.schedule(deliver_at_ms, key, payload, target))

    async def cancel(self, key: str) -> bool:
        return (await call(self.cap.cancel(key))).cancelled  # type: ignore[no-any-return]

    async def pending(self, limit: int = 0) -> list[dict[str, Any]]:
        return [t.to_dict() for t in (await call(self.cap.pending(limit))).timers]


class _MailDeliverer(mailbox_capnp.MailboxSubscriber.Server):  # type: ignore[misc,name-defined]
    def __init__(self, callback: Callable[[list[Message]], Awaitable[None]]) -> None:
        self._callback = callback

    async def deliver(self, messages: Any, _context: Any, **kwargs: Any) -> None:
        await self._callback(
            [Message(m.mailbox, m.messageId, bytes(m.payload), m.sentAtMs, m.attempt) for m in messages]
        )


class MailboxClient(RemoteCap):
    interface = mailbox_capnp.Mailbox

    async def send(self, to: str, message_id: str, payload: bytes) -> bool:
        return (await call(self.cap.send(to, message_id, payload))).accepted  # type: ignore[no-any-return]

    async def subscribe(self, mailbox: str, on_messages: Callable[[list[Message]], Awaitable[None]]) -> Subscription:
        reply = await call(self.cap.subscribe(mailbox, _MailDeliverer(on_messages)))
        return Subscription(reply.handle)

    async def attenuate(self, send_to: str, receive_from: str) -> MailboxClient:
        reply = await call(self.cap.attenuate(send_to, receive_from))
        return MailboxClient(reply.mailbox, self.conn, reply.revoker)

    async def pending(self, mailbox: str) -> int:
        return (await call(self.cap.pending(mailbox))).count  # type: ignore[no-any-return]


class WorldsClient(RemoteCap):
    interface = world_capnp.Worlds

    async def create(self, manifest: dict[str, Any] | str, modules: dict[str, bytes] | None = None,
                     world_id: str = "", name: str = "") -> tuple[WorldClient, dict[str, Any]]:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        mods = [{"hash": h, "wasm": data} for h, data in (modules or {}).items()]
        reply = await call(self.cap.create(text, mods, world_id, name))
        return WorldClient(reply.world, self.conn), reply.info.to_dict()

    async def open(self, world_id: str) -> WorldClient:
        return WorldClient((await call(self.cap.open(world_id))).world, self.conn)

    async def list(self) -> list[dict[str, Any]]:
        return [w.to_dict() for w in (await call(self.cap.list())).worlds]

    async def fork(self, world_id: str, new_id: str = "", name: str = "") -> tuple[WorldClient, dict[str, Any]]:
        reply = await call(self.cap.fork(world_id, new_id, name))
        return WorldClient(reply.world, self.conn), reply.info.to_dict()

    async def unquarantine(self, world_id: str) -> dict[str, Any]:
        """Release a quarantined world and wake it; raises ``WorldQuarantined`` if it fails again."""
        return (await call(self.cap.unquarantine(world_id))).info.to_dict()  # type: ignore[no-any-return]

    async def release(self, world_id: str) -> dict[str, Any]:
        """Hand a world over (a kernel on shared storage): returns its placement ``{host: "", address,
        epoch, previous, journalHeight}`` once it is durable there and gone from this kernel."""
        return (await call(self.cap.release(world_id))).placement.to_dict()  # type: ignore[no-any-return]

    async def acquire(self, world_id: str, take_over: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        """Take a world from shared storage and wake it: a released one, or with ``take_over`` one another
        kernel holds (that kernel's log is fenced: it stops). ``(info, placement)``; ``placement["previous"]``
        is the host that held it ("" if released). ``WorldMoved`` if another kernel holds it."""
        reply = await call(self.cap.acquire(world_id, take_over))
        return reply.info.to_dict(), reply.placement.to_dict()

    async def hibernate(self, world_id: str) -> bool:
        """Snapshot a quiescent world and drop it from memory; False when asleep already or busy."""
        return (await call(self.cap.hibernate(world_id))).hibernated  # type: ignore[no-any-return]

    async def read_only(self) -> WorldsClient:
        """The same universe, without create, fork, send, snapshot, grant changes or hibernation."""
        reply = await call(self.cap.readOnly())
        return WorldsClient(reply.worlds, self.conn, reply.revoker)


class _WorldWatcher(world_capnp.WorldWatcher.Server):  # type: ignore[misc,name-defined]
    def __init__(self, on_record: Callable[[int, dict[str, Any]], Awaitable[None]],
                 on_frame: Callable[[str, Any], Awaitable[None]] | None) -> None:
        self._on_record = on_record
        self._on_frame = on_frame
        # the kernel pushes several calls before the first returns; they arrive in order and the
        # lock (first come, first served) keeps the callbacks in that order even when one awaits
        self._order = asyncio.Lock()

    async def record(self, seq: int, json: str, _context: Any, **kwargs: Any) -> None:
        value = jsonvalue.loads(json)
        async with self._order:
            await self._on_record(seq, value)

    async def records(self, fromSeq: int, jsons: Any, _context: Any, **kwargs: Any) -> None:
        values = [jsonvalue.loads(text) for text in jsons]
        async with self._order:
            for i, value in enumerate(values):
                await self._on_record(fromSeq + i, value)

    async def frame(self, intentHash: str, json: str, _context: Any, **kwargs: Any) -> None:
        if self._on_frame is not None:
            value = jsonvalue.loads(json)
            async with self._order:
                await self._on_frame(intentHash, value)


class WorldClient(RemoteCap):
    interface = world_capnp.World

    async def send(self, schema: str, value: Any) -> int:
        return (await call(self.cap.send(schema, jsonvalue.dumps(value)))).seq  # type: ignore[no-any-return]

    async def send_with_outcome(self, schema: str, value: Any) -> tuple[int, dict[str, Any]]:
        """``(seq, outcome)``: outcome is ``{steps, traps: [{workflow, key, code, message}], intents,
        rejected}`` (world.capnp ``SendOutcome``); ``steps > 0`` and ``len(traps) == steps``
        means every workflow the event reached trapped; ``queued`` that the world is paused and the
        event waits in its inbox (seq 0) until ``resume``."""
        reply = await call(self.cap.send(schema, jsonvalue.dumps(value)))
        outcome = reply.outcome
        traps = [{"workflow": t.workflow, "key": t.key, "code": t.code, "message": t.message} for t in outcome.traps]
        return reply.seq, {"steps": outcome.steps, "traps": traps, "intents": outcome.intents,
                           "rejected": outcome.rejected, "queued": outcome.queued}

    async def pause(self) -> int:
        """Stop the world taking inputs (they queue, durably); the control record's journal seq."""
        return (await call(self.cap.pause())).seq  # type: ignore[no-any-return]

    async def resume(self) -> int:
        """Deliver what queued while paused, then take inputs again; the control record's journal seq."""
        return (await call(self.cap.resume())).seq  # type: ignore[no-any-return]

    async def send_batch(self, events: list[tuple[str, Any]]) -> list[int]:
        batch = [{"eventSchema": schema, "value": jsonvalue.dumps(value)} for schema, value in events]
        return list((await call(self.cap.sendBatch(batch))).seqs)

    async def state(self, workflow: str, key: Any = None) -> Any:
        reply = await call(self.cap.state(workflow, "" if key is None else jsonvalue.dumps(key)))
        return jsonvalue.loads(reply.value) if reply.exists else None

    async def cells(self, workflow: str) -> list[Any]:
        return jsonvalue.loads((await call(self.cap.cells(workflow))).keys)  # type: ignore[no-any-return]

    async def journal(self, from_seq: int = 0, limit: int = 0) -> tuple[list[dict[str, Any]], int]:
        reply = await call(self.cap.journal(from_seq, limit))
        return [jsonvalue.loads(r) for r in reply.records], reply.nextSeq

    async def read_raw(self, from_seq: int = 0, limit: int = 0) -> tuple[list[bytes], int]:
        """Journal records as stored (canonical CBOR); decode with ``aos.kernel.world.decode_record``."""
        reply = await call(self.cap.readRaw(from_seq, limit))
        return [bytes(r) for r in reply.records], reply.nextSeq

    async def tail(self, from_seq: int, on_record: Callable[[int, dict[str, Any]], Awaitable[None]],
                   on_frame: Callable[[str, Any], Awaitable[None]] | None = None) -> Subscription:
        # without on_frame the kernel sends no frames at all
        reply = await call(self.cap.tail(from_seq, _WorldWatcher(on_record, on_frame), on_frame is not None))
        return Subscription(reply.handle)

    async def snapshot(self) -> tuple[str, int]:
        reply = await call(self.cap.snapshot())
        return reply.address, reply.seq

    async def describe(self) -> tuple[dict[str, Any], list[str]]:
        reply = await call(self.cap.describe())
        return reply.info.to_dict(), list(reply.traps)

    async def grants(self) -> list[dict[str, Any]]:
        """[{name, cap, params, active}] for each of the world's grants."""
        return [{"name": g.name, "cap": g.cap, "params": jsonvalue.loads(g.params), "active": g.active}
                for g in (await call(self.cap.grants())).grants]

    async def set_grant(self, name: str, active: bool) -> None:
        await call(self.cap.setGrant(name, active))

    async def effects(self) -> list[dict[str, Any]]:
        """[{intentHash, effect, grant, workflow, key, running, startedAtMs}]: admitted, no receipt yet."""
        return [e.to_dict() for e in (await call(self.cap.effects())).effects]

    async def workflows(self) -> dict[str, bool]:
        """Workflow name -> keyed (cells) or not."""
        return {w.name: w.keyed for w in (await call(self.cap.describe())).workflows}

    # --- governance (docs/demiurge.md) -------------------------------------------------------

    async def propose(self, patch: dict[str, Any] | str, reason: str = "") -> dict[str, Any]:
        """Propose a manifest change; ``{proposal, status, base, manifest, address, diff, grants}``."""
        text = patch if isinstance(patch, str) else jsonvalue.dumps(patch)
        return _loads((await call(self.cap.propose(text, reason))).proposal)

    async def shadow(self, proposal: str, events: list[tuple[str, Any]] | None = None,
                     sample: int = 0) -> dict[str, Any]:
        """Run a proposal on a fork against ``events`` (or the last ``sample`` events); the report."""
        batch = [{"eventSchema": schema, "value": jsonvalue.dumps(value)} for schema, value in events or ()]
        return _loads((await call(self.cap.shadow(proposal, batch, sample))).report)

    async def approve(self, proposal: str, reason: str = "") -> dict[str, Any]:
        return _loads((await call(self.cap.approve(proposal, reason))).info)

    async def reject(self, proposal: str, reason: str = "") -> dict[str, Any]:
        return _loads((await call(self.cap.reject(proposal, reason))).info)

    async def apply(self, proposal: str) -> dict[str, Any]:
        """Switch the world to an approved proposal's manifest."""
        return _loads((await call(self.cap.apply(proposal))).info)

    async def rollback(self, manifest: str = "", reason: str = "") -> dict[str, Any]:
        """Switch back to an earlier manifest ("" = the one before the current)."""
        return _loads((await call(self.cap.rollback(manifest, reason))).info)

    async def governance(self) -> dict[str, Any]:
        """``{world, manifest, address, proposals, history}``."""
        return _loads((await call(self.cap.governance())).history)

    async def manifest(self) -> dict[str, Any]:
        """``{manifest: the document the world runs, hash, address}``."""
        return _loads((await call(self.cap.manifest())).manifest)


def _loads(text: str) -> Any:
    return jsonvalue.loads(text)


_FACADES: dict[str, type[RemoteCap]] = {
    "kernel": KernelClient,
    "cas": CasClient,
    "journal": JournalClient,
    "timers": TimersClient,
    "mailbox": MailboxClient,
    "revoker": RevokerClient,
    "worlds": WorldsClient,
    "world": WorldClient,
}

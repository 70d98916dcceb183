"""The boundary between Cap'n Proto and the kernel's Python code.

How a call gets in: pycapnp dispatches a call on a Python server to
``<method>_context(context)`` if the class has one, and otherwise decodes the
params itself (``getattr`` on every field) before any of our code runs, so a
struct where the schema has Text, or Text that is not UTF-8, used to come back
as pycapnp's own traceback with native stack addresses. ``remote`` therefore
installs a ``<method>_context`` entry for every method it decorates: the one
place every call enters. The entry

* counts the call against its connection's ``Peer`` (``ResourceExhausted``
  past the limit) and makes that peer current for the call (``current_peer``),
  so anything the call creates is charged to, and freed with, its connection;
* decodes the params as pycapnp would, but turns a malformed one into
  ``aos.InvalidArgument: <field>: <what was wrong>``;
* runs the method: the grant check, ``AosError`` -> ``aos.<Code>: message``,
  anything else -> ``aos.Internal`` with a reference id logged beside the
  traceback;
* fills the results.

The wire exception types below carry no traceback, so none leaks. Calls
that never reach Python (an unknown interface or method ordinal, a call on a
capability the caller already released) are answered by Cap'n Proto itself:
``unimplemented`` for the former, an aborted connection for the latter.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import secrets
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Generic, Protocol, TypeVar

import capnp

from aos.errors import AosError, InvalidArgument, PayloadTooLarge, ResourceExhausted

log = logging.getLogger("aos.kernel.rpc")


class WireError(Exception):
    # pycapnp formats `exc.__traceback__` into the reply; hide it.
    __traceback__ = property(lambda self: None, lambda self, value: None)  # type: ignore[assignment]


_WIRE_TYPES: dict[str, type[WireError]] = {}


def to_wire(error: AosError) -> WireError:
    """An exception whose wire description contains ``aos.<Code>: <message>``.

    pycapnp prefixes it (``remote exception: message = ``) and appends a
    newline; clients search for ``aos.`` as caps.capnp documents.
    """
    cls = _WIRE_TYPES.get(error.code)
    if cls is None:
        cls = _WIRE_TYPES[error.code] = type(error.code, (WireError,), {"__module__": "aos"})
    return cls(str(error))


def _reply(handled: BaseException, error: AosError) -> WireError:
    """The wire error for ``error``, raised while handling ``handled``.

    The reply becomes the task's exception, with ``handled`` as its context;
    ``handled``'s traceback would keep the call's frames (its params, a whole
    1 MiB Data) alive in a reference cycle until the next full GC, so drop it.
    """
    handled.__traceback__ = None
    return to_wire(error)


def _internal(exc: BaseException, name: str) -> WireError:
    ref = secrets.token_hex(4)
    log.exception("event=internal_error ref=%s method=%s", ref, name)
    return _reply(exc, AosError(f"internal error (ref {ref}); see the kernel log"))


# --- malformed messages ------------------------------------------------------------------------

# Cap'n Proto's message reading (pointers, segments, limits) lives in these files.
_DECODE_SOURCES = ("layout.c++", "arena.c++", "message.c++")


def decode_failure(exc: BaseException) -> str | None:
    """What was wrong, if ``exc`` comes from reading a malformed message, else None.

    Cap'n Proto reads lazily, so a bad pointer (a struct where Text is, a far
    pointer to no segment, a list past the end of the message) raises only when
    that field is read; pycapnp raises ``UnicodeDecodeError`` for Text that is
    not UTF-8. The KJ description reads ``expected <C++ condition>;
    <sentence>``: only the sentence is for the caller (the condition may quote
    the offending bytes, and pycapnp cuts the description at a NUL).
    """
    if isinstance(exc, UnicodeDecodeError):
        return "not valid UTF-8"
    if not isinstance(exc, capnp.KjException) or exc.wrapper is None:
        return None
    if not str(exc.file).endswith(_DECODE_SOURCES):
        return None
    text = (exc.description or "").splitlines()[0] if exc.description else ""
    if "== '\\0'" in text:  # the NUL check; its sentence is lost where pycapnp cut the description
        return "text is not NUL-terminated"
    if text.startswith("expected "):
        text = text.split("; ", 1)[1] if "; " in text else ""
    sentence = text.removeprefix("Schema mismatch: ").split(". ", 1)[0].rstrip(".").strip()
    if not sentence:
        return "malformed pointer"
    return sentence[:1].lower() + sentence[1:]


def read_params(context: Any, fieldnames: Sequence[str] | None = None) -> dict[str, Any]:
    """The call's params as keyword arguments, the way pycapnp would pass them.

    Raises ``InvalidArgument`` naming the first field that does not decode.
    Nested values (list elements, struct fields) stay lazy readers; the method
    wrapper maps a failure reading them the same way. ``fieldnames``, when the
    caller knows them (one method's params always have the same), saves asking
    the schema on every call.
    """
    try:
        params = context.params
    except Exception as exc:
        reason = decode_failure(exc)
        if reason is None:
            raise
        raise InvalidArgument(f"params: {reason}") from None
    kwargs: dict[str, Any] = {}
    for name in params.schema.fieldnames if fieldnames is None else fieldnames:
        try:
            kwargs[name] = getattr(params, name)
        except Exception as exc:
            reason = decode_failure(exc)
            if reason is None:
                raise
            raise InvalidArgument(f"{name}: {reason}") from None
    return kwargs


_RESULT_FIELDS: dict[int, list[str]] = {}


def result_fields(results: Any) -> list[str]:
    """The field names of a results struct, in field (code) order."""
    node = results.schema.node
    names = _RESULT_FIELDS.get(node.id)
    if names is None:
        names = _RESULT_FIELDS[node.id] = [f.name for f in sorted(node.struct.fields, key=attrgetter("codeOrder"))]
    return names


def fill_results(context: Any, returned: Any, names: list[str] | None = None) -> None:
    """Set the results from a method's return value (a value or a tuple, in field order).

    What pycapnp does for methods it calls itself; with a ``_context`` entry it
    is ours to do. ``names`` (``result_fields``), when the caller knows them,
    saves reading the schema node on every call.
    """
    if returned is None:
        return
    results = context.results
    if names is None:
        names = result_fields(results)
    values = returned if isinstance(returned, tuple) else (returned,)
    if len(values) > len(names):
        raise TypeError(f"{len(values)} results returned; the method has {len(names)}")
    for name, value in zip(names, values):
        setattr(results, name, value)


# --- what one connection holds -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerLimits:
    """What one connection may hold in the kernel at once (see docs/security.md).

    calls: calls in flight (each holds its params and, for ``Gateway.save``, a claim nonce).
    subscriptions: journal tails, mailbox subscriptions and world tails.
    uploads: ``Cas.upload`` writers not yet committed or dropped.
    upload_bytes: bytes all of its uploads may buffer together (one maximal blob).
    """

    calls: int = 1024
    subscriptions: int = 256
    uploads: int = 4
    upload_bytes: int = 1 << 30


class Upload(Protocol):
    """An upload in progress, as its connection sees it."""

    buffered: int  # bytes held in kernel memory

    def release(self) -> None:
        """Drop the buffer; later writes and the commit are refused."""


class Peer:
    """The kernel-side state of one connection: its bounded tables, freed on ``close``.

    ``KernelServer`` makes one per accepted connection and closes it when the
    connection ends. Everything a client can make the kernel keep (calls in
    flight, subscriptions, uploads in progress) is registered here, so each
    table is bounded per connection and nothing outlives the connection even
    if pycapnp keeps a server object alive longer.
    """

    def __init__(self, limits: PeerLimits | None = None) -> None:
        self.limits = limits or PeerLimits()
        self.closed = False
        self._calls: set[asyncio.Task[Any]] = set()
        self._subscriptions: set[asyncio.Task[Any]] = set()
        # weak: a writer the client dropped frees itself, and stops counting, at once
        self._uploads: weakref.WeakSet[Upload] = weakref.WeakSet()

    def _refuse_if_closed(self) -> None:
        if self.closed:
            raise ResourceExhausted("this connection has ended")

    def begin_call(self, task: asyncio.Task[Any]) -> None:
        self._refuse_if_closed()
        if len(self._calls) >= self.limits.calls:
            raise ResourceExhausted(f"{len(self._calls)} calls are in flight on this connection; the limit is {self.limits.calls}")
        self._calls.add(task)

    def end_call(self, task: asyncio.Task[Any]) -> None:
        self._calls.discard(task)

    def check_subscription_room(self) -> None:
        self._refuse_if_closed()
        if len(self._subscriptions) >= self.limits.subscriptions:
            raise ResourceExhausted(
                f"{len(self._subscriptions)} subscriptions are open on this connection; the limit is "
                f"{self.limits.subscriptions} (cancel or drop a handle first)"
            )

    def add_subscription(self, task: asyncio.Task[Any]) -> None:
        """Hold a subscription started after ``check_subscription_room``; it leaves when it ends."""
        self._subscriptions.add(task)
        task.add_done_callback(self._subscriptions.discard)

    def add_upload(self, writer: Upload) -> None:
        self._refuse_if_closed()
        if len(self._uploads) >= self.limits.uploads:
            raise ResourceExhausted(
                f"{len(self._uploads)} uploads are in progress on this connection; the limit is {self.limits.uploads}"
                " (commit or drop one first)"
            )
        self._uploads.add(writer)

    def end_upload(self, writer: Upload) -> None:
        self._uploads.discard(writer)

    def upload_room(self) -> int:
        """Bytes this connection's uploads may still buffer."""
        used = sum(w.buffered for w in self._uploads)
        return max(0, self.limits.upload_bytes - used)

    def close(self) -> None:
        """The connection ended: end its subscriptions and free its uploads.

        Calls still in flight are left to Cap'n Proto, which cancels them when
        their connection goes (a cancelled ``save`` forgets its claim nonce);
        cancelling them here could interrupt a durable write halfway.
        """
        self.closed = True
        for task in list(self._subscriptions):
            task.cancel()
        for writer in list(self._uploads):
            writer.release()


_PEER: contextvars.ContextVar[Peer | None] = contextvars.ContextVar("aos_peer", default=None)


def current_peer() -> Peer | None:
    """The connection the running call came in on (None outside a call).

    Each call runs in its own task, and the entry sets this in that task's own
    context, so it is per call; subscription tasks started by a call inherit it.
    """
    return _PEER.get()


# --- the decorator -----------------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class _Remote(Generic[F]):
    """A server method: callable as before, plus the ``<name>_context`` entry pycapnp calls."""

    def __init__(self, method: F, check_grant: bool) -> None:
        self.method = method
        self.check_grant = check_grant
        self.qualname = method.__qualname__
        functools.update_wrapper(self, method)  # type: ignore[arg-type]

    def __set_name__(self, owner: type, name: str) -> None:
        setattr(owner, name + "_context", _entry(name, self.qualname))

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return functools.partial(self._call, obj)

    async def _call(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            if self.check_grant and getattr(obj, "grant", None) is not None:
                obj.grant.check()
            return await self.method(obj, *args, **kwargs)
        except WireError:
            raise
        except AosError as exc:
            raise _reply(exc, exc) from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = decode_failure(exc)
            if reason is not None:  # a nested value of the params (a list element, say) did not decode
                raise _reply(exc, InvalidArgument(f"malformed params: {reason}")) from None
            raise _internal(exc, self.qualname) from None


def _entry(name: str, qualname: str) -> Callable[[Any, Any], Awaitable[None]]:
    # one method's params and results always have the same fields: read the schema once
    # (about a tenth of a journal append's kernel CPU was spent asking it on every call)
    fields: list[Sequence[str] | None] = [None, None]

    async def entry(self: Any, context: Any) -> None:
        peer: Peer | None = getattr(self, "peer", None)
        _PEER.set(peer)  # this call's task has its own context: nothing leaks to other calls
        task = asyncio.current_task()
        try:
            if peer is not None and task is not None:
                peer.begin_call(task)
            kwargs = read_params(context, fields[0])
            if fields[0] is None:
                fields[0] = list(kwargs)  # every field was read, in schema order
            returned = await getattr(self, name)(_context=context, **kwargs)
            if returned is not None:
                if fields[1] is None:
                    fields[1] = result_fields(context.results)
                fill_results(context, returned, fields[1])  # type: ignore[arg-type]
        except WireError:
            raise
        except AosError as exc:
            raise _reply(exc, exc) from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise _internal(exc, qualname) from None
        finally:
            if peer is not None and task is not None:
                peer.end_call(task)
            # A failed call's reply keeps this frame in its traceback, and the task keeps the
            # reply: a reference from here to the task would make a cycle that holds the params
            # until the next full GC (200 refused 1 MiB calls were 200 MiB of RSS).
            del task

    entry.__qualname__ = f"{qualname}_context"
    return entry


def remote(check_grant: bool = True) -> Callable[[F], F]:
    """Decorate a capnp server method of a ``HeldImpl`` (or any server object).

    The method takes its params as keyword arguments (plus ``_context``) and
    returns its results, as pycapnp's plain form does; the decorator adds the
    ``<name>_context`` entry that makes it safe to expose.
    """

    def decorate(method: F) -> F:
        return _Remote(method, check_grant)  # type: ignore[return-value]

    return decorate


def check_size(data: bytes, limit: int, what: str) -> None:
    if len(data) > limit:
        raise PayloadTooLarge(f"{what} is {len(data)} bytes; the limit is {limit}")

"""The boundary between Cap'n Proto and the kernel's Python code.

Server methods are wrapped by ``remote``: it refuses calls on revoked
capabilities, turns ``AosError`` into the documented wire form
(``aos.<Code>: message``) and turns anything else into ``aos.Internal`` with a
reference id that is logged beside the traceback. pycapnp would otherwise
send the full Python traceback to the caller; the wire exception types below
carry no traceback, so none leaks.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aos.errors import AosError, PayloadTooLarge

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


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def remote(check_grant: bool = True) -> Callable[[F], F]:
    """Decorate a capnp server method of a ``HeldImpl`` (or any object)."""

    def decorate(method: F) -> F:
        name = method.__qualname__

        @functools.wraps(method)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                if check_grant and getattr(self, "grant", None) is not None:
                    self.grant.check()
                return await method(self, *args, **kwargs)
            except AosError as exc:
                raise to_wire(exc) from None
            except asyncio.CancelledError:
                raise
            except Exception:
                ref = secrets.token_hex(4)
                log.exception("event=internal_error ref=%s method=%s", ref, name)
                raise to_wire(AosError(f"internal error (ref {ref}); see the kernel log")) from None

        return wrapper  # type: ignore[return-value]

    return decorate


def check_size(data: bytes, limit: int, what: str) -> None:
    if len(data) > limit:
        raise PayloadTooLarge(f"{what} is {len(data)} bytes; the limit is {limit}")

"""Validation and key encoding for the names clients pass in (universes,
worlds, mailboxes, timer keys).

Names become parts of RocksDB keys joined by NUL, so the character set is
fixed here, once, and nothing unvalidated reaches a key.

The kernel keeps mailboxes and timers of its own in the same stores (a
world's inbox, the timers behind ``timer.set``). Their names start with
``KERNEL_MARK``, a character no client name may hold, so no capability a
client can hold names them: the separation is in the grammar, not in a
check each server must remember.
"""

from __future__ import annotations

import re

from aos.errors import InvalidArgument

_NAME = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def check_name(value: str, what: str) -> str:
    """Return ``value`` if it is a valid name, else raise ``InvalidArgument``."""
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        shown = value if isinstance(value, str) and len(value) <= 40 else f"{str(value)[:40]}..."
        raise InvalidArgument(f"bad {what} {shown!r}: use 1-128 characters from [A-Za-z0-9._:-]")
    return value


KERNEL_MARK = "#"


def kernel_name(kind: str, ident: str) -> str:
    """A mailbox or timer name only the kernel can make: ``#<kind>.<ident>``."""
    return f"{KERNEL_MARK}{kind}.{ident}"


def is_kernel_name(name: str) -> bool:
    return name.startswith(KERNEL_MARK)


def check_id(value: str, what: str) -> str:
    """Free-form ids (message ids): 1-256 bytes of text without NUL."""
    if not isinstance(value, str) or not value or len(value.encode()) > 256 or "\x00" in value:
        raise InvalidArgument(f"bad {what}: use 1-256 bytes of text without NUL")
    return value


def key(*parts: str) -> bytes:
    """The key prefix for already-validated name parts, NUL-terminated each."""
    return ("\x00".join(parts) + "\x00").encode() if parts else b""  # each part NUL-terminated, one encode


def seq_key(prefix: bytes, seq: int) -> bytes:
    return prefix + seq.to_bytes(8, "big")

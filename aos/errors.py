"""The one exception hierarchy of AOS.

Every error a caller can see is an ``AosError``. Errors that cross the Cap'n
Proto wire travel as a Cap'n Proto exception whose description starts with
``aos.<Code>: `` (see ``schemas/common.capnp``); ``error_from_remote`` turns
that back into the same Python class on the client side, so a caller catches
``StaleEpoch`` whether the journal is in-process or across the network.
"""

from __future__ import annotations

_BY_CODE: dict[str, type["AosError"]] = {}


class AosError(Exception):
    """Root of every AOS error. ``code`` is the stable wire name."""

    code = "Internal"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            _BY_CODE[cls.code] = cls

    def wire(self) -> str:
        """The description sent in a Cap'n Proto exception."""
        return f"aos.{self.code}: {self}"


_BY_CODE[AosError.code] = AosError


# --- protocol: the request itself is wrong -------------------------------------------------
class ProtocolError(AosError):
    code = "Protocol"


class InvalidArgument(ProtocolError):
    code = "InvalidArgument"


class PayloadTooLarge(ProtocolError):
    code = "PayloadTooLarge"


class ResourceExhausted(ProtocolError):
    """The connection already holds as many of something (calls, subscriptions, uploads) as it may."""

    code = "ResourceExhausted"


# --- capabilities ------------------------------------------------------------------------------
class CapabilityError(AosError):
    code = "Capability"


class InvalidToken(CapabilityError):
    """The token is unknown, malformed, or was dropped."""

    code = "InvalidToken"


class Revoked(CapabilityError):
    """The capability, or one it was derived from, has been revoked."""

    code = "Revoked"


class PermissionDenied(CapabilityError):
    """The capability exists but does not cover this request (attenuated)."""

    code = "PermissionDenied"


class NotSaveable(CapabilityError):
    """``Gateway.save`` was handed a capability this kernel did not mint."""

    code = "NotSaveable"


# --- CAS ---------------------------------------------------------------------------------------
class CasError(AosError):
    code = "Cas"


class BlobNotFound(CasError):
    code = "BlobNotFound"


class CorruptBlob(CasError):
    """Stored bytes no longer hash to their address; the read is refused."""

    code = "CorruptBlob"


# --- journal -----------------------------------------------------------------------------------
class JournalError(AosError):
    code = "Journal"


class UnknownWorld(JournalError):
    code = "UnknownWorld"


class WorldMoved(UnknownWorld):
    """The world is not on this kernel any more: it released it (hand-over) or lost it to another kernel.

    The message says which host holds it now, and at which address, once
    another kernel acquired it; a caller that handles ``UnknownWorld`` still
    catches it (the world is not here), without losing the typed reason.
    """

    code = "WorldMoved"


class SeqConflict(JournalError):
    """``expectedSeq`` is not the world's next sequence number."""

    code = "SeqConflict"


class StaleEpoch(JournalError):
    """The writer's epoch is older than the world's; it has been fenced out."""

    code = "StaleEpoch"


# --- timers and mailboxes ----------------------------------------------------------------------
class TimerError(AosError):
    code = "Timer"


class MailboxError(AosError):
    code = "Mailbox"


# --- kernel / transport ------------------------------------------------------------------------
class KernelError(AosError):
    code = "Kernel"


class KernelUnavailable(KernelError):
    """The kernel could not be reached or the connection was lost."""

    code = "KernelUnavailable"


class DataDirLocked(KernelError):
    code = "DataDirLocked"


# --- shared storage (S3 or a directory; kernel/storage/) ------------------------------------
class StorageError(KernelError):
    code = "Storage"


class StorageUnavailable(StorageError):
    """The object store could not be reached or kept failing after retries; a write's outcome is unknown."""

    code = "StorageUnavailable"


class Fenced(StaleEpoch):
    """A newer writer fenced this log: the append was refused and the writer must stop acknowledging."""

    code = "Fenced"


class OwnershipLost(StaleEpoch):
    """The world's head names another owner or a newer epoch: this kernel no longer owns the world."""

    code = "OwnershipLost"


def error_from_remote(description: str) -> AosError:
    """Rebuild a typed error from a Cap'n Proto exception description."""
    marker = description.find("aos.")
    if marker >= 0:
        rest = description[marker + 4 :]
        code, sep, message = rest.partition(": ")
        cls = _BY_CODE.get(code)
        if sep and cls is not None:
            # the remote side may append its own context after a newline
            text = message.split("\n", 1)[0].strip()
            try:
                return cls(text)
            except TypeError:  # classes with structured constructors (e.g. a path and a message)
                error = cls.__new__(cls)
                Exception.__init__(error, text)
                return error
    return KernelError(description.strip())


def by_code(code: str) -> type[AosError]:
    return _BY_CODE.get(code, AosError)

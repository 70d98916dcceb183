"""The scheduler's error codes (scheduler.capnp). Importing this module registers
them for ``error_from_remote``, so a client catches ``QuotaExceeded`` as a class."""

from __future__ import annotations

from aos.errors import AosError, KernelError


class SchedulerError(AosError):
    code = "Scheduler"


class NotLeader(SchedulerError):
    """This scheduler stands by; the message ends with ``leader: ADDRESS`` (or ``leader: none``)."""

    code = "NotLeader"

    @property
    def leader(self) -> str:
        text = str(self)
        marker = text.rfind("leader: ")
        found = text[marker + len("leader: "):].strip() if marker >= 0 else ""
        return "" if found == "none" else found


class UnknownUniverse(SchedulerError):
    code = "UnknownUniverse"


class UniverseExists(SchedulerError):
    code = "UniverseExists"


class UniverseNotEmpty(SchedulerError):
    code = "UniverseNotEmpty"


class QuotaExceeded(SchedulerError):
    """A universe's world or byte quota would be exceeded."""

    code = "QuotaExceeded"


class UnknownHost(SchedulerError):
    code = "UnknownHost"


class NoHost(SchedulerError):
    """No live host can take the world; the message says why."""

    code = "NoHost"


class HostUnavailable(KernelError):
    """The world's host could not be reached (or no live host runs it now)."""

    code = "HostUnavailable"


class EtcdUnavailable(SchedulerError):
    code = "EtcdUnavailable"

"""The contract between the world runtime and effect adapters.

The runtime journals an effect *intent* first; only once that write is
durable does it call ``Adapter.run`` with an ``EffectCall``. The adapter does
the I/O and returns a ``Receipt``; long effects may send stream frames first.
Adapters never raise for an effect that merely failed (a missing file, a
non-zero exit, an HTTP 500): that is a receipt with status ``error``. They
raise only for bugs. Receipts are journaled, so they must hold no secrets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ReceiptStatus = Literal["ok", "error", "timeout"]


@dataclass(frozen=True, slots=True)
class EffectCall:
    """One admitted, journaled effect intent, as an adapter sees it.

    kind: the effect name, e.g. ``host.fs.read``.
    params: the effect parameters, already validated against the effect's schema.
    grant: the parameters of the world's grant that covers this effect
        (e.g. ``{"root": "/home/me/proj", "read_only": False}`` for ``host.fs``).
    idempotency_key: stable across retries and crash recovery; adapters that
        talk to systems with idempotency support pass it on.
    secrets: resolves a secret name to its value at dispatch time; values
        must never be copied into a receipt, frame, log line or error.
    """

    kind: str
    params: Mapping[str, Any]
    grant: Mapping[str, Any]
    idempotency_key: str
    secrets: Callable[[str], str] | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    status: ReceiptStatus
    payload: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""  # machine-readable code when status != "ok", e.g. "not_found", "path_escape"
    message: str = ""  # one line for people

    @classmethod
    def ok(cls, **payload: Any) -> Receipt:
        return cls("ok", payload)

    @classmethod
    def fail(cls, error: str, message: str, **payload: Any) -> Receipt:
        return cls("error", payload, error, message)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "payload": dict(self.payload)}
        if self.error:
            out["error"] = self.error
        if self.message:
            out["message"] = self.message
        return out


FrameSink = Callable[[Mapping[str, Any]], Awaitable[None]]


class Adapter(Protocol):
    """Carries out effects of the kinds it lists."""

    kinds: tuple[str, ...]

    async def run(self, call: EffectCall, emit_frame: FrameSink) -> Receipt: ...

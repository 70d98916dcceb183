"""Small helpers shared by the built-in host adapters (host.fs, host.exec, http).

Not part of the adapter contract (that is ``base.py``): parameter checking
that turns bad input into an ``invalid_params`` receipt, secret resolution
and scrubbing, and decoding bounded output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .base import EffectCall, Receipt

REDACTED = "[redacted]"
REDACTED_B = REDACTED.encode()

# Names of host environment variables that must never reach a child process.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|PASSPHRASE|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|SIGNATURE")


def looks_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name.upper()))


class Fail(Exception):
    """Raised inside an adapter to end the effect with ``Receipt.fail``."""

    def __init__(self, error: str, message: str, **payload: Any) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.payload = payload

    def receipt(self) -> Receipt:
        return Receipt.fail(self.error, self.message, **self.payload)


def effect_name(kind: str) -> str:
    """``sys/host.fs.read@1`` -> ``host.fs.read``; plain names pass through."""
    kind = kind.removeprefix("sys/")
    at = kind.rfind("@")
    if at > 0 and kind[at + 1 :].isdigit():
        kind = kind[:at]
    return kind


# --- parameter access ------------------------------------------------------------------------
def p_str(params: Mapping[str, Any], name: str, default: Any = ..., *, choices: tuple[str, ...] | None = None) -> Any:
    """A text parameter; ``default=...`` (the default) makes it required."""
    v = params.get(name)
    if v is None:
        if default is ...:
            raise Fail("invalid_params", f"{name!r} is required")
        return default
    if not isinstance(v, str):
        raise Fail("invalid_params", f"{name!r} must be a string")
    if choices is not None and v not in choices:
        raise Fail("invalid_params", f"{name!r} must be one of {', '.join(choices)}")
    return v


def p_bool(params: Mapping[str, Any], name: str, default: bool) -> bool:
    v = params.get(name, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise Fail("invalid_params", f"{name!r} must be true or false")
    return v


def p_int(params: Mapping[str, Any], name: str, default: int, *, minimum: int = 0) -> int:
    v = params.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise Fail("invalid_params", f"{name!r} must be an integer >= {minimum}")
    return v


def p_seconds(params: Mapping[str, Any], name: str, default: float, cap: float) -> float:
    v = params.get(name, default)
    if v is None:
        v = default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise Fail("invalid_params", f"{name!r} must be a positive number of seconds")
    return float(min(v, cap))


def grant_num(grant: Mapping[str, Any], name: str, default: float) -> Any:
    v = grant.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise Fail("bad_grant", f"grant parameter {name!r} must be a positive number")
    return v


def p_content(params: Mapping[str, Any], name: str) -> bytes:
    v = params.get(name)
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise Fail("invalid_params", f"{name!r} must be text or bytes")


# --- secrets ---------------------------------------------------------------------------------
def secret_ref(value: Any) -> str | None:
    """The secret name of a ``{"secret": "NAME"}`` value, else None."""
    if isinstance(value, Mapping) and set(value) == {"secret"} and isinstance(value["secret"], str):
        return value["secret"]
    return None


def resolve_secret(call: EffectCall, name: str) -> str:
    resolver: Callable[[str], str] | None = call.secrets
    if resolver is None:
        raise Fail("secret_unavailable", f"secret {name!r} is not available to this effect")
    try:
        value = resolver(name)
    except Exception:  # noqa: BLE001 - any refusal by the resolver ends the effect the same way
        raise Fail("secret_unavailable", f"secret {name!r} is not available to this effect") from None
    if not isinstance(value, str):
        raise Fail("secret_unavailable", f"secret {name!r} did not resolve to text")
    return value


class Scrubber:
    """Replaces every known secret value with ``[redacted]``, in text, bytes
    and nested payloads. Longest secrets first, so a secret that contains
    another is removed whole."""

    def __init__(self, values: list[str] | None = None) -> None:
        self._text: list[str] = []
        for v in values or ():
            self.add(v)

    def add(self, value: str) -> None:
        if value and value not in self._text:
            self._text.append(value)
            self._text.sort(key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._text)

    @property
    def longest(self) -> int:
        """Length in bytes of the longest secret (0 if none)."""
        return max((len(t.encode()) for t in self._text), default=0)

    def bytes(self, data: bytes) -> bytes:
        for t in self._text:
            data = data.replace(t.encode(), REDACTED_B)
        return data

    def text(self, s: str) -> str:
        for t in self._text:
            s = s.replace(t, REDACTED)
        return s

    def value(self, v: Any) -> Any:
        if not self._text:
            return v
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, (bytes, bytearray)):
            return self.bytes(bytes(v))
        if isinstance(v, Mapping):
            return {self.value(k): self.value(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [self.value(x) for x in v]
        return v

    def receipt(self, r: Receipt) -> Receipt:
        if not self._text:
            return r
        return Receipt(r.status, self.value(dict(r.payload)), r.error, self.text(r.message))


class StreamScrubber:
    """Scrubs a byte stream that arrives in chunks: holds back the last
    ``longest - 1`` bytes so a secret split across two chunks is still caught."""

    def __init__(self, scrubber: Scrubber) -> None:
        self._s = scrubber
        self._keep = max(scrubber.longest - 1, 0)
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._s.bytes(self._pending + chunk)
        if self._keep == 0:
            self._pending = b""
            return data
        cut = max(len(data) - self._keep, 0)
        self._pending = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        data, self._pending = self._s.bytes(self._pending), b""
        return data


def decode_text(data: bytes, truncated: bool, errors: str = "replace") -> str:
    """UTF-8 text of ``data``. If ``truncated``, a multi-byte character cut in
    half at the end is dropped; other invalid bytes become U+FFFD (or raise
    ``UnicodeDecodeError`` with ``errors="strict"``)."""
    if truncated:
        for back in range(1, min(4, len(data)) + 1):
            b = data[-back]
            if b & 0xC0 == 0x80:  # continuation byte: look further back
                continue
            if b & 0xC0 == 0xC0:  # lead byte: drop it if its sequence is incomplete
                need = 2 if b & 0xE0 == 0xC0 else 3 if b & 0xF0 == 0xE0 else 4
                if need > back:
                    data = data[:-back]
            break
    return data.decode("utf-8", errors=errors)

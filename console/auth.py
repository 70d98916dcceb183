"""Who may use the console: one-time login links, session cookies, CSRF tokens. No I/O.

The console prints a login link carrying a one-time token (the convention of
Jupyter's printed link, but spent on first use). Opening it trades the token
for a session: an ``HttpOnly``, ``SameSite=Strict`` cookie the page cannot
read and no other site's page can send. Every write call must also carry the
session's CSRF token in a header, which only a page served by the console
can know (it reads it from ``/api/session``). Secrets are compared in
constant time and kept only as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "aos_console"
CSRF_HEADER = "X-AOS-CSRF"
LOGIN_SECONDS = 15 * 60  # an unused login link expires
SESSION_SECONDS = 12 * 3600


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(slots=True)
class Session:
    id_digest: bytes
    csrf: str
    created: float
    label: str  # a short, non-secret name for audit records

    def csrf_ok(self, header: str | None) -> bool:
        return bool(header) and hmac.compare_digest(header.encode(), self.csrf.encode())  # type: ignore[union-attr]


@dataclass
class Gate:
    """The console's login tokens and sessions (in memory: they end with the console)."""

    clock: Callable[[], float] = time.monotonic
    _logins: dict[bytes, float] = field(default_factory=dict)
    _sessions: dict[bytes, Session] = field(default_factory=dict)

    def new_login(self) -> str:
        """A fresh one-time login token (for the printed link)."""
        token = secrets.token_urlsafe(32)
        self._logins[_digest(token)] = self.clock() + LOGIN_SECONDS
        return token

    def login(self, token: str | None) -> tuple[str, Session] | None:
        """Spend a login token: ``(session cookie value, session)``, or None if it is unknown, used or
        expired. A token works once, whatever happens next."""
        if not token:
            return None
        expires = self._logins.pop(_digest(token), None)
        if expires is None or self.clock() > expires:
            return None
        sid = secrets.token_urlsafe(32)
        session = Session(_digest(sid), secrets.token_urlsafe(32), self.clock(), "s-" + secrets.token_hex(4))
        self._sessions[session.id_digest] = session
        return sid, session

    def session(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        session = self._sessions.get(_digest(cookie))
        if session is None:
            return None
        if self.clock() - session.created > SESSION_SECONDS:
            del self._sessions[session.id_digest]
            return None
        return session

    def logout(self, cookie: str | None) -> None:
        if cookie:
            self._sessions.pop(_digest(cookie), None)


def cookie_header(sid: str) -> str:
    """The Set-Cookie value: the page's scripts cannot read it, no other site's request carries it."""
    return f"{COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_SECONDS}"

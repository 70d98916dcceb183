"""Origin confinement for the coming ``browser.*`` effects (issue 15).

A ``browser`` grant names the origins a world's browser may reach, each as
scheme + host + port (``"http://127.0.0.1:8080"``; the port defaults to the
scheme's). The same check must hold in three places: the kernel's grant
check on a ``browser.navigate`` intent (journaled, replayable refusals), the
adapter's interception of every request Chromium makes (redirects,
subresources, fetches: anything the page does on its own), and the adapter's
check of the page's final URL. Keeping one pure function here means the
three cannot drift apart.

Only http and https are origins. ``file:``, ``chrome:``, ``devtools:``,
``javascript:`` and the rest are refused whatever the grant says: a page
that could read ``file:///`` would read the host. ``about:blank`` and
``data:``/``blob:`` documents a page makes itself are inert (they carry no
network access of their own) and are admitted only for the adapter's
interception, never as a navigation target.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
# what a page may load inside itself without a network request
_INERT_SCHEMES = frozenset({"about", "data", "blob"})


class OriginError(ValueError):
    """A grant entry that is not an origin."""


@dataclass(frozen=True, slots=True, order=True)
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _origin_of(url: str) -> Origin | str:
    """The URL's origin, or why it has none."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the url is malformed (bad host or port)"
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return f"scheme {scheme + ':' if scheme else '(none)'} is not allowed (only http and https)"
    if not parts.hostname:
        return "the url has no host"
    return Origin(scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme])


def parse_origin(entry: str) -> Origin:
    """A grant entry ``scheme://host[:port]`` (no path, query or user) as an Origin."""
    if not isinstance(entry, str):
        raise OriginError(f"an origin is text like 'http://127.0.0.1:8080', not {type(entry).__name__}")
    origin = _origin_of(entry)
    if isinstance(origin, str):
        raise OriginError(f"origin {entry!r}: {origin}")
    parts = urlsplit(entry)
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise OriginError(f"origin {entry!r} must be scheme://host[:port] only")
    return origin


@dataclass(frozen=True, slots=True)
class Origins:
    """The origins one grant allows."""

    allowed: frozenset[Origin]

    @classmethod
    def parse(cls, entries: list[str]) -> Origins:
        if not isinstance(entries, list) or not entries:
            raise OriginError("a browser grant needs a non-empty list of origins")
        return cls(frozenset(parse_origin(e) for e in entries))

    def check_navigation(self, url: str) -> str | None:
        """None when the model may navigate to ``url``, else why not (one line)."""
        if not isinstance(url, str) or not url:
            return "a navigation needs a url"
        origin = _origin_of(url)
        if isinstance(origin, str):
            return origin
        if origin not in self.allowed:
            return f"origin {origin} is not granted (granted: {', '.join(map(str, sorted(self.allowed)))})"
        return None

    def check_request(self, url: str) -> str | None:
        """As ``check_navigation``, for a request the page itself makes; inert
        in-page documents (about:blank, data:, blob:) pass."""
        scheme = url.split(":", 1)[0].lower() if isinstance(url, str) and ":" in url else ""
        if scheme in _INERT_SCHEMES:
            return None
        return self.check_navigation(url)

"""Every failure a command-line tool meets, as one line for a terminal.

``aos``, ``aos-shell`` and ``aos-kernel`` call ``describe`` at their top
level (and nowhere else), so no exception reaches a user as a traceback:

- an ``AosError`` is its class and message (``UnknownWorld: no world ...``);
- an ``OSError`` is the path and the system's reason (``/tmp: Is a directory``);
- JSON that does not parse, or nests too deeply for the parser, is ``bad JSON: ...``;
- anything else is a bug of ours: ``internal error: <type>: <message>``, with
  the traceback printed too when ``AOS_DEBUG=1``.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import traceback

from aos.errors import AosError

# modules whose frames mean "this came from parsing JSON"
_JSON_MODULES = ("json", "aos.kernel.host.jsonvalue")


def describe(exc: BaseException) -> str:
    """``Kind: message`` on one line (no prefix: each tool adds its own, ``aos: `` or ``error: ``)."""
    if isinstance(exc, AosError):
        kind = "" if type(exc) is AosError else type(exc).__name__ + ": "
        return kind + _flat(str(exc) or type(exc).__name__)
    if isinstance(exc, json.JSONDecodeError):
        return f"bad JSON: {_flat(str(exc))}"
    if isinstance(exc, (RecursionError, ValueError)) and _from_json(exc):
        if isinstance(exc, RecursionError):
            return "bad JSON: nested too deeply"
        return f"bad JSON: {_flat(str(exc))}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {_flat(exc.reason or str(exc))}"
    if isinstance(exc, OSError):
        reason = exc.strerror or _flat(str(exc)) or type(exc).__name__
        return f"{exc.filename}: {reason}" if exc.filename is not None else reason
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text: {_flat(str(exc))}"
    return f"internal error: {type(exc).__name__}: {_flat(str(exc))}"


def report(prog: str, exc: BaseException, file: object = None) -> None:
    """Print ``prog: describe(exc)`` on stderr; the traceback first when ``AOS_DEBUG=1``."""
    out = file if file is not None else sys.stderr
    if debugging():
        traceback.print_exception(exc, file=out)  # type: ignore[arg-type]
    print(f"{prog}: {describe(exc)}", file=out, flush=True)  # type: ignore[call-overload]


def debugging() -> bool:
    return os.environ.get("AOS_DEBUG", "") not in ("", "0")


def _from_json(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module in _JSON_MODULES or module.startswith("json."):
            return True
        tb = tb.tb_next
    return False


def _flat(text: str) -> str:
    """One line: newlines and runs of whitespace collapsed, at most 400 characters."""
    line = " ".join(text.split())
    return line if len(line) <= 400 else line[:399] + "…"

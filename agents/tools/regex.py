"""Regular expressions that come from a world or a model, compiled with RE2.

Python's ``re`` backtracks: ``(a+)+$`` against a line of a few dozen ``a``s
and a ``!`` takes seconds, doubling with every ``a``, and ``re`` holds the
GIL all that time, so one grep froze the whole kernel. RE2 (``google-re2``)
runs in time linear in the text, releases the GIL while it matches, and
refuses what it cannot do in linear time: backreferences (``\\1``),
lookaround (``(?=``, ``(?!``, ``(?<=``, ``(?<!``), possessive and atomic
groups. Those are ``ToolError`` (``invalid_params``) with a message that
says so. Other differences from ``re``: ``\\d``, ``\\w``, ``\\s`` and ``\\b``
are ASCII-only, and the end of text is ``\\z`` (``re`` spells it ``\\Z``).

Patterns are compiled without the ``re2`` module's cache (it keeps 128
compiled programs of up to ``max_mem`` each alive, which a stream of distinct
patterns would fill), with a memory budget per program, and with RE2's own
logging off (it would write to the kernel's stderr).
"""

from __future__ import annotations

from typing import Any

import re2

from .errors import ToolError

MAX_PATTERN_CHARS = 8192  # longer patterns are refused before compiling
MAX_MEM = 8 << 20  # bytes for one compiled program and its DFA cache; past it RE2 falls back to its NFA

# RE2's error text -> what to tell the caller
_HINTS = (
    ("invalid perl operator: (?=", "lookahead is not supported (RE2 syntax)"),
    ("invalid perl operator: (?!", "lookahead is not supported (RE2 syntax)"),
    ("invalid perl operator: (?<=", "lookbehind is not supported (RE2 syntax)"),
    ("invalid perl operator: (?<!", "lookbehind is not supported (RE2 syntax)"),
    ("invalid perl operator: (?>", "atomic groups are not supported (RE2 syntax)"),
    ("bad repetition operator: ++", "possessive quantifiers are not supported (RE2 syntax)"),
    ("bad repetition operator: *+", "possessive quantifiers are not supported (RE2 syntax)"),
    ("bad repetition operator: ?+", "possessive quantifiers are not supported (RE2 syntax)"),
    ("invalid escape sequence: \\Z", "use \\z for the end of the text (RE2 syntax)"),
)


def compile_untrusted(
    pattern: str,
    *,
    case_insensitive: bool = False,
    never_nl: bool = False,
    prefix: str = "",
    what: str = "regular expression",
    shown: str | None = None,
    max_chars: int | None = MAX_PATTERN_CHARS,
    max_mem: int = MAX_MEM,
) -> Any:
    """An RE2 program for ``prefix + pattern`` (``re``-like ``search``/``fullmatch``/
    ``finditer`` on text or bytes). ``never_nl``: no match ever contains a newline.
    Raises ``ToolError`` naming ``shown`` (default: ``pattern``) if ``pattern`` is longer
    than ``max_chars`` or RE2 refuses it."""
    if max_chars is not None and len(pattern) > max_chars:
        raise ToolError(f"{what} is {len(pattern)} characters; the limit is {max_chars}")
    options = re2.Options()
    options.log_errors = False
    options.max_mem = max_mem
    options.case_sensitive = not case_insensitive
    options.never_nl = never_nl
    try:
        # the class itself, not re2.compile: see the module docstring about the cache
        return re2._Regexp(prefix + pattern, options)
    except re2.error as e:
        raise ToolError(f"invalid {what} {_short(pattern if shown is None else shown)}: {_reason(e)}") from None


def _reason(e: Exception) -> str:
    text = e.args[0] if e.args else str(e)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text)
    if text.startswith("invalid escape sequence: \\") and text[-1:].isdigit():
        return "backreferences are not supported (RE2 syntax)"
    for start, hint in _HINTS:
        if text.startswith(start):
            return hint
    return text


def _short(pattern: str) -> str:
    return repr(pattern) if len(pattern) <= 200 else repr(pattern[:200]) + "..."

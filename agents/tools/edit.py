"""``edit_file``'s search-and-replace, sans-IO.

How it works. ``edit_text`` looks for ``old`` in ``text`` exactly. If it is
not there, it builds a tolerant pattern from ``old`` and matches that in the
original text, so the replaced span is the file's own text: each run of
whitespace matches any horizontal whitespace with the same number of line
breaks (so trailing spaces, indentation, tabs and CRLF do not matter, but
lines are not joined); curly and straight quotes match each other, and so
do the Unicode dashes and ``-``. A run at the end of ``old`` does not eat
the next line's indentation, and a run at its start begins where the file's
whitespace run begins (which keeps matching linear). No match is ``EditNoMatch``; more than one
without ``replace_all`` is ``EditAmbiguous`` with the count. If the file's
line endings are all CRLF, ``old`` and ``new`` are read with CRLF too.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import EditAmbiguous, EditError, EditNoMatch

MAX_FUZZY_CHARS = 20_000  # longer old strings are matched exactly only

_SINGLE = "'\u2018\u2019\u201a\u201b\u02bc\u2032"
_DOUBLE = '"\u201c\u201d\u201e\u201f\u2033'
_DASH = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_CLASSES = {c: "[" + re.escape(group) + "]" for group in (_SINGLE, _DOUBLE, _DASH) for c in group}
_RUN = re.compile(r"\s+")
_H = r"[^\S\n]"  # horizontal whitespace (\r counts, so CRLF is tolerated)


class Edit(NamedTuple):
    text: str
    replacements: int
    strategy: str  # "exact" or "fuzzy"


def edit_text(text: str, old: str, new: str, replace_all: bool = False) -> Edit:
    """Replace ``old`` with ``new`` in ``text`` (once, or everywhere with ``replace_all``).

    Raises ``EditError`` (empty or unchanged ``old``), ``EditNoMatch`` or ``EditAmbiguous``.
    """
    if old == "":
        raise EditError("old_string is empty; to create or overwrite a file, write it instead")
    if old == new:
        raise EditError("old_string and new_string are identical; nothing would change")
    if "\r\n" in text and text.count("\r\n") == text.count("\n") and "\r\n" not in old:
        old, new = old.replace("\n", "\r\n"), new.replace("\n", "\r\n")
    count = text.count(old)
    if count:
        if count > 1 and not replace_all:
            raise EditAmbiguous(
                f"old_string is not unique: found {count} matches; add surrounding lines to it or set replace_all",
                count,
            )
        return Edit(
            text.replace(old, new) if replace_all else text.replace(old, new, 1),
            count,
            "exact",
        )
    if not old.strip():
        raise EditNoMatch("old_string (whitespace only) not found")
    if len(old) > MAX_FUZZY_CHARS:
        raise EditNoMatch(f"old_string not found exactly, and at {len(old)} characters it is too long to match loosely")
    spans = [m.span() for m in tolerant_pattern(old).finditer(text)]
    if not spans:
        raise EditNoMatch("old_string not found (exact and whitespace/quote-tolerant matching both failed)")
    if len(spans) > 1 and not replace_all:
        raise EditAmbiguous(
            f"old_string is not unique: the whitespace/quote-tolerant match found {len(spans)} places; "
            "add surrounding lines to it or set replace_all",
            len(spans),
        )
    out = text
    for a, b in reversed(spans):
        out = out[:a] + new + out[b:]
    return Edit(out, len(spans), "fuzzy")


def tolerant_pattern(old: str) -> re.Pattern[str]:
    """The tolerant regex for ``old`` (see the module docstring)."""
    parts: list[str] = []
    pos = 0
    for m in _RUN.finditer(old):
        parts.extend(_CLASSES.get(c) or re.escape(c) for c in old[pos : m.start()])
        breaks = m.group().count("\n")
        at_start, at_end = m.start() == 0, m.end() == len(old)
        if at_start:  # start only where a whitespace run starts, so a long run is not rescanned per position
            parts.append(f"(?<!{_H})")
        # possessive: what follows a run is never horizontal whitespace, so giving some back never helps
        if breaks == 0:
            parts.append(_H + ("*+" if at_start or at_end else "++"))
        elif at_end:
            parts.append(f"(?:{_H}*+\\n){{{breaks}}}")
        else:
            parts.append(f"{_H}*+(?:\\n{_H}*+){{{breaks}}}")
        pos = m.end()
    parts.extend(_CLASSES.get(c) or re.escape(c) for c in old[pos:])
    return re.compile("".join(parts))

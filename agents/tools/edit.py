"""``edit_file``'s search-and-replace, sans-IO.

How it works. ``edit_text`` looks for ``old`` in ``text`` exactly. If it is
not there, it matches tolerantly, and the replaced span is the file's own
text: each run of whitespace in ``old`` matches any horizontal whitespace
with the same number of line breaks (so trailing spaces, indentation, tabs
and CRLF do not matter, but lines are not joined); curly and straight quotes
match each other, and so do the Unicode dashes and ``-``. A run at the end
of ``old`` does not eat the next line's indentation. No match is
``EditNoMatch``; more than one without ``replace_all`` is ``EditAmbiguous``
with the count. If the file's line endings are all CRLF, ``old`` and ``new``
are read with CRLF too.

The tolerant match runs in linear time whatever ``old`` and the file hold
(both come from a model or a world). It used to be a regex built from
``old``; a backtracking (or NFA) search costs len(file) x len(old), hours
for a big file and a long ``old``. Instead both sides are *normalized*
(quotes and dashes folded, every whitespace run replaced by ``" "`` or by
as many ``"\\n"`` as it holds) and ``old``'s core (without its leading and
trailing whitespace) is found with ``str.find``; a leading or trailing run
of ``old`` with line breaks is part of the needle (``"\\n" * k``). Each hit
is then mapped back to the file: a walk over the file's whitespace runs,
forward only, turns the normalized offset into the file's, and the leading
and trailing runs of ``old`` are matched on the file's own whitespace
around it. The result is the same set of matches the regex gave (a test
keeps the regex as an oracle). The normalization goes a chunk at a time and
``deadline`` is checked between chunks and between matches.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import EditAmbiguous, EditError, EditNoMatch
from .limits import NEVER, Deadline

MAX_FUZZY_CHARS = 20_000  # longer old strings are matched exactly only
CHUNK = 1 << 20  # characters normalized per step (each step is one C call that holds the GIL)

_SINGLE = "'\u2018\u2019\u201a\u201b\u02bc\u2032"
_DOUBLE = '"\u201c\u201d\u201e\u201f\u2033'
_DASH = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_FOLD = str.maketrans({c: group[0] for group in (_SINGLE, _DOUBLE, _DASH) for c in group[1:]})
# these fixed patterns see untrusted text, so each is linear: no nested or overlapping repeats
_WS = re.compile(r"\s+")  # a whitespace run (Python's \s, as str.isspace)
_H_RUN = re.compile(r"[^\S\n]+")  # a run of horizontal whitespace (\r counts, so CRLF is tolerated)
_NON_WS = re.compile(r"\S")


class Edit(NamedTuple):
    text: str
    replacements: int
    strategy: str  # "exact" or "fuzzy"


def edit_text(text: str, old: str, new: str, replace_all: bool = False, *, deadline: Deadline = NEVER) -> Edit:
    """Replace ``old`` with ``new`` in ``text`` (once, or everywhere with ``replace_all``).

    Raises ``EditError`` (empty or unchanged ``old``), ``EditNoMatch``, ``EditAmbiguous``,
    or ``ToolTimeout`` when ``deadline`` passes.
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
    spans = tolerant_spans(text, old, deadline)
    if not spans:
        raise EditNoMatch("old_string not found (exact and whitespace/quote-tolerant matching both failed)")
    if len(spans) > 1 and not replace_all:
        raise EditAmbiguous(
            f"old_string is not unique: the whitespace/quote-tolerant match found {len(spans)} places; "
            "add surrounding lines to it or set replace_all",
            len(spans),
        )
    pieces, at = [], 0
    for a, b in spans:
        pieces += [text[at:a], new]
        at = b
    pieces.append(text[at:])
    return Edit("".join(pieces), len(spans), "fuzzy")


def normalize(s: str) -> str:
    """Quotes and dashes folded; each whitespace run -> ``"\\n" * breaks`` or ``" "``."""
    s = _H_RUN.sub(" ", s.translate(_FOLD))
    # no two spaces are adjacent now, so one pass of each replace clears spaces beside a newline
    return s.replace(" \n", "\n").replace("\n ", "\n")


def tolerant_spans(text: str, old: str, deadline: Deadline = NEVER) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of ``text`` that ``old`` matches tolerantly, left to
    right and not overlapping (see the module docstring). ``old`` must hold a
    non-whitespace character."""
    core = old.strip()
    lead, trail = old[: len(old) - len(old.lstrip())], old[len(old.rstrip()) :]
    lead_nl, trail_nl = lead.count("\n"), trail.count("\n")
    needle_core = normalize(core)
    needle = "\n" * lead_nl + needle_core + "\n" * trail_nl
    norm = _normalize_chunked(text, deadline)
    walk = _Walk(text)
    spans: list[tuple[int, int]] = []
    prev_end, at = 0, 0
    while (hit := norm.find(needle, at)) >= 0:
        deadline.check()
        core_norm = hit + lead_nl
        c, before = walk.to(core_norm)
        e = _Walk(text, c, core_norm).to(core_norm + len(needle_core))[0]
        s = _lead_start(text, c, before, lead_nl) if lead else c
        if s < prev_end:  # the previous match ate the whitespace this one starts with
            at = hit + 1
            continue
        end = _trail_end(text, e, trail_nl) if trail else e
        spans.append((s, end))
        prev_end, at = end, hit + len(needle)
    return spans


def _normalize_chunked(text: str, deadline: Deadline) -> str:
    """``normalize(text)`` a chunk at a time, each cut before a non-whitespace
    character (so no run is split and the pieces join into the whole)."""
    out, start = [], 0
    while start < len(text):
        deadline.check()
        cut = len(text)
        if start + CHUNK < len(text):
            m = _NON_WS.search(text, start + CHUNK)
            cut = m.start() if m else len(text)
        out.append(normalize(text[start:cut]))
        start = cut
    return "".join(out)


class _Walk:
    """Turns offsets in ``normalize(text)`` into offsets in ``text``, moving forward
    from a point (``orig``, ``norm``) that is not inside a whitespace run."""

    def __init__(self, text: str, orig: int = 0, norm: int = 0) -> None:
        self.text, self.orig, self.norm = text, orig, norm
        self.run: tuple[int, int] | None = None  # the whitespace run that ends at ``orig``, if any

    def to(self, target: int) -> tuple[int, tuple[int, int] | None]:
        """``(offset in text, the run just before it or None)`` for the normalized
        ``target``, which sits at a non-whitespace character or right after one."""
        while True:
            m = _WS.search(self.text, self.orig)
            seg_end = m.start() if m is not None else len(self.text)
            if target <= self.norm + seg_end - self.orig:
                at = self.orig + (target - self.norm)
                before = self.run if at == self.orig else None
                self.orig, self.norm = at, target
                self.run = before
                return at, before
            assert m is not None
            self.norm += seg_end - self.orig + (self.text.count("\n", seg_end, m.end()) or 1)
            self.orig, self.run = m.end(), m.span()


def _lead_start(text: str, c: int, before: tuple[int, int] | None, breaks: int) -> int:
    """Where a match starts whose ``old`` begins with a whitespace run of ``breaks``
    line breaks, given its core starts at ``c`` after the run ``before``: the run's
    last line's indentation (no breaks), or from the ``breaks``-th last line break
    back to the line break before it or the run's start."""
    if before is None:  # no whitespace before the core (only possible without breaks)
        return c
    ms, me = before
    if breaks == 0:
        nl = text.rfind("\n", ms, me)
        return nl + 1 if nl >= 0 else ms
    p = me
    for _ in range(breaks):
        p = text.rfind("\n", ms, p)
    q = text.rfind("\n", ms, p)
    return q + 1 if q >= 0 else ms


def _trail_end(text: str, e: int, breaks: int) -> int:
    """Where a match ends whose ``old`` ends with a whitespace run of ``breaks`` line
    breaks, given its core ends at ``e``: the horizontal whitespace up to the next
    line break (no breaks), or through the ``breaks``-th line break (not the
    indentation after it)."""
    m = _WS.match(text, e)
    if m is None:
        return e
    ms, me = m.span()
    if breaks == 0:
        nl = text.find("\n", ms, me)
        return nl if nl >= 0 else me
    p = ms - 1
    for _ in range(breaks):
        p = text.find("\n", p + 1, me)
    return p + 1

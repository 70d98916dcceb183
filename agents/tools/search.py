"""``grep`` and ``glob`` over an injected file walk, sans-IO.

The caller supplies the walk: the relative paths of the files under the
search directory (``/``-separated) and, for grep, ``read(path) -> text | None``
(None: skip it, e.g. binary). Results are sorted by path (then line), so a
cut at ``max_results`` is deterministic; ``truncated`` says there was more.

Glob patterns: ``*`` and ``?`` stay inside one path segment, ``[abc]`` is a
class, ``{a,b}`` alternatives, and a ``**`` segment matches zero or more
segments (``**/*.py`` matches ``x.py`` and ``a/b/x.py``). ``*`` also matches
names starting with a dot. For the glob tool the pattern must match the
whole relative path; grep's ``glob`` filter, like ripgrep's, matches the
file's name alone when the pattern has no ``/``.

Patterns come from a world or a model, so both run in RE2 (see ``regex``),
linear in the text; grep searches each file's text in one pass (a match never
spans a newline) instead of line by line. A ``Deadline`` is checked between
files and between matches, so a search over a huge tree stops with
``ToolTimeout`` rather than running on; ``max_bytes`` stops it (``truncated``)
once that much text has been searched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .errors import ToolError
from .limits import NEVER, Deadline
from .regex import compile_untrusted

MAX_LINE_CHARS = 2000  # a matching line longer than this is cut (minified files)
MAX_GLOB_CHARS = 1024  # a longer glob pattern is refused
MAX_BRACE_GROUPS = 32  # ... and so is one with more {..} groups (each nests a recursion)
GLOB_MAX_MEM = 1 << 20  # RE2 memory for one compiled glob


@dataclass(frozen=True, slots=True)
class GrepMatch:
    path: str
    line: int  # 1-based
    text: str


@dataclass(frozen=True, slots=True)
class GrepResult:
    matches: list[GrepMatch] = field(default_factory=list)
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class GlobResult:
    paths: list[str] = field(default_factory=list)
    truncated: bool = False


def compile_regex(pattern: str, case_insensitive: bool = False) -> Any:
    """The RE2 program grep uses for ``pattern``: ``^``/``$`` match at line ends and no
    match crosses a newline. A bad or unsupported pattern is ``ToolError`` (``invalid_params``)."""
    return compile_untrusted(pattern, case_insensitive=case_insensitive, never_nl=True, prefix="(?m)")


def grep(
    pattern: str,
    paths: Iterable[str],
    read: Callable[[str], str | None],
    *,
    glob: str | None = None,
    case_insensitive: bool = False,
    max_results: int = 100,
    max_bytes: int | None = None,
    deadline: Deadline = NEVER,
) -> GrepResult:
    """Lines matching ``pattern`` in the files ``paths`` (filtered by ``glob``), at most
    ``max_results``; stops (``truncated``) after searching ``max_bytes`` of text.
    Raises ``ToolTimeout`` when ``deadline`` passes."""
    regex = compile_regex(pattern, case_insensitive)
    keep = glob_matcher(glob, basename_if_no_slash=True) if glob else None
    out: list[GrepMatch] = []
    searched = 0
    for path in sorted(paths):
        deadline.check()
        if keep is not None and not keep(path):
            continue
        text = read(path)
        if text is None:
            continue
        searched += len(text)
        if max_bytes is not None and searched > max_bytes:
            return GrepResult(out, True)
        for n, line in _matching_lines(regex, text, deadline):
            if len(out) == max_results:
                return GrepResult(out, True)
            if len(line) > MAX_LINE_CHARS:
                line = line[:MAX_LINE_CHARS] + " [...]"
            out.append(GrepMatch(path, n, line))
    return GrepResult(out, False)


def _matching_lines(regex: Any, text: str, deadline: Deadline) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of each line with a match: one RE2 search per matching
    line over the whole text (a CR before a newline is not part of the line)."""
    data = text.replace("\r\n", "\n").removesuffix("\r").encode("utf-8")
    pos, line_no, counted = 0, 1, 0
    while pos <= len(data):
        m = regex.search(data, pos)
        if m is None:
            return
        start = data.rfind(b"\n", 0, m.start()) + 1
        end = data.find(b"\n", m.start())
        end = len(data) if end < 0 else end
        line_no += data.count(b"\n", counted, start)
        counted = start
        yield line_no, data[start:end].decode("utf-8", errors="replace")
        pos = end + 1
        deadline.check()


def glob(pattern: str, paths: Iterable[str], max_results: int = 1000, *, deadline: Deadline = NEVER) -> GlobResult:
    """The ``paths`` the glob ``pattern`` matches, sorted, at most ``max_results``.
    Raises ``ToolTimeout`` when ``deadline`` passes."""
    match = glob_matcher(pattern)
    hits = []
    for i, p in enumerate(paths):
        if i % 1024 == 0:
            deadline.check()
        if match(p):
            hits.append(p)
    hits.sort()
    return GlobResult(hits[:max_results], len(hits) > max_results)


def glob_matcher(pattern: str, basename_if_no_slash: bool = False) -> Callable[[str], bool]:
    """A predicate on relative ``/``-separated paths for ``pattern``."""
    pattern = pattern.strip().removeprefix("./")
    if not pattern:
        raise ToolError("empty glob pattern")
    if len(pattern) > MAX_GLOB_CHARS:
        raise ToolError(f"glob pattern is {len(pattern)} characters; the limit is {MAX_GLOB_CHARS}")
    if pattern.count("{") > MAX_BRACE_GROUPS:
        raise ToolError(f"glob pattern has more than {MAX_BRACE_GROUPS} '{{' groups")
    if basename_if_no_slash and "/" not in pattern:
        rx = _compile_glob(pattern)
        return lambda p: rx.fullmatch(p.rsplit("/", 1)[-1]) is not None
    rx = _compile_glob(pattern.lstrip("/"))
    return lambda p: rx.fullmatch(p) is not None


@lru_cache(maxsize=64)
def _compile_glob(pattern: str) -> Any:
    alternatives = _expand_braces(pattern)
    # the translation is RE2 syntax too; its length is bounded by MAX_GLOB_CHARS x 256 alternatives
    source = "|".join(f"(?:{_translate(a)})" for a in alternatives)
    # a small memory budget: up to 64 of these stay cached (paths are short, so the DFA stays small)
    return compile_untrusted(source, prefix="(?s)", what="glob pattern", shown=pattern, max_chars=None,
                             max_mem=GLOB_MAX_MEM)


def _expand_braces(pattern: str, limit: int = 256) -> list[str]:
    """``a{b,c}d`` -> ``[abd, acd]``; nested braces work; unbalanced ones are literal."""
    depth, start = 0, -1
    for i, c in enumerate(pattern):
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                options, d, cur = [], 0, start + 1
                for j in range(start + 1, i):
                    if pattern[j] == "{":
                        d += 1
                    elif pattern[j] == "}":
                        d -= 1
                    elif pattern[j] == "," and d == 0:
                        options.append(pattern[cur:j])
                        cur = j + 1
                options.append(pattern[cur:i])
                out: list[str] = []
                for opt in options:
                    for rest in _expand_braces(opt + pattern[i + 1 :], limit):
                        out.append(pattern[:start] + rest)
                        if len(out) > limit:
                            raise ToolError(f"glob pattern {pattern!r} expands to too many alternatives")
                return out
    return [pattern]


def _translate(pattern: str) -> str:
    segments = pattern.split("/")
    out = ""
    for k, seg in enumerate(segments):
        last = k == len(segments) - 1
        if seg == "**":
            out += ".*" if last else "(?:[^/]*/)*"  # zero or more whole segments
            continue
        out += _segment(seg) + ("" if last else "/")
    return out


def _segment(seg: str) -> str:
    out, i = "", 0
    while i < len(seg):
        c = seg[i]
        if c == "*":
            while i + 1 < len(seg) and seg[i + 1] == "*":
                i += 1
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = seg.find("]", i + 3 if seg[i + 1 : i + 2] in ("!", "^") else i + 2)  # a leading ] is literal
            if j < 0:
                out += re.escape(c)
            else:
                body = seg[i + 1 : j]
                neg = body[:1] in ("!", "^")
                body = body[1:] if neg else body
                out += "[" + ("^/" if neg else "") + body.replace("\\", "\\\\").replace("[", "\\[") + "]"
                i = j
        else:
            out += re.escape(c)
        i += 1
    return out

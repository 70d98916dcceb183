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
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from .errors import ToolError

MAX_LINE_CHARS = 2000  # a matching line longer than this is cut (minified files)


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


def compile_regex(pattern: str, case_insensitive: bool = False) -> re.Pattern[str]:
    """Python ``re`` syntax; a bad pattern is ``ToolError`` (``invalid_params``)."""
    try:
        return re.compile(pattern, re.IGNORECASE if case_insensitive else 0)
    except re.error as e:
        raise ToolError(f"invalid regular expression {pattern!r}: {e}") from None


def grep(
    pattern: str,
    paths: Iterable[str],
    read: Callable[[str], str | None],
    *,
    glob: str | None = None,
    case_insensitive: bool = False,
    max_results: int = 100,
) -> GrepResult:
    """Lines matching ``pattern`` in the files ``paths`` (filtered by ``glob``), at most ``max_results``."""
    regex = compile_regex(pattern, case_insensitive)
    keep = glob_matcher(glob, basename_if_no_slash=True) if glob else None
    out: list[GrepMatch] = []
    for path in sorted(paths):
        if keep is not None and not keep(path):
            continue
        text = read(path)
        if text is None:
            continue
        for n, line in enumerate(text.split("\n"), 1):
            line = line.removesuffix("\r")
            if regex.search(line):
                if len(out) == max_results:
                    return GrepResult(out, True)
                if len(line) > MAX_LINE_CHARS:
                    line = line[:MAX_LINE_CHARS] + " [...]"
                out.append(GrepMatch(path, n, line))
    return GrepResult(out, False)


def glob(pattern: str, paths: Iterable[str], max_results: int = 1000) -> GlobResult:
    """The ``paths`` the glob ``pattern`` matches, sorted, at most ``max_results``."""
    match = glob_matcher(pattern)
    hits = sorted(p for p in paths if match(p))
    return GlobResult(hits[:max_results], len(hits) > max_results)


def glob_matcher(pattern: str, basename_if_no_slash: bool = False) -> Callable[[str], bool]:
    """A predicate on relative ``/``-separated paths for ``pattern``."""
    pattern = pattern.strip().removeprefix("./")
    if not pattern:
        raise ToolError("empty glob pattern")
    if basename_if_no_slash and "/" not in pattern:
        rx = _compile_glob(pattern)
        return lambda p: rx.fullmatch(p.rsplit("/", 1)[-1]) is not None
    rx = _compile_glob(pattern.lstrip("/"))
    return lambda p: rx.fullmatch(p) is not None


@lru_cache(maxsize=64)
def _compile_glob(pattern: str) -> re.Pattern[str]:
    alternatives = _expand_braces(pattern)
    try:
        return re.compile("|".join(f"(?:{_translate(a)})" for a in alternatives), re.DOTALL)
    except re.error as e:
        raise ToolError(f"invalid glob pattern {pattern!r}: {e}") from None


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

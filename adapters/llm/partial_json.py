"""Best-effort parsing of a JSON prefix, for ``stream_object``'s partial objects.

``parse_partial('{"name": "Al')`` is ``{"name": "Al"}``: an open string is
closed, open containers are closed, and a dangling key, colon, comma or
half-written literal is cut back to the last complete value.
"""

from __future__ import annotations

import json
from typing import Any

_CLOSE = {"{": "}", "[": "]"}


def parse_partial(text: str) -> Any:
    """The value the complete JSON would start with, or None if there is none yet."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    stack: list[str] = []
    cuts: list[tuple[int, str]] = []  # (prefix length, closers) where cutting leaves valid JSON
    in_str = esc = False
    str_is_key = False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
                if not str_is_key:
                    cuts.append((i + 1, _closers(stack)))
            continue
        if ch == '"':
            in_str = True
            # a string directly inside an object, not after a colon, is a key
            str_is_key = bool(stack) and stack[-1] == "{" and _last_sig(text, i) in "{,"
        elif ch in "{[":
            stack.append(ch)
            cuts.append((i + 1, _closers(stack)))
        elif ch in "}]":
            if stack:
                stack.pop()
            cuts.append((i + 1, _closers(stack)))
        elif ch in "0123456789el" and i + 1 < len(text) and text[i + 1] in ",}] \n":
            cuts.append((i + 1, _closers(stack)))  # the end of a number or literal
    if in_str and not str_is_key:
        # close the open value string, dropping a half-written escape
        candidates = [(text[:-1] if esc else text) + '"' + _closers(stack)]
    else:
        candidates = []
    candidates += [text[:cut] + closers for cut, closers in reversed(cuts)]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def _closers(stack: list[str]) -> str:
    return "".join(_CLOSE[c] for c in reversed(stack))


def _last_sig(text: str, i: int) -> str:
    j = i - 1
    while j >= 0 and text[j] in " \t\r\n":
        j -= 1
    return text[j] if j >= 0 else ""

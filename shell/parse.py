"""Lines of shell input -> ``Command`` values. Pure: no I/O, no kernel.

A line holds one or more commands separated by ``;`` (outside quotes). A
command is a name and words; words may be quoted ('...' or "...") the way a
POSIX shell quotes them. A JSON argument (the value of ``send``, the ``--key``
of ``state``) takes the rest of the line as written, so ``send S {"by": 1}``
needs no quoting; one pair of surrounding single quotes is dropped, so the
same text pasted from a bash command line also works.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aos.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed command: its name, positional words and ``--options``.

    ``options`` maps an option name (without dashes) to its value, ``""``
    for a flag. ``raw`` is the command's text as typed.
    """

    name: str
    args: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Grammar:
    """What a command accepts: option names (with or without a value), and
    which argument (a positional index, or an option name) swallows the rest
    of the line as raw text."""

    flags: frozenset[str] = frozenset()
    valued: frozenset[str] = frozenset()
    rest_at: int | None = None
    rest_option: str | None = None


def split_commands(text: str) -> list[str]:
    """Split on ``;`` and newlines outside quotes; drop blanks and ``#`` comments."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
            continue
        if ch == "\\" and quote != "'":
            escaped = True
            current.append(ch)
            continue
        if quote:
            if ch == quote:
                quote = ""
            current.append(ch)
            continue
        if ch in "'\"":
            quote = ch
        if ch in ";\n" and not quote:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip() and not p.strip().startswith("#")]


def words(text: str) -> list[tuple[str, int]]:
    """Shell-like words with the offset where each starts in ``text``."""
    out: list[tuple[str, int]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        start = i
        word: list[str] = []
        while i < n and not text[i].isspace():
            ch = text[i]
            if ch in "'\"":
                end = i + 1
                chunk: list[str] = []
                while end < n and text[end] != ch:
                    if ch == '"' and text[end] == "\\" and end + 1 < n:
                        end += 1
                    chunk.append(text[end])
                    end += 1
                if end >= n:
                    raise InvalidArgument(f"unterminated {ch} quote")
                word.append("".join(chunk))
                i = end + 1
            elif ch == "\\" and i + 1 < n:
                word.append(text[i + 1])
                i += 2
            else:
                word.append(ch)
                i += 1
        out.append(("".join(word), start))
    return out


def _unquote_rest(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    return text


def parse(text: str, grammars: dict[str, Grammar]) -> Command:
    """Parse one command (no ``;``). Unknown names parse too; the executor refuses them."""
    tokens = words(text)
    if not tokens:
        raise InvalidArgument("empty command")
    name = tokens[0][0]
    grammar = grammars.get(name, Grammar())
    args: list[str] = []
    options: dict[str, str] = {}
    i = 1
    while i < len(tokens):
        word, offset = tokens[i]
        if grammar.rest_at is not None and len(args) == grammar.rest_at and not word.startswith("--"):
            args.append(_unquote_rest(text[offset:]))
            break
        if word.startswith("--") and len(word) > 2:
            option, eq, value = word[2:].partition("=")
            if option in grammar.flags and not eq:
                options[option] = ""
            elif option in grammar.valued:
                if option == grammar.rest_option:
                    rest = text[offset + len(word):] if not eq else text[offset + len("--" + option + "="):]
                    if not rest.strip():
                        raise InvalidArgument(f"--{option} needs a value")
                    options[option] = _unquote_rest(rest)
                    break
                if not eq:
                    if i + 1 >= len(tokens):
                        raise InvalidArgument(f"--{option} needs a value")
                    i += 1
                    value = tokens[i][0]
                options[option] = value
            else:
                known = sorted(grammar.flags | grammar.valued)
                hint = f" (options: {', '.join('--' + k for k in known)})" if known else ""
                raise InvalidArgument(f"{name}: unknown option --{option}{hint}")
        else:
            args.append(word)
        i += 1
    return Command(name, tuple(args), options, text.strip())

"""What commands return, and how it looks: plain text, or ANSI colour on a terminal.

Commands return a list of blocks (``Line``, ``Table``, ``Json``); the REPL and
the script runner turn them into text with ``render``. Nothing here writes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aos.kernel.host import jsonvalue

STYLES = {
    "": "",
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
    "ok": "\x1b[32m",
    "warn": "\x1b[33m",
    "error": "\x1b[31m",
    "key": "\x1b[36m",
    "string": "\x1b[32m",
    "number": "\x1b[33m",
    "literal": "\x1b[35m",
}
RESET = "\x1b[0m"


@dataclass(frozen=True, slots=True)
class Line:
    """One line of text in one style (see ``STYLES``)."""

    text: str
    style: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    """Rows under headers; ``styles`` optionally names a style per cell of each row."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    styles: tuple[tuple[str, ...], ...] = ()
    empty: str = "(none)"


@dataclass(frozen=True, slots=True)
class Json:
    """A JSON value, indented; ``label`` (if any) goes before it, ``label: {``."""

    value: Any
    label: str = ""


@dataclass(frozen=True, slots=True)
class Inline:
    """Text that continues the current line and leaves it open (streamed model text).

    As the last block of an output, no newline follows it; the next output
    starts where it stopped (the emitter ends the line first)."""

    text: str
    style: str = ""


Block = Line | Table | Json | Inline
Output = list[Block]


def paint(text: str, style: str, color: bool) -> str:
    code = STYLES.get(style, "")
    return f"{code}{text}{RESET}" if color and code and text else text


_JSON_TOKEN = re.compile(r'("(?:[^"\\]|\\.)*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b')


def _paint_json(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        string, colon, number, literal = match.groups()
        if string is not None:
            return paint(string, "key" if colon else "string", True) + (colon or "")
        if number is not None:
            return paint(number, "number", True)
        return paint(literal, "literal", True)

    return _JSON_TOKEN.sub(one, text)


def json_text(value: Any, color: bool = False) -> str:
    text = json.dumps(jsonvalue.to_jsonable(value), indent=2, sort_keys=True, ensure_ascii=False)
    return _paint_json(text) if color else text


def _table(table: Table, color: bool) -> list[str]:
    if not table.rows:
        return [paint(table.empty, "dim", color)]
    widths = [max(len(h), *(len(row[i]) for row in table.rows)) for i, h in enumerate(table.headers)]
    lines = []
    if any(table.headers):
        lines.append(paint("  ".join(h.ljust(w) for h, w in zip(table.headers, widths)).rstrip(), "bold", color))
    for n, row in enumerate(table.rows):
        styles = table.styles[n] if n < len(table.styles) else ()
        cells = []
        for i, (cell, width) in enumerate(zip(row, widths)):
            pad = " " * (width - len(cell)) if i < len(row) - 1 else ""
            cells.append(paint(cell, styles[i] if i < len(styles) else "", color) + pad)
        lines.append("  ".join(cells).rstrip())
    return lines


def render(blocks: Output, color: bool = False) -> str:
    """The blocks as text, one ``\\n``-joined string (no trailing newline)."""
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Inline):
            text = paint(block.text, block.style, color)
            if lines:
                lines[-1] += text
            else:
                lines.append(text)
        elif isinstance(block, Line):
            lines.append(paint(block.text, block.style, color))
        elif isinstance(block, Table):
            lines.extend(_table(block, color))
        else:
            body = json_text(block.value, color)
            lines.append(f"{paint(block.label, 'bold', color)}: {body}" if block.label else body)
    return "\n".join(lines)


def record_style(record: dict[str, Any]) -> str:
    """The style of a journal record's line: traps, refused effects and failed receipts stand out."""
    kind = record.get("kind")
    if kind in ("trap", "effect_rejected") or (kind == "receipt" and record.get("status") != "ok"):
        return "error"
    return ""


def error_line(exc: BaseException, color: bool = False) -> str:
    """``error: <Code>: message`` on one line, whatever the exception: an ``AosError`` by its
    wire code, anything else as ``aos.cli_errors.describe`` says (the CLI's words)."""
    from aos.cli_errors import describe
    from aos.errors import AosError

    if isinstance(exc, AosError):
        code = getattr(exc, "code", None) or type(exc).__name__
        text = f"{code}: {' '.join(str(exc).split()) or type(exc).__name__}"
    else:
        text = describe(exc)
    return paint(f"error: {text}", "error", color)

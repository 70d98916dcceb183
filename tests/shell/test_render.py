"""Rendering blocks: aligned tables, indented JSON, colour only when asked, one-line errors."""

from __future__ import annotations

from aos.errors import UnknownWorld
from aos.shell.render import Json, Line, Table, error_line, render


def test_tables_align_columns_and_say_when_empty():
    """Columns line up under their headers; an empty table prints its `empty` text instead."""
    table = Table(("ID", "STATE"), (("c1", "awake"), ("a-long-id", "hibernated")))
    assert render([table]).splitlines() == ["ID         STATE", "c1         awake", "a-long-id  hibernated"]
    assert render([Table(("ID",), (), empty="(no worlds)")]) == "(no worlds)"


def test_colour_only_when_asked_and_plain_text_is_unchanged():
    """Without colour there is no escape code at all; with it, the same text is there between codes."""
    blocks = [Line("hello", "ok"), Json({"count": 3, "name": "x"}, "demo/counter@1"), Table(("A",), (("1",),))]
    plain = render(blocks)
    assert "\x1b" not in plain
    assert plain.splitlines()[:4] == ["hello", "demo/counter@1: {", '  "count": 3,', '  "name": "x"']
    coloured = render(blocks, color=True)
    assert "\x1b[32mhello\x1b[0m" in coloured and '\x1b[36m"count"\x1b[0m: \x1b[33m3\x1b[0m' in coloured


def test_errors_are_one_line_with_their_code():
    """An error renders as `error: <Code>: message` on one line, even when the message has newlines."""
    error = UnknownWorld("no world 'x'\n  in universe u")
    assert error_line(error) == "error: UnknownWorld: no world 'x' in universe u"
    assert error_line(ValueError("odd")) == "error: internal error: ValueError: odd"
    assert error_line(FileNotFoundError(2, "No such file or directory", "/x")) == "error: /x: No such file or directory"

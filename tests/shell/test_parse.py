"""The pure parser: lines -> commands, with JSON arguments taken as typed."""

from __future__ import annotations

import pytest

from aos.errors import InvalidArgument
from aos.shell.commands import grammars
from aos.shell.parse import Command, parse, split_commands

G = grammars()


def test_semicolons_split_commands_except_inside_quotes():
    """`;` and newlines separate commands, but not inside a quoted JSON string; blanks and comments go."""
    text = 'world c1; send demo/E@1 {"note": "a; b"}\n# a comment\n\n  state  ;'
    assert split_commands(text) == ["world c1", 'send demo/E@1 {"note": "a; b"}', "state"]


def test_send_takes_the_rest_of_the_line_as_json_unquoted_or_single_quoted():
    """The JSON of `send` is the rest of the line, spaces and double quotes intact; one pair of '...' is dropped."""
    assert parse('send demo/E@1 {"by": 2, "id": "a b"}', G).args == ("demo/E@1", '{"by": 2, "id": "a b"}')
    assert parse("send demo/E@1 '{\"by\": 2}'", G).args == ("demo/E@1", '{"by": 2}')


def test_options_flags_and_the_raw_key():
    """Valued options take the next word or `=value`, flags take nothing, `--key` takes the rest of the line."""
    assert parse("create examples/counter --id c1 --name 'my counter'", G) == Command(
        "create", ("examples/counter",), {"id": "c1", "name": "my counter"},
        "create examples/counter --id c1 --name 'my counter'")
    assert parse("fork --id=c2", G).options == {"id": "c2"}
    assert parse("journal --tail --from 3", G).options == {"tail": "", "from": "3"}
    assert parse('state demo/cells@1 --key {"a": [1, 2]}', G).options == {"key": '{"a": [1, 2]}'}


@pytest.mark.parametrize("line, message", [
    ("journal --follow", "unknown option --follow (options: --from, --limit, --tail)"),
    ("create dir --id", "--id needs a value"),
    ("state wf --key   ", "--key needs a value"),
    ("world 'c1", "unterminated ' quote"),
])
def test_malformed_lines_are_invalid_arguments_that_say_what_is_wrong(line, message):
    """Unknown options, missing values and open quotes are refused with a message naming the problem."""
    with pytest.raises(InvalidArgument) as info:
        parse(line, G)
    assert message in str(info.value)

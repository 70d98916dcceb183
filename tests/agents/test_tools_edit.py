"""edit_text: exact replacement first, then a whitespace/quote-tolerant match mapped back to the file's own text."""

from __future__ import annotations

import time

import pytest
from aos.agents.tools import EditAmbiguous, EditError, EditNoMatch, edit_text
from aos.agents.tools.edit import MAX_FUZZY_CHARS, tolerant_spans
from hypothesis import given, settings
from hypothesis import strategies as st


def test_exact_unique_replacement():
    """A unique exact match is replaced once and reported as 'exact'."""
    assert edit_text("a = 1\nb = 2\n", "b = 2", "b = 3") == ("a = 1\nb = 3\n", 1, "exact")


def test_exact_ambiguous_says_how_many():
    """Two exact matches without replace_all raise EditAmbiguous with the count and leave the choice to the caller."""
    with pytest.raises(EditAmbiguous) as e:
        edit_text("x\nx\nx\n", "x", "y")
    assert e.value.count == 3 and "found 3 matches" in str(e.value) and e.value.reason == "ambiguous"


def test_replace_all_counts_every_match():
    """replace_all replaces every exact occurrence and reports how many."""
    assert edit_text("x.x.x", "x", "yy", replace_all=True) == ("yy.yy.yy", 3, "exact")


def test_no_match_is_an_error():
    """Text found neither exactly nor loosely raises EditNoMatch (receipt code no_match)."""
    with pytest.raises(EditNoMatch) as e:
        edit_text("alpha\n", "beta", "gamma")
    assert e.value.reason == "no_match" and "exact and whitespace/quote-tolerant" in str(e.value)


def test_empty_or_unchanged_old_string_is_refused():
    """An empty old_string and old == new are input errors, not silent no-ops."""
    with pytest.raises(EditError, match="empty"):
        edit_text("a", "", "b")
    with pytest.raises(EditError, match="identical"):
        edit_text("a", "a", "a")


@pytest.mark.parametrize(
    ("text", "old", "new", "want"),
    [
        ("def f():\n\treturn 1\n", "def f():\n    return 1", "def f():\n    return 2", "def f():\n    return 2\n"),
        ("x = 1   \ny = 2\n", "x = 1\ny = 2", "z", "z\n"),  # trailing spaces in the file
        ("call(a,  b)\n", "call(a, b)", "call(c)", "call(c)\n"),  # a whitespace run of another length
        ("s = \u2018it\u2019s\u2019\n", "s = 'it's'", "s = 0", "s = 0\n"),  # curly single quotes
        ("say(\u201chi\u201d)\n", 'say("hi")', "say()", "say()\n"),  # curly double quotes
        ("a \u2014 b\n", "a - b", "c", "c\n"),  # em dash
        ("k:\xa0v\n", "k: v", "k=v", "k=v\n"),  # no-break space
    ],
)
def test_tolerant_match(text, old, new, want):
    """Whitespace runs, tabs, trailing spaces, curly quotes and dashes match loosely; the file's span is replaced."""
    assert edit_text(text, old, new) == (want, 1, "fuzzy")


def test_tolerant_match_keeps_line_structure():
    """A loose match does not join lines, and a trailing newline in old_string does not eat the next line's indent."""
    with pytest.raises(EditNoMatch):
        edit_text("a\nb\n", "a b", "c")
    text = "if x:\n    y()\n    z()\n"
    assert edit_text(text, "if x:  \n    y()\n", "if q:\n    y()\n").text == "if q:\n    y()\n    z()\n"


def test_tolerant_ambiguous_and_replace_all():
    """Two loose matches are ambiguous, and replace_all replaces both in the original text."""
    text = "f( a )\nf(  a  )\n"
    with pytest.raises(EditAmbiguous, match="tolerant match found 2 places") as e:
        edit_text(text, "f( a  )", "g")
    assert e.value.count == 2
    assert edit_text(text, "f( a  )", "g", replace_all=True) == ("g\ng\n", 2, "fuzzy")


def test_crlf_file_matches_lf_old_string():
    """In a file with CRLF line endings, an LF old_string matches exactly and the replacement keeps CRLF."""
    assert edit_text("a\r\nb\r\nc\r\n", "a\nb\n", "x\ny\n") == ("x\r\ny\r\nc\r\n", 1, "exact")


def test_huge_old_string_is_not_matched_loosely():
    """An old_string over the fuzzy limit that is not in the file fails without trying the tolerant regex."""
    with pytest.raises(EditNoMatch, match="too long"):
        edit_text("x", "y " * MAX_FUZZY_CHARS, "z")


_word = st.text("abc'\"-", min_size=1, max_size=4)
_sep = st.sampled_from([" ", "  ", "\t", "\n", " \n  "])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_word, _sep), min_size=1, max_size=6))
def test_tolerant_pattern_matches_its_own_source(pieces):
    """The tolerant match of any string finds that string itself, in full."""
    old = "".join(w + s for w, s in pieces).rstrip(" \t")
    assert tolerant_spans(old, old)[0] == (0, len(old))


@settings(max_examples=200, deadline=None)
@given(st.text("ab \n", max_size=30), st.text("ab", min_size=1, max_size=4), st.text("xy", max_size=4))
def test_exact_edit_changes_exactly_one_occurrence(prefix, old, new):
    """A unique exact edit yields prefix + new + suffix, with nothing else changed."""
    text = prefix + "<" + old + ">"
    result = edit_text(text, "<" + old + ">", new)
    assert result == (prefix + new, 1, "exact")


def test_tolerant_match_is_linear_on_long_whitespace():
    """An old_string starting with whitespace does not rescan a 200k-space run from every position (was quadratic)."""
    text = " " * 200_000 + "x\n"
    start = time.perf_counter()
    with pytest.raises(EditNoMatch):
        edit_text(text, " \n  y", "z")
    assert time.perf_counter() - start < 2.0

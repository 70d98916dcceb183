"""The v4a apply_patch core: parsing, planning against an in-memory view, conflicts, and round trips."""

from __future__ import annotations

import pytest
from aos.agents.tools import (
    AddFile,
    DeleteFile,
    Hunk,
    Patch,
    PatchConflict,
    PatchError,
    PatchInvalid,
    UpdateFile,
    apply_patch,
    diff_patch,
    format_patch,
    parse_patch,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from aos.errors import AosError


def P(*body: str) -> str:
    return "\n".join(["*** Begin Patch", *body, "*** End Patch"]) + "\n"


def run(patch_text: str, files: dict[str, str]) -> dict[str, str]:
    """Apply to a dict of files and return the resulting dict (deleted files gone)."""
    result = apply_patch(parse_patch(patch_text), files.get)
    out = dict(files)
    for path, text in result.changes.items():
        if text is None:
            out.pop(path, None)
        else:
            out[path] = text
    return out


# --- parsing -----------------------------------------------------------------------------------
def test_parse_reference_example():
    """The reference example parses into add, update (move, two hunks, EOF anchor) and delete."""
    text = P(
        "*** Add File: src/util/greet.py",
        "+def greet(name):",
        '+    return f"Hello, {name}!"',
        "*** Update File: src/app.py",
        "*** Move to: src/main.py",
        "@@ def main():",
        "     args = parse()",
        '-    print("Hi")',
        "+    print(greet(args.name))",
        "     return 0",
        "@@",
        ' if __name__ == "__main__":',
        "-    main()",
        "+    raise SystemExit(main())",
        "*** End of File",
        "*** Delete File: obsolete.txt",
    )
    patch = parse_patch(text)
    add, upd, dele = patch.operations
    assert add == AddFile("src/util/greet.py", 'def greet(name):\n    return f"Hello, {name}!"\n')
    assert isinstance(upd, UpdateFile) and upd.path == "src/app.py" and upd.move_to == "src/main.py"
    assert [h.contexts for h in upd.hunks] == [("def main():",), ()]
    assert upd.hunks[0].old_lines == ["    args = parse()", '    print("Hi")', "    return 0"]
    assert upd.hunks[0].new_lines == ["    args = parse()", "    print(greet(args.name))", "    return 0"]
    assert upd.hunks[1].end_of_file and not upd.hunks[0].end_of_file
    assert dele == DeleteFile("obsolete.txt")
    assert patch.paths() == ["src/util/greet.py", "src/app.py", "src/main.py", "obsolete.txt"]


def test_parse_is_lenient_like_codex():
    """Surrounding whitespace, padded markers, a heredoc wrapper and a first hunk without '@@' are accepted."""
    text = "\n  <<'EOF'\n  *** Begin Patch  \n*** Update File:   a.txt  \n x\n-y\n+z\n   *** End Patch\nEOF\n\n"
    (upd,) = parse_patch(text).operations
    assert upd == UpdateFile("a.txt", (Hunk((), ((" ", "x"), ("-", "y"), ("+", "z"))),))


def test_parse_empty_patch_has_no_operations():
    """A patch with only the begin and end markers is valid and does nothing."""
    assert parse_patch(P()) == Patch(())
    assert apply_patch(Patch(()), {}.get).changes == {}


def test_parse_empty_line_in_hunk_is_empty_context_and_stacked_headers():
    """An empty line inside a hunk is an empty context line, and stacked '@@ ctx' headers are all kept."""
    (upd,) = parse_patch(P("*** Update File: a", "@@ class A:", "@@     def f(self):", " x", "", "-y")).operations
    assert upd.hunks[0].contexts == ("class A:", "    def f(self):")
    assert upd.hunks[0].lines == ((" ", "x"), (" ", ""), ("-", "y"))


@pytest.mark.parametrize(
    ("text", "fragment", "line"),
    [
        ("*** Update File: a\n-x\n*** End Patch", "first line", 1),
        ("*** Begin Patch\n*** Delete File: a\n", "last line", 2),
        (P("*** Frobnicate File: a"), "not a valid file header", 2),
        (P("*** Update File: a"), "has no hunks", 3),
        (P("*** Update File: a", "@@", "?bad"), "unexpected line", 4),
        (P("*** Update File: a", "@@", "-x", "@@"), "hunk 2", 5),
        (P("*** Update File: a", "@@", "*** End of File"), "hunk 1", 3),
        (P("*** Add File:   "), "needs a path", 2),
    ],
)
def test_parse_errors_name_the_line(text, fragment, line):
    """Each malformed patch raises PatchInvalid whose message and line say what and where."""
    with pytest.raises(PatchInvalid) as e:
        parse_patch(text)
    assert fragment in str(e.value)
    assert e.value.line == line
    assert isinstance(e.value, PatchError) and isinstance(e.value, AosError)
    assert e.value.code == "PatchInvalid" and e.value.reason == "patch_invalid"


def test_second_hunk_without_header_is_invalid():
    """Only the first hunk of an update may omit '@@'; after '*** End of File' a bare line is refused."""
    with pytest.raises(PatchInvalid, match="hunk 2 of 'a' must start with '@@'"):
        parse_patch(P("*** Update File: a", " x", "*** End of File", " y"))


# --- applying ----------------------------------------------------------------------------------
def test_add_update_delete_move_on_a_view():
    """Add, update, delete and move produce the expected final texts and lists."""
    files = {"a.txt": "one\ntwo\nthree\n", "old.txt": "bye\n", "m.txt": "keep\n"}
    text = P(
        "*** Add File: new/b.txt",
        "+hello",
        "*** Update File: a.txt",
        "@@",
        " one",
        "-two",
        "+TWO",
        "*** Delete File: old.txt",
        "*** Update File: m.txt",
        "*** Move to: moved/m.txt",
    )
    result = apply_patch(parse_patch(text), files.get)
    assert result.changes == {
        "new/b.txt": "hello\n",
        "a.txt": "one\nTWO\nthree\n",
        "old.txt": None,
        "m.txt": None,
        "moved/m.txt": "keep\n",
    }
    assert result.added == ("new/b.txt",) and result.updated == ("a.txt",)
    assert result.deleted == ("old.txt",) and result.moved == (("m.txt", "moved/m.txt"),)


def test_multi_hunk_update_applies_in_order():
    """Several hunks in one file each land in their own place, top to bottom."""
    src = "".join(f"line{i}\n" for i in range(1, 21))
    text = P(
        "*** Update File: f",
        "@@",
        " line2",
        "-line3",
        "+LINE3",
        " line4",
        "@@",
        " line15",
        "-line16",
        " line17",
        "@@",
        " line19",
        " line20",
        "+line21",
        "*** End of File",
    )
    out = run(text, {"f": src})["f"]
    want = src.replace("line3\n", "LINE3\n").replace("line16\n", "") + "line21\n"
    assert out == want


def test_context_header_locates_the_hunk():
    """An '@@ def g' header makes the same lines match after g, not in f."""
    src = "def f():\n    x = 1\n    return x\n\ndef g():\n    x = 1\n    return x\n"
    out = run(P("*** Update File: m.py", "@@ def g():", "-    x = 1", "+    x = 2"), {"m.py": src})["m.py"]
    assert out == src.replace("def g():\n    x = 1", "def g():\n    x = 2")


def test_stacked_context_headers_narrow_down():
    """Stacked '@@ class B:' / '@@ def f' headers are sought in turn, so f inside B changes, not f inside A."""
    src = "class A:\n    def f(self):\n        return 1\n\nclass B:\n    def f(self):\n        return 1\n"
    text = P("*** Update File: m.py", "@@ class B:", "@@     def f(self):", "-        return 1", "+        return 2")
    assert run(text, {"m.py": src})["m.py"] == src[: src.rindex("1")] + "2\n"


def test_hunk_repeating_its_header_line_as_context():
    """A hunk whose first context line repeats its '@@' header line still applies there."""
    src = "x\ndef main():\n    return 1\n"
    text = P("*** Update File: m.py", "@@ def main():", " def main():", "-    return 1", "+    return 2")
    assert run(text, {"m.py": src})["m.py"] == "x\ndef main():\n    return 2\n"


def test_ambiguous_hunk_without_header_is_a_conflict():
    """A headerless hunk whose lines occur twice is refused, naming the file, hunk and count."""
    src = "a\nx = 1\nb\nx = 1\n"
    with pytest.raises(PatchConflict) as e:
        run(P("*** Update File: f", "@@", "-x = 1", "+x = 2"), {"f": src})
    assert e.value.path == "f" and e.value.hunk == 1
    assert "occur 2 times" in str(e.value) and e.value.reason == "patch_conflict"


def test_context_not_found_names_file_and_hunk():
    """A hunk whose lines are not in the file is a conflict that names the file and the hunk number."""
    with pytest.raises(PatchConflict) as e:
        run(P("*** Update File: f", "@@", " a", "-b", "@@", " zzz", "-c"), {"f": "a\nb\nc\n"})
    assert (e.value.path, e.value.hunk) == ("f", 2)
    assert "f: hunk 2: expected lines not found" in str(e.value)


def test_missing_context_header_is_a_conflict():
    """An '@@ <line>' header that is not in the file is reported as such."""
    with pytest.raises(PatchConflict, match="context line 'def nope' not found"):
        run(P("*** Update File: f", "@@ def nope", "-a"), {"f": "a\n"})


@pytest.mark.parametrize(
    ("text", "files", "fragment"),
    [
        (P("*** Add File: f", "+x"), {"f": "old\n"}, "cannot add 'f': it already exists"),
        (P("*** Update File: f", "@@", "-x"), {}, "cannot update 'f': no such file"),
        (P("*** Delete File: f"), {}, "cannot delete 'f': no such file"),
        (P("*** Update File: a", "*** Move to: b"), {"a": "1\n", "b": "2\n"}, "the destination exists"),
        (P("*** Delete File: f", "*** Update File: f", "@@", "-x"), {"f": "x\n"}, "cannot update 'f'"),
    ],
)
def test_file_level_conflicts(text, files, fragment):
    """Add of an existing file, update/delete of a missing one and a move onto a file are conflicts."""
    with pytest.raises(PatchConflict, match=fragment):
        run(text, files)


def test_later_operations_see_earlier_ones():
    """Operations plan against the view left by earlier ones: add then update, delete then re-add."""
    text = P(
        "*** Add File: n", "+a", "*** Update File: n", "@@", "-a", "+b", "*** Delete File: o", "*** Add File: o", "+new"
    )
    assert run(text, {"o": "old\n"}) == {"n": "b\n", "o": "new\n"}


def test_paths_are_normalised_to_one_key():
    """'./a' and 'a//' name the same file in the plan."""
    text = P("*** Update File: ./a", "@@", "-1", "+2", "*** Update File: a", "@@", "-2", "+3")
    assert run(text, {"a": "1\n"}) == {"a": "3\n"}


@pytest.mark.parametrize(
    ("src", "hunk", "want"),
    [
        ("    x = 1   \n", [" x = 1", "+y"], "    x = 1   \ny\n"),  # whitespace-insensitive, keeps file's context
        ("x = 1   \n", ["-x = 1", "+x = 2"], "x = 2\n"),  # trailing whitespace
        ("a  =  b\n", ["-a = b", "+c"], "c\n"),  # inner whitespace runs
        ("s = \u201cq\u201d \u2014 x\n", ['-s = "q" - x', "+s = 1"], "s = 1\n"),  # unicode quotes and dash
    ],
)
def test_context_fuzz_passes(src, hunk, want):
    """Lines that differ in whitespace or Unicode punctuation still match, and context keeps the file's text."""
    assert run(P("*** Update File: f", "@@", *hunk), {"f": src})["f"] == want


def test_exact_match_preferred_over_fuzzy():
    """When one place matches exactly and another only loosely, the exact one is changed and no ambiguity is raised."""
    src = "x = 1  \nx = 1\n"
    assert run(P("*** Update File: f", "@@", "-x = 1", "+x = 2"), {"f": src})["f"] == "x = 1  \nx = 2\n"


def test_pure_addition_goes_to_end_or_after_context():
    """A hunk with only '+' lines appends at the end, or inserts right after its '@@' context line."""
    assert run(P("*** Update File: f", "@@", "+z"), {"f": "a\nb\n"})["f"] == "a\nb\nz\n"
    assert run(P("*** Update File: f", "@@ a", "+z"), {"f": "a\nb\n"})["f"] == "a\nz\nb\n"


def test_trailing_blank_separator_lines_are_forgiven():
    """A blank line at the end of a hunk (a separator before the next file) does not make the hunk miss."""
    text = P("*** Update File: f", "@@", " a", "-b", "+B", "", "*** Delete File: g")
    assert run(text, {"f": "a\nb\n", "g": "g\n"}) == {"f": "a\nB\n"}


def test_eof_anchor_prefers_the_end():
    """An '*** End of File' hunk matches the file's last lines even when the same lines occur earlier."""
    src = "end\nmid\nend\n"
    assert run(P("*** Update File: f", "@@", "-end", "+END", "*** End of File"), {"f": src})["f"] == "end\nmid\nEND\n"


def test_update_adds_trailing_newline_and_keeps_crlf():
    """Updated files end with a newline, and a CRLF file stays CRLF."""
    assert run(P("*** Update File: f", "@@", "-a", "+b"), {"f": "a"})["f"] == "b\n"
    assert run(P("*** Update File: f", "@@", " a", "-b", "+c"), {"f": "a\r\nb\r\n"})["f"] == "a\r\nc\r\n"


# --- properties --------------------------------------------------------------------------------
_line = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 10_000), unique=True, max_size=30),
    st.lists(st.integers(0, 10_000), unique=True, max_size=30),
)
def test_diff_then_apply_gives_the_new_text(a, b):
    """Applying the v4a patch made from a diff of two texts (distinct lines) turns the first into the second."""
    old = "".join(f"line {x}\n" for x in a)
    new = "".join(f"line {x}\n" for x in b)
    if old == new:
        return
    assert run(diff_patch("f", old, new), {"f": old})["f"] == new


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "", "  c", "d  "]), max_size=25),
    st.lists(st.sampled_from(["a", "b", "x", ""]), max_size=25),
)
def test_diff_with_repeated_lines_applies_or_is_refused_as_ambiguous(a, b):
    """With repeated lines a diff patch either gives the new text or is refused; it never yields a third text silently."""
    old, new = "".join(x + "\n" for x in a), "".join(x + "\n" for x in b)
    if old == new:
        return
    try:
        got = run(diff_patch("f", old, new, context=1), {"f": old})["f"]
    except PatchConflict:
        return
    # a tolerant pass may have matched, but the non-context lines must come out as written
    assert [x.strip() for x in got.split("\n")] == [x.strip() for x in new.split("\n")]


_path = st.from_regex(r"[a-z]{1,6}(/[a-z0-9_.]{1,6}){0,2}", fullmatch=True).filter(
    lambda p: ".." not in p and not p.endswith(".")
)
_ctx = _line.map(str.strip).filter(bool)
_hunk = st.builds(
    Hunk,
    st.lists(_ctx, max_size=2).map(tuple),
    st.lists(st.tuples(st.sampled_from(" -+"), _line), min_size=1, max_size=6).map(tuple),
    st.booleans(),
)
_op = st.one_of(
    st.builds(AddFile, _path, st.lists(_line, max_size=4).map(lambda ls: "".join(x + "\n" for x in ls))),
    st.builds(DeleteFile, _path),
    st.builds(UpdateFile, _path, st.lists(_hunk, min_size=1, max_size=3).map(tuple), st.one_of(st.none(), _path)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_op, max_size=5).map(lambda ops: Patch(tuple(ops))))
def test_format_then_parse_round_trips(patch):
    """Rendering any patch to v4a text and parsing it back gives the same operations."""
    assert parse_patch(format_patch(patch)) == patch

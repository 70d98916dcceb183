"""grep and glob cores over an injected file walk: regex lines, global caps, glob semantics."""

from __future__ import annotations

import pytest
from aos.agents.tools import GrepMatch, ToolError, glob, glob_matcher, grep

FILES = {
    "README.md": "Hello\nhello world\n",
    "src/app.py": "import os\ndef main():\n    print('Hello')\n",
    "src/lib/util.py": "def helper():\n    return 'hello'\n",
    "src/lib/data.bin": None,  # read() says binary: skipped
    ".hidden/x.py": "hello\n",
    "web/a.ts": "hello\n",
    "web/b.tsx": "x\n",
}


def read(path):
    return FILES[path]


def test_grep_lines_sorted_with_numbers():
    """Matches come as path, 1-based line and text, sorted by path then line."""
    r = grep("ello", FILES, read)
    assert r.matches[:3] == [
        GrepMatch(".hidden/x.py", 1, "hello"),
        GrepMatch("README.md", 1, "Hello"),
        GrepMatch("README.md", 2, "hello world"),
    ]
    assert not r.truncated and all(m.path != "src/lib/data.bin" for m in r.matches)


def test_grep_case_insensitive_and_regex():
    """Case-insensitive search finds both cases; a regex anchors as in Python's re."""
    assert len(grep("^hello", FILES, read).matches) == 3
    assert len(grep("^hello", FILES, read, case_insensitive=True).matches) == 4


def test_grep_max_results_is_a_global_cap():
    """max_results caps the total across files (not per file) and sets truncated."""
    r = grep("hello", FILES, read, case_insensitive=True, max_results=2)
    assert len(r.matches) == 2 and r.truncated
    r = grep("hello", FILES, read, case_insensitive=True, max_results=100)
    assert len(r.matches) == 6 and not r.truncated


def test_grep_glob_filter_matches_basename_without_slash():
    """A glob filter without '/' matches the file name at any depth; with '/' it matches the whole path."""
    assert {m.path for m in grep("hello", FILES, read, glob="*.py", case_insensitive=True).matches} == {
        ".hidden/x.py",
        "src/app.py",
        "src/lib/util.py",
    }
    assert {m.path for m in grep("e", FILES, read, glob="src/*.py").matches} == {"src/app.py"}


def test_grep_bad_regex_is_invalid_params():
    """An invalid regular expression raises ToolError with reason invalid_params."""
    with pytest.raises(ToolError, match="invalid regular expression") as e:
        grep("(", FILES, read)
    assert e.value.reason == "invalid_params"


def test_grep_cuts_long_lines_and_strips_cr():
    """A very long matching line is cut, and a CRLF line's CR is not part of the text."""
    files = {"min.js": "x" * 5000 + "needle\n", "w.txt": "needle\r\n"}
    r = grep("needle", files, files.get)
    assert r.matches[0].text.endswith(" [...]") and len(r.matches[0].text) < 2100
    assert r.matches[1].text == "needle"


@pytest.mark.parametrize(
    ("pattern", "want"),
    [
        ("*.md", ["README.md"]),
        ("**/*.py", [".hidden/x.py", "src/app.py", "src/lib/util.py"]),
        ("src/**", ["src/app.py", "src/lib/data.bin", "src/lib/util.py"]),
        ("src/*/*.py", ["src/lib/util.py"]),
        ("web/*.{ts,tsx}", ["web/a.ts", "web/b.tsx"]),
        ("web/?.ts", ["web/a.ts"]),
        ("web/[!a].*", ["web/b.tsx"]),
        ("./src/app.py", ["src/app.py"]),
    ],
)
def test_glob_patterns(pattern, want):
    """Glob supports *, **, ?, [!..] and {a,b}; '*' stays in one segment and '**' spans any number of them."""
    assert glob(pattern, FILES).paths == want


def test_glob_sorted_and_truncated():
    """Glob results are sorted by path, and max_results cuts them with truncated set."""
    r = glob("**", FILES, max_results=3)
    assert r.paths == sorted(FILES)[:3] and r.truncated


def test_glob_matcher_double_star_matches_zero_segments():
    """'a/**/b' matches 'a/b' as well as deeper paths, but not a sibling prefix."""
    m = glob_matcher("a/**/b")
    assert m("a/b") and m("a/x/y/b") and not m("ab/b") and not m("a/xb")


def test_bad_glob_is_invalid_params():
    """An empty glob or an unbuildable class raises ToolError."""
    with pytest.raises(ToolError):
        glob_matcher("  ")
    with pytest.raises(ToolError):
        glob_matcher("[z-a]")

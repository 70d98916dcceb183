"""Class 6: no pattern, patch or tree a world or a model sends can hold the kernel's event loop.

grep and glob patterns run in RE2 (linear time, the GIL released while it
matches), edit's tolerant match is linear, and every file tool runs in a
worker thread under a deadline with size limits, ending in a typed receipt
(``timeout``, ``too_large``, ``invalid_params``, ``truncated``). The tests
drive the real adapter (``HostFsToolsAdapter.run``) on real trees, check the
new engines against the old ones as oracles, show the event loop keeps
running while a tool grinds, and send a catastrophic grep through a real
kernel while it answers other calls.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aos.adapters.base import EffectCall, Receipt
from aos.adapters.host_fs_tools import MAX_GREP_FILE_BYTES, HostFsToolsAdapter
from aos.adapters.host_fs_walk import MAX_WALK_DEPTH
from aos.agents.tools import grep
from aos.agents.tools.edit import tolerant_spans
from aos.kernel.client import Connection, run
from aos.testing import KernelProcess

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack import SCRIPT, WORKFLOW, declared, hostile_manifest  # noqa: E402

TOOLS = HostFsToolsAdapter()
CATASTROPHIC = [r"(a+)+$", r"(a|aa)+$", r"(a|a?)+$", r"(\w+\s?)+$", r"^(a+)+b", r"(x+x+)+y", r"((a+)*)*$",
                r"(a*)*b", r"(.*a){12}!b", r"(a+){10}!b"]


def call(kind: str, params: dict[str, Any], root: Path, tools: HostFsToolsAdapter = TOOLS) -> Receipt:
    async def sink(frame: Any) -> None:
        raise AssertionError("the file tools send no frames")

    return asyncio.run(tools.run(EffectCall(kind, params, {"root": str(root)}, "k"), sink))


def P(*body: str) -> str:
    return "\n".join(["*** Begin Patch", *body, "*** End Patch"]) + "\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


# --- catastrophic regexes -----------------------------------------------------------------------
@pytest.mark.parametrize("n", [25, 40, 5_000, 200_000])
@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_grep_patterns_return_a_receipt(root, pattern, n):
    """Patterns that backtrack exponentially in Python's re finish on lines of n 'a's and a '!' (re needs ~2**n steps)."""
    (root / "evil.txt").write_text(("a" * n + "!\n") * 3 + "aab\n")
    r = call("host.fs.grep", {"pattern": pattern}, root)
    assert r.status == "ok", r
    want = [i + 1 for i, line in enumerate((("a" * 8 + "!\n") * 3 + "aab\n").split("\n")) if re.search(pattern, line)]
    assert [m["line"] for m in r.payload["matches"]] == want  # same lines as re finds on short ones


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)a", r"(?!b)a", r"(?<=a)b", r"(?<!a)b", r"(?>a+)b", r"a++b",
                                     r"a*+", r"a\Z"])
def test_pattern_syntax_re2_refuses_is_a_clear_error(root, pattern):
    """Backreferences, lookaround, atomic groups, possessive quantifiers and \\Z are invalid_params that say why."""
    (root / "f.txt").write_text("ab\n")
    r = call("host.fs.grep", {"pattern": pattern}, root)
    assert (r.status, r.error) == ("error", "invalid_params")
    assert "not supported" in r.message or "\\z" in r.message


def test_overlong_pattern_is_refused(root):
    """A pattern past the length limit is invalid_params before any file is read."""
    r = call("host.fs.grep", {"pattern": "a" * 10_000}, root)
    assert (r.status, r.error) == ("error", "invalid_params") and "limit" in r.message


@pytest.mark.parametrize("pattern", ["*a*a*a*a*a*a*a*a*a*a*a*a*b", "**/**/**/**/**/**/**/**/x", "*" * 500 + "b",
                                     "{a,b}" * 8, "[a-z]*" * 40 + "!"])
def test_catastrophic_globs_return_a_receipt(root, pattern):
    """Globs that backtrack polynomially or exponentially in re finish over long names and deep paths."""
    deep = root.joinpath(*(["a" * 10] * 30))
    deep.mkdir(parents=True)
    (deep / ("a" * 200)).write_text("x\n")
    r = call("host.fs.glob", {"pattern": pattern}, root)
    assert r.status == "ok" and r.payload["paths"] == []
    r = call("host.fs.grep", {"pattern": "x", "glob": pattern}, root)
    assert r.status == "ok" and r.payload["matches"] == []


@pytest.mark.parametrize("pattern", ["{a}" * 2000, "a" * 5000, "{" * 40 + "}" * 40])
def test_oversized_globs_are_invalid_params(root, pattern):
    """A glob too long, or with too many brace groups (each a level of recursion), is invalid_params, not a crash."""
    (root / "f").write_text("x\n")
    for kind, params in [("host.fs.glob", {"pattern": pattern}), ("host.fs.grep", {"pattern": "x", "glob": pattern})]:
        r = call(kind, params, root)
        assert (r.status, r.error) == ("error", "invalid_params"), kind


# --- edit's tolerant match ----------------------------------------------------------------------
@pytest.mark.parametrize(("text", "old"), [
    ("a " * 500_000, "a " * 9_999 + "b"),
    (" a" * 500_000, " a" * 5_000 + " b"),
    ("a\n" * 500_000, "a\n" * 5_000 + "b"),
    (" " * 2_000_000 + "x", " \n  y"),
    ("\u2019 " * 500_000, "' " * 9_000 + "!"),
])
def test_tolerant_edit_is_linear_on_adversarial_files(root, text, old):
    """A long near-miss old_string over a big near-matching file is no_match (the regex it replaced cost len(file) x len(old))."""
    (root / "f.txt").write_text(text)
    r = call("host.fs.edit", {"path": "f.txt", "old_string": old, "new_string": "z"}, root)
    assert (r.status, r.error) == ("error", "no_match")


_SINGLE = "'\u2018\u2019\u201a\u201b\u02bc\u2032"
_DOUBLE = '"\u201c\u201d\u201e\u201f\u2033'
_DASH = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_CLASSES = {c: "[" + re.escape(g) + "]" for g in (_SINGLE, _DOUBLE, _DASH) for c in g}
_H = r"[^\S\n]"


def regex_oracle(old: str) -> re.Pattern[str]:
    """The tolerant pattern edit used before (Python re): the definition the linear matcher must agree with."""
    parts, pos = [], 0
    for m in re.finditer(r"\s+", old):
        parts.extend(_CLASSES.get(c) or re.escape(c) for c in old[pos : m.start()])
        breaks, at_start, at_end = m.group().count("\n"), m.start() == 0, m.end() == len(old)
        if at_start:
            parts.append(f"(?<!{_H})")
        if breaks == 0:
            parts.append(_H + ("*+" if at_start or at_end else "++"))
        elif at_end:
            parts.append(f"(?:{_H}*+\\n){{{breaks}}}")
        else:
            parts.append(f"{_H}*+(?:\\n{_H}*+){{{breaks}}}")
        pos = m.end()
    parts.extend(_CLASSES.get(c) or re.escape(c) for c in old[pos:])
    return re.compile("".join(parts))


_ALPHABET = "ab \n\t\r'\u2019-\u2014\xa0\u3000"


@settings(max_examples=2000, deadline=None)
@given(st.text(_ALPHABET, max_size=24), st.text(_ALPHABET, min_size=1, max_size=8).filter(lambda s: s.strip()))
def test_linear_tolerant_match_agrees_with_the_regex_it_replaced(text, old):
    """For any file text and old_string, the linear matcher finds exactly the spans the old regex found."""
    assert tolerant_spans(text, old) == [m.span() for m in regex_oracle(old).finditer(text)]


@settings(max_examples=1000, deadline=None)
@given(st.text("ab \n\r", max_size=30), st.sampled_from(["a", "^a", "a$", "ab*", "^$", "x*", r"\bab\b", "a.b",
                                                          "[^a]+$", "^.*$", r"b\s", "(?i)A", "a|^b", "(a+)+$"]))
def test_re2_grep_finds_the_lines_python_re_finds(text, pattern):
    """On patterns both engines accept, grep's one-pass RE2 search reports the same lines as re line by line."""
    want = [(n, line.removesuffix("\r")) for n, line in enumerate(text.split("\n"), 1)
            if re.search(pattern, line.removesuffix("\r"))]
    got = [(m.line, m.text) for m in grep(pattern, ["f"], lambda _: text, max_results=1000).matches]
    assert got == want


# --- deadlines, sizes, deep trees ---------------------------------------------------------------
def test_every_file_tool_stops_at_its_deadline_and_changes_nothing(root):
    """With a spent time budget grep, glob, a tolerant edit and a patch end in a 'timeout' receipt; no file changes."""
    (root / "sub").mkdir()
    (root / "sub" / "a.txt").write_text("x  =  1\n" * 100)
    tools = HostFsToolsAdapter(time_limit_s=1e-9)
    for kind, params in [
        ("host.fs.grep", {"pattern": "x"}),
        ("host.fs.glob", {"pattern": "**"}),
        ("host.fs.edit", {"path": "sub/a.txt", "old_string": "x = 1\nx = 1\nx = 1\nx = 1\nx = 1\nx = 1\nx = 1\n"
                          * 15, "new_string": "y", "replace_all": True}),
        ("host.fs.apply_patch", {"patch": P("*** Update File: sub/a.txt", "@@", " x  =  1", "-x  =  1", "+y")}),
    ]:
        r = call(kind, params, root, tools)
        assert (r.status, r.error) == ("timeout", "timeout"), kind
        assert "time limit" in r.message
    assert (root / "sub" / "a.txt").read_text() == "x  =  1\n" * 100
    assert sorted(p.name for p in (root / "sub").iterdir()) == ["a.txt"]


def test_the_event_loop_runs_while_a_patch_grinds_to_its_deadline(root):
    """A patch whose placement would take hours runs in a worker until its deadline while the loop keeps ticking."""
    (root / "big.txt").write_text("a\n" * 400_000)
    hunk = ["@@"] + [" a"] * 3_000 + ["-b", "+c"]
    tools = HostFsToolsAdapter(time_limit_s=1.5)

    async def main() -> tuple[Receipt, int]:
        ticks = 0
        task = asyncio.ensure_future(tools.run(EffectCall(
            "host.fs.apply_patch", {"patch": P("*** Update File: big.txt", *hunk)}, {"root": str(root)}, "k"),
            lambda frame: asyncio.sleep(0)))
        while not task.done():
            await asyncio.sleep(0.01)
            ticks += 1
        return task.result(), ticks

    receipt, ticks = asyncio.run(main())
    assert (receipt.status, receipt.error) == ("timeout", "timeout")
    assert ticks >= 5  # the loop was never held for the whole run
    assert (root / "big.txt").read_text() == "a\n" * 400_000


def test_deep_trees_are_cut_not_recursed(root):
    """A tree deeper than the walk's limit is searched down to the limit and reported truncated; 1,500 levels are no crash."""
    d = root
    for i in range(MAX_WALK_DEPTH + 20):
        d = d / "d"
        (d).mkdir()
        (d / "f.txt").write_text(f"needle {i}\n")
    r = call("host.fs.grep", {"pattern": "needle", "max_results": 10_000}, root)
    assert r.status == "ok" and r.payload["truncated"] is True
    assert len(r.payload["matches"]) == MAX_WALK_DEPTH
    r = call("host.fs.glob", {"pattern": "**/f.txt", "max_results": 10_000}, root)
    assert r.status == "ok" and r.payload["truncated"] is True and len(r.payload["paths"]) == MAX_WALK_DEPTH
    (root / "deep").mkdir()
    chain(root / "deep", 1500, make=True)  # os.fwalk raised RecursionError from here
    try:
        for kind, params in [("host.fs.grep", {"pattern": "needle", "path": "deep"}),
                             ("host.fs.glob", {"pattern": "**", "path": "deep"})]:
            r = call(kind, params, root)
            assert r.status == "ok" and r.payload["truncated"] is True
    finally:
        chain(root / "deep", 1500, make=False)  # shutil.rmtree would recurse too


def chain(top: Path, depth: int, make: bool) -> None:
    """Make (or remove) top/x/x/.../x, ``depth`` levels, through directory fds (no recursion, no long paths)."""
    fds = [os.open(top, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        for _ in range(depth):
            if make:
                os.mkdir("x", dir_fd=fds[-1])
            try:
                fd = os.open("x", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1])
            except FileNotFoundError:
                break
            if make:
                os.close(fds.pop())
            fds.append(fd)
        if not make:
            while len(fds) > 1:
                os.close(fds.pop())
                os.rmdir("x", dir_fd=fds[-1])
    finally:
        for fd in fds:
            os.close(fd)


def test_huge_files_hit_the_size_limits(root):
    """grep skips a file over its per-file limit; edit and apply_patch refuse a file over the grant's max_read_bytes."""
    (root / "huge.txt").write_bytes(b"needle\n" + b"x" * MAX_GREP_FILE_BYTES)
    (root / "small.txt").write_text("needle\n")
    r = call("host.fs.grep", {"pattern": "needle"}, root)
    assert [m["path"] for m in r.payload["matches"]] == ["small.txt"]

    async def with_grant(kind: str, params: dict[str, Any]) -> Receipt:
        grant = {"root": str(root), "max_read_bytes": 1024}
        return await TOOLS.run(EffectCall(kind, params, grant, "k"), lambda f: asyncio.sleep(0))

    (root / "mid.txt").write_text("needle\n" * 1000)
    for kind, params in [("host.fs.edit", {"path": "mid.txt", "old_string": "needle", "new_string": "n",
                                           "replace_all": True}),
                         ("host.fs.apply_patch", {"patch": P("*** Update File: mid.txt", "@@", "-needle", "+n")})]:
        r = asyncio.run(with_grant(kind, params))
        assert (r.status, r.error) == ("error", "too_large"), kind
    assert (root / "mid.txt").read_text() == "needle\n" * 1000


# --- end to end ---------------------------------------------------------------------------------
def test_catastrophic_grep_through_a_real_kernel_keeps_it_answering(data_dir, tmp_path):
    """A world greps (a+)+$ over long lines of 'a's; the kernel answers status calls meanwhile and the grep comes back ok."""
    granted = tmp_path / "granted"
    granted.mkdir()
    for i in range(8):
        (granted / f"f{i}.txt").write_text(("a" * (25 + 10_000 * i) + "!\n") * 50)
    doc = hostile_manifest({"sys/host.fs.grep@1": declared("host.fs")},
                           {"files": {"cap": "host.fs", "params": {"root": str(granted), "read_only": True}}})
    kernel = KernelProcess(data_dir, extra_args=["--grant-host", str(granted)]).start()
    try:
        async def main():
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                world, _ = await (await admin.worlds("u")).create(doc, world_id="grepper")
                await world.send(SCRIPT, {"effects": [{"effect": "sys/host.fs.grep@1",
                                                       "params": {"path": ".", "pattern": "(a+)+$"}}]})
                answered = 0
                while True:
                    status = await asyncio.wait_for(admin.status(), 10)  # the loop serves this while the grep runs
                    answered += status["connections"] >= 1
                    state = await world.state(WORKFLOW)
                    if state["receipts"]:
                        return state["receipts"][0], answered
                    await asyncio.sleep(0.01)

        (effect, status, payload), answered = run(main())
    finally:
        kernel.kill()
    assert status == "ok" and payload["matches"] == [] and payload["truncated"] is False
    assert answered >= 1

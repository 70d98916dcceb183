"""The pure pieces under the session: truncation, argument mapping and validation, receipt formatting, loops."""

import pytest
from aos.agents.calls import ToolError, detect_loop, format_output, parse_arguments, render, validate
from aos.agents.profiles import tools as t
from aos.agents.truncation import limits_for, truncate_output

ROOT = "/repo"


def test_character_truncation_runs_before_lines_on_a_huge_single_line():
    """A 10 MB single line is cut by characters (line truncation alone could not shrink it)."""
    out = truncate_output("x" * 10_000_000, *limits_for("shell"))
    assert len(out) < 31_000 and "characters were removed from the middle" in out


def test_tail_mode_keeps_the_end_and_says_how_much_was_removed():
    """grep's tail mode keeps the last max characters behind a 'First N characters were removed' marker."""
    out = truncate_output("a" * 100 + "z" * 20_000, 20_000, "tail")
    assert out.startswith("[WARNING: Tool output was truncated. First 100 characters were removed.")
    assert out.endswith("z" * 20_000)


def test_limits_can_be_overridden_per_tool():
    """A config override changes one tool's limit and leaves the spec's defaults for the rest."""
    assert limits_for("read_file") == (50_000, "head_tail", 0)
    assert limits_for("read_file", {"read_file": {"chars": 10}}) == (10, "head_tail", 0)
    assert limits_for("glob") == (20_000, "tail", 500)
    assert limits_for("mystery") == (20_000, "head_tail", 0)


def test_paths_are_mapped_relative_to_the_workspace_root():
    """Absolute paths under the root and relative paths map into the root; escapes are tool errors."""
    assert render(t.read_file.args, {"file_path": "/repo/src/a.py"}, ROOT) == {"path": "src/a.py"}
    assert render(t.read_file.args, {"file_path": "src/a.py"}, ROOT, "pkg") == {"path": "pkg/src/a.py"}
    for bad in ("/etc/passwd", "../x", "a/../../x", "/repo/../x"):
        with pytest.raises(ToolError, match="outside the workspace"):
            render(t.read_file.args, {"file_path": bad}, ROOT)


def test_shell_mapping_converts_and_clamps_the_timeout():
    """timeout_ms passes through in milliseconds (sub-second timeouts stay exact), clamped to 600 s; cwd appears
    only below the root."""
    assert render(t.shell(10_000).args, {"command": "ls"}, ROOT) == {"argv": ["bash", "-c", "ls"], "timeout_ms": 10_000}
    got = render(t.shell(10_000).args, {"command": "ls", "timeout_ms": 1_500}, ROOT, "sub")
    assert got == {"argv": ["bash", "-c", "ls"], "timeout_ms": 1_500, "cwd": "sub"}
    with pytest.raises(ToolError):
        render(t.shell(10_000).args, {"command": "ls", "timeout_ms": -5}, ROOT)


def test_optional_arguments_are_dropped_and_defaults_filled():
    """Absent optional arguments leave no key; defaults appear; apply_patch is rooted at the working dir."""
    assert render(t.grep.args, {"pattern": "x"}, ROOT) == {"path": ".", "pattern": "x", "max_results": 100}
    assert render(t.grep.args, {"pattern": "x", "glob_filter": "*.py"}, ROOT)["glob"] == "*.py"
    assert render(t.apply_patch.args, {"patch": "P"}, ROOT) == {"path": ".", "patch": "P"}
    assert render(t.apply_patch.args, {"patch": "P"}, ROOT, "pkg") == {"path": "pkg", "patch": "P"}


def test_validation_checks_required_extra_and_types():
    """Missing, unexpected and wrongly typed arguments are refused with the spec's wording; bools are not ints."""
    schema = t.read_file.parameters
    validate({"file_path": "a", "offset": 3}, schema, "read_file")
    with pytest.raises(ToolError, match="missing required argument 'file_path'"):
        validate({}, schema, "read_file")
    with pytest.raises(ToolError, match="unexpected argument 'x'"):
        validate({"file_path": "a", "x": 1}, schema, "read_file")
    with pytest.raises(ToolError, match="expected type 'integer'"):
        validate({"file_path": "a", "offset": True}, schema, "read_file")


def test_arguments_may_arrive_as_json_text():
    """String arguments are parsed as JSON; raw_arguments are used when arguments are empty."""
    assert parse_arguments({"name": "x", "arguments": '{"a": 1}'}) == {"a": 1}
    assert parse_arguments({"name": "x", "arguments": {}, "raw_arguments": '{"b": 2}'}) == {"b": 2}
    with pytest.raises(ToolError, match="invalid JSON"):
        parse_arguments({"name": "x", "arguments": "[1"})


def test_read_output_is_numbered_from_offset_with_a_limit():
    """read_file shows 'N | line' from the 1-based offset, at most limit lines."""
    payload = {"content": "a\nb\nc\nd\n", "size": 8, "truncated": False}
    assert format_output("read", {"offset": 2, "limit": 2}, "ok", payload) == ("2 | b\n3 | c", False)


def test_error_receipts_become_error_results_with_code_and_message():
    """An adapter error (code + message) is an is_error result naming both."""
    text, is_error = format_output("read", {}, "error", {"error": "not_found", "message": "no such file a.py"})
    assert is_error and text == "Error: not_found: no such file a.py"
    assert format_output("write", {}, "ok", {"path": "a", "size": 3}) == ("Wrote 3 bytes to a", False)


@pytest.mark.parametrize(("calls", "loop"), [
    (["a"] * 10, True),
    (["a", "b"] * 5, True),
    (["a", "b", "c"] * 3 + ["a"], False),  # 3 does not divide the window of 10
    ([str(i) for i in range(10)], False),
    (["a"] * 9, False),
])
def test_loop_detection_patterns(calls, loop):
    """Patterns of length 1-3 that fill the window are loops; anything else, or too few calls, is not."""
    assert detect_loop(calls, 10) is loop


def test_file_tool_receipts_read_like_the_spec():
    """edit, apply_patch, grep and glob receipts of the host.fs tools adapter become the spec's tool output."""
    assert format_output("edit", {}, "ok", {"path": "a.py", "replacements": 2, "strategy": "exact"}) == (
        "Updated a.py (2 replacements)", False)
    patch = {"added": ["n.py"], "updated": ["a.py"], "deleted": ["d.py"], "moved": [["x.py", "y.py"]]}
    assert format_output("patch", {}, "ok", patch) == ("Applied patch:\nA n.py\nM a.py\nD d.py\nR x.py -> y.py",
                                                       False)
    matches = {"matches": [{"path": "a.py", "line": 3, "text": "def f():"}], "truncated": False}
    assert format_output("grep", {}, "ok", matches) == ("a.py:3:def f():", False)
    assert format_output("grep", {}, "ok", {"matches": [], "truncated": False}) == ("No matches found", False)
    assert format_output("glob", {}, "ok", {"paths": [], "truncated": False}) == ("No files matched", False)
    assert format_output("glob", {}, "ok", {"paths": ["b", "a"], "truncated": True})[0] == "b\na\n[results truncated]"
    conflict = {"error": "patch_conflict", "message": "a.py hunk 2: context not found"}
    assert format_output("patch", {}, "error", conflict) == ("Error: patch_conflict: a.py hunk 2: context not found",
                                                             True)

"""Tool-output truncation (CAL section 5): what the model sees of a long output.

Character truncation runs first and always (a 10 MB single-line file must
shrink); line truncation runs second, for readability. The full output is
never lost: the session's ``tool_call_end`` event carries it whole.
"""

from __future__ import annotations

from typing import Any

# tool name -> (max chars, mode, max lines or 0)
DEFAULT_LIMITS: dict[str, tuple[int, str, int]] = {
    "read_file": (50_000, "head_tail", 0),
    "shell": (30_000, "head_tail", 256),
    "grep": (20_000, "tail", 200),
    "glob": (20_000, "tail", 500),
    "edit_file": (10_000, "tail", 0),
    "apply_patch": (10_000, "tail", 0),
    "write_file": (1_000, "tail", 0),
    "spawn_agent": (20_000, "head_tail", 0),
    "send_input": (10_000, "tail", 0),
    "wait": (20_000, "head_tail", 0),
    "close_agent": (5_000, "tail", 0),
}
FALLBACK_LIMIT = (20_000, "head_tail", 0)


def limits_for(tool: str, overrides: dict[str, Any] | None = None) -> tuple[int, str, int]:
    """The (chars, mode, lines) limit of a tool: an override from the config
    (``{"chars"?, "mode"?, "lines"?}``) on top of the spec's defaults."""
    chars, mode, lines = DEFAULT_LIMITS.get(tool, FALLBACK_LIMIT)
    o = (overrides or {}).get(tool) or {}
    return int(o.get("chars", chars)), str(o.get("mode", mode)), int(o.get("lines", lines))


def truncate_chars(text: str, limit: int, mode: str) -> str:
    if limit <= 0 or len(text) <= limit:
        return text
    removed = len(text) - limit
    if mode == "tail":
        return (f"[WARNING: Tool output was truncated. First {removed} characters were removed. "
                "The full output is available in the event stream.]\n\n" + text[-limit:])
    half = limit // 2
    return (text[:half] + f"\n\n[WARNING: Tool output was truncated. {removed} characters were removed from "
            "the middle. The full output is available in the event stream. If you need to see specific parts, "
            "re-run the tool with more targeted parameters.]\n\n" + text[len(text) - (limit - half):])


def truncate_lines(text: str, max_lines: int) -> str:
    if max_lines <= 0:
        return text
    lines = text.split("\n")
    if len(lines) <= max_lines:
        return text
    head = max_lines // 2
    tail = max_lines - head
    omitted = len(lines) - max_lines
    return "\n".join(lines[:head]) + f"\n[... {omitted} lines omitted ...]\n" + "\n".join(lines[-tail:])


def truncate_output(text: str, chars: int, mode: str, lines: int = 0) -> str:
    """Characters first, then lines."""
    return truncate_lines(truncate_chars(text, chars, mode), lines)

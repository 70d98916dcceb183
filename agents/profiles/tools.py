"""The coding agent's tools (CAL 3.3 schemas as FORGE implements them), each
mapped onto a world effect. Profiles pick from these."""

from __future__ import annotations

from typing import Any

from aos.agents.spec import ToolSpec

READ = "sys/host.fs.read@1"
WRITE = "sys/host.fs.write@1"
EDIT = "sys/host.fs.edit@1"
APPLY_PATCH = "sys/host.fs.apply_patch@1"
GREP = "sys/host.fs.grep@1"
GLOB = "sys/host.fs.glob@1"
EXEC = "sys/host.exec@1"
MAX_COMMAND_TIMEOUT_MS = 600_000


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def _s(desc: str) -> dict[str, str]:
    return {"type": "string", "description": desc}


def _i(desc: str) -> dict[str, str]:
    return {"type": "integer", "description": desc}


def _b(desc: str) -> dict[str, str]:
    return {"type": "boolean", "description": desc}


PATH = {"$path": "file_path"}

read_file = ToolSpec(
    "read_file", "Read a file from the filesystem. Returns line-numbered content.",
    _obj(["file_path"], file_path=_s("Absolute path to the file"),
         offset=_i("1-based line number to start reading from"), limit=_i("Max lines to read (default: 2000)")),
    READ, {"path": PATH}, "read")

write_file = ToolSpec(
    "write_file", "Write content to a file. Creates the file and parent directories if needed.",
    _obj(["file_path", "content"], file_path=_s("Absolute path"), content=_s("The full file content")),
    WRITE, {"path": PATH, "content": {"$arg": "content"}, "parents": True}, "write")

edit_file = ToolSpec(
    "edit_file", "Replace an exact string occurrence in a file. old_string must be unique unless replace_all.",
    _obj(["file_path", "old_string", "new_string"], file_path=_s("Absolute path"),
         old_string=_s("Exact text to find"), new_string=_s("Replacement text"),
         replace_all=_b("Replace all occurrences (default: false)")),
    EDIT, {"path": PATH, "old_string": {"$arg": "old_string"}, "new_string": {"$arg": "new_string"},
           "replace_all": {"$arg": "replace_all", "default": False}}, "edit")

apply_patch = ToolSpec(
    "apply_patch", "Apply code changes using the patch format (*** Begin Patch ... *** End Patch). "
    "Supports creating, deleting, modifying and renaming files.",
    _obj(["patch"], patch=_s("The patch content in v4a format")),
    APPLY_PATCH, {"path": {"$cwd": "."}, "patch": {"$arg": "patch"}}, "patch")


def shell(default_timeout_ms: int) -> ToolSpec:
    """The shell tool with a profile's default timeout (clamped to 10 minutes)."""
    return ToolSpec(
        "shell", f"Execute a shell command. Returns stdout, stderr and the exit code "
        f"(default timeout {default_timeout_ms} ms).",
        _obj(["command"], command=_s("The command to run"), timeout_ms=_i("Override the default timeout"),
             description=_s("What this command does")),
        EXEC, {"argv": ["bash", "-c", {"$arg": "command"}],
               "timeout_ms": {"$ms": "timeout_ms", "default": default_timeout_ms, "max": MAX_COMMAND_TIMEOUT_MS},
               "cwd": {"$cwd": True}}, "exec")


grep = ToolSpec(
    "grep", "Search file contents with a regex pattern.",
    _obj(["pattern"], pattern=_s("Regex pattern"), path=_s("Directory or file to search (default: working dir)"),
         glob_filter=_s("File pattern filter, e.g. *.py"), case_insensitive=_b("Case-insensitive (default: false)"),
         max_results=_i("Max matches (default: 100)")),
    GREP, {"path": {"$path": "path", "default": "."}, "pattern": {"$arg": "pattern"},
           "glob": {"$arg": "glob_filter"}, "case_insensitive": {"$arg": "case_insensitive"},
           "max_results": {"$arg": "max_results", "default": 100}}, "grep")

glob = ToolSpec(
    "glob", "Find files matching a glob pattern, newest first.",
    _obj(["pattern"], pattern=_s("Glob pattern, e.g. **/*.ts"), path=_s("Base directory (default: working dir)")),
    GLOB, {"path": {"$path": "path", "default": "."}, "pattern": {"$arg": "pattern"}}, "glob")

spawn_agent = ToolSpec(
    "spawn_agent", "Spawn a subagent to handle a scoped task autonomously. Returns its agent_id.",
    _obj(["task"], task=_s("Natural language task description"),
         working_dir=_s("Subdirectory to scope the agent to"), model=_s("Model override"),
         max_turns=_i("Turn limit (default: 50)")),
    "builtin:spawn_agent")

send_input = ToolSpec(
    "send_input", "Send a message to a subagent that has finished its previous task.",
    _obj(["agent_id", "message"], agent_id=_s("The subagent"), message=_s("Message to send")),
    "builtin:send_input")

wait = ToolSpec(
    "wait", "Wait for a subagent to complete and return its result.",
    _obj(["agent_id"], agent_id=_s("The subagent")), "builtin:wait")

close_agent = ToolSpec(
    "close_agent", "Terminate a subagent.", _obj(["agent_id"], agent_id=_s("The subagent")), "builtin:close_agent")

SUBAGENT_TOOLS = [spawn_agent, send_input, wait, close_agent]

"""The Anthropic profile (Claude Code style): ``edit_file`` with exact, unique ``old_string``."""

from aos.agents.profiles import tools as t
from aos.agents.profiles.base import Profile, sorted_tools

BASE_PROMPT = """You are a coding agent working in the user's repository. You read files, run commands and
change code with the tools you have, and you finish the task you are given.

- Always read a file before editing it.
- Prefer edit_file over write_file for existing files. old_string must match the file exactly and be unique;
  include enough surrounding context, or set replace_all to change every occurrence.
- Use write_file only to create new files or to replace a file completely.
- Use shell (default timeout 120 s) to run tests and commands; prefer grep and glob to find code.
- When you are done, answer with a short summary of what you changed and how you checked it."""

PROFILE = Profile(
    name="anthropic", provider="anthropic", default_model="claude-sonnet-4-5", base_prompt=BASE_PROMPT,
    tools=sorted_tools(t.read_file, t.write_file, t.edit_file, t.shell(120_000), t.grep, t.glob, *t.SUBAGENT_TOOLS),
    doc_files=("AGENTS.md", "CLAUDE.md"), context_window=200_000)

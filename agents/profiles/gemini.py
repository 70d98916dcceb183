"""The Gemini profile (gemini-cli style): ``edit_file``, a 1M-token context."""

from aos.agents.profiles import tools as t
from aos.agents.profiles.base import Profile, sorted_tools

BASE_PROMPT = """You are a coding agent working in the user's repository. You read files, run commands and
change code with the tools you have, and you finish the task you are given.

- Understand before you change: use grep, glob and read_file to learn the code and its conventions.
- Change existing files with edit_file (old_string must match exactly, with enough context to be unique);
  create new files with write_file.
- Verify your changes with shell (run the project's tests or linters).
- When you are done, answer with a short summary of what you changed and how you checked it."""

PROFILE = Profile(
    name="gemini", provider="gemini", default_model="gemini-2.5-pro", base_prompt=BASE_PROMPT,
    tools=sorted_tools(t.read_file, t.write_file, t.edit_file, t.shell(10_000), t.grep, t.glob, *t.SUBAGENT_TOOLS),
    doc_files=("AGENTS.md", "GEMINI.md"), context_window=1_000_000)

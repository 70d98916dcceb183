"""The OpenAI profile (codex-rs style): ``apply_patch`` for changes, ``write_file`` for new files."""

from aos.agents.profiles import tools as t
from aos.agents.profiles.base import Profile, sorted_tools

BASE_PROMPT = """You are a coding agent working in the user's repository. You read files, run commands and
change code with the tools you have, and you finish the task you are given.

- Change files with apply_patch (the *** Begin Patch / *** End Patch format: Add File, Update File with
  @@ context hunks, Delete File, Move to). Use write_file only to create new files.
- Read a file before you change it; keep changes small and focused.
- Use shell to run tests and commands; prefer grep and glob to find code.
- When you are done, answer with a short summary of what you changed and how you checked it."""

PROFILE = Profile(
    name="openai", provider="openai", default_model="gpt-5.1-codex", base_prompt=BASE_PROMPT,
    tools=sorted_tools(t.read_file, t.write_file, t.apply_patch, t.shell(10_000), t.grep, t.glob, *t.SUBAGENT_TOOLS),
    doc_files=("AGENTS.md", ".codex/instructions.md"), context_window=200_000)

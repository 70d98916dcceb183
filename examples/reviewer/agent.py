"""A second, small agent: a code reviewer that only reads files and reports.

It is the coding agent's machinery with a different definition: its own
system prompt, three read-only tools (``read_file``, ``grep``, ``glob``) and a
read-only ``host.fs`` grant, so the world it runs in cannot change the
repository even if the model tries. Its answer is the review.

    python examples/reviewer/agent.py REPO [anthropic|openai|gemini] > world.json

prints ``{"manifest": ..., "start": ...}``: create a world from the manifest
and send ``start`` as ``agent/Command@1``.
"""

from __future__ import annotations

import json
import sys

from aos.agents import AgentDefinition, Limits, build_world, get_profile
from aos.agents.profiles import tools

SYSTEM_PROMPT = """You are a code reviewer. You read the repository and report; you never change it.

- Find the code the task is about with glob and grep, then read it with read_file.
- Look for bugs, missing error handling, unclear names, missing tests and security problems.
- Cite every finding as path:line with a one-sentence explanation and a suggested fix.
- End with a short verdict: "approve", "approve with comments" or "request changes".
You have no tools that write files or run commands; do not ask for them."""


def reviewer(profile: str = "anthropic") -> AgentDefinition:
    """The reviewer on a provider profile (the profile gives provider and model only)."""
    return AgentDefinition(
        name="reviewer", profile=get_profile(profile), system_prompt=SYSTEM_PROMPT,
        tools=(tools.glob, tools.grep, tools.read_file), read_only=True,
        limits=Limits(max_tool_rounds_per_input=30, max_subagent_depth=0))


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-4], file=sys.stderr)
        return 2
    doc, start = build_world(reviewer(argv[1] if len(argv) > 1 else "anthropic"), argv[0],
                             task="Review the changes in this repository.")
    print(json.dumps({"manifest": doc, "start": start}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""``aos agent run --twin``: try the coding agent offline, with no API key.

The model is the project's provider twin (``aos.adapters.llm.testing``): a
stand-in that speaks the provider's real HTTP + SSE wire on 127.0.0.1, here
driven by a short script that reacts to the tool results it is sent. It
lists the repository, writes ``aos-twin-notes.md`` (the task and what it saw),
reads it back and says what it did. Everything else is the real thing: the
kernel started for the repository, the session world, the grants, the tool
effects, the journal and ``aos agent replay``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall, Turn, TwinRequest

NOTES = "aos-twin-notes.md"
KEY_VARS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}
BASE_URL_VARS = {"anthropic": "ANTHROPIC_BASE_URL", "openai": "OPENAI_BASE_URL", "gemini": "GEMINI_BASE_URL"}
# the twin checks that requests carry a key, as the real APIs do; this one opens nothing
TWIN_KEY = "aos-twin-offline-key-0000"


def start(provider: str, repo: str, task: str) -> tuple[ProviderTwin, dict[str, str]]:
    """Start the scripted twin; returns it and the environment that points a kernel at it."""
    twin = ProviderTwin(provider, api_key=TWIN_KEY)
    twin.record = False  # a long session should not keep every request in memory
    twin.repeat(Turn(_script(provider, repo, task)))
    twin.start()
    # AOS_SECRET_* wins over the provider's usual variable, so a real key in the environment is never used
    env = {BASE_URL_VARS[provider]: twin.base_url, "AOS_SECRET_" + KEY_VARS[provider]: TWIN_KEY}
    return twin, env


def _script(provider: str, repo: str, task: str) -> Any:
    notes = os.path.join(repo, NOTES)

    def reply(request: TwinRequest) -> ModelTurn:
        results = tool_results(provider, request.body)
        step = len(results)
        if step == 0:
            return _call(step, "shell", command="ls -A", description="look at the repository")
        if step == 1:
            content = (f"# Notes from the offline twin\n\nTask: {task}\n\n"
                       "`aos agent run --twin` listed the repository and wrote this file. The twin is a "
                       "scripted stand-in for a model: nothing left this machine.\n")
            return _call(step, "write_file", file_path=notes, content=content)
        if step == 2:
            return _call(step, "read_file", file_path=notes)
        return ModelTurn(text=f"I am the offline twin, not a real model: I listed the repository, wrote {NOTES} "
                              "with your task and read it back. Set an API key and drop --twin for a real run.")

    return reply


def _call(step: int, name: str, **arguments: Any) -> ModelTurn:
    return ModelTurn(tool_calls=[ScriptedCall(name, json.dumps(arguments), id=f"call_twin_{step}")])


def tool_results(provider: str, body: Any) -> list[str]:
    """The tool results a request carries, oldest first, in each provider's wire shape."""
    found: list[str] = []
    if not isinstance(body, dict):
        return found
    if provider == "openai":
        for item in body.get("input") or []:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                found.append(str(item.get("output")))
    elif provider == "anthropic":
        for message in body.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    value = block.get("content")
                    found.append(value if isinstance(value, str) else json.dumps(value))
    else:
        for content in body.get("contents") or []:
            for part in content.get("parts") or [] if isinstance(content, dict) else []:
                if isinstance(part, dict) and "functionResponse" in part:
                    found.append(json.dumps(part["functionResponse"].get("response")))
    return found

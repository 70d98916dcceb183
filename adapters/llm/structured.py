"""Structured output (ULS 4.5): how each provider is asked for JSON, and how
the answer is checked. Shared by ``generate_object`` and ``stream_object``.

OpenAI and Gemini have native structured output (``json_schema`` strict,
``responseSchema``); Anthropic has none, so it is forced to call a tool whose
input schema is the schema, and the call's arguments are the object.
"""

from __future__ import annotations

import json
from typing import Any

from .client import Client
from .errors import NoObjectGeneratedError
from .providers import anthropic
from .schema import validate
from .tools import Tool
from .types import Response, ResponseFormat, ToolChoice, ToolChoiceMode

OBJECT_TOOL = "structured_output"


def uses_tool(client: Client, provider: str | None) -> bool:
    adapter = client.providers.get(provider or client.default_provider or "")
    return getattr(adapter, "codec", None) is anthropic


def request_kwargs(client: Client, provider: str | None, schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The generate()/stream() arguments that ask this provider for the object."""
    if uses_tool(client, provider):
        return {
            "tools": [Tool(OBJECT_TOOL, f"Return the {name} object.", schema)],
            "tool_choice": ToolChoice(ToolChoiceMode.NAMED, OBJECT_TOOL),
            "max_tool_rounds": 0,
        }
    return {"response_format": ResponseFormat("json_schema", schema, strict=True, name=name)}


def extract(response: Response, schema: dict[str, Any]) -> Any:
    """The validated object in ``response``; NoObjectGeneratedError if there is none."""
    calls = [c for c in response.tool_calls if c.name == OBJECT_TOOL]
    raw: Any = calls[0].arguments if calls else response.text
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise NoObjectGeneratedError(f"model output is not JSON: {response.text[:200]!r}") from None
    if not isinstance(raw, (dict, list)):
        raise NoObjectGeneratedError(f"model output is not a JSON object or array: {raw!r}")
    problems = validate(raw, schema)
    if problems:
        raise NoObjectGeneratedError("model output does not match the schema: " + "; ".join(problems))
    return raw

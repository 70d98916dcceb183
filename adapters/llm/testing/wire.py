"""Each provider's real wire shapes, as the twins emit them.

Event names, payload fields, error bodies and auth rules follow the public
API references (OpenAI Responses streaming events, Anthropic Messages
streaming, Gemini ``streamGenerateContent?alt=sse``, Chat Completions).
"""

from __future__ import annotations

import json
from typing import Any

from .script import ErrorReply, ModelTurn, TwinRequest


def sse(event: str | None, payload: Any, eol: str = "\n") -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    head = f"event: {event}{eol}" if event else ""
    return f"{head}data: {data}{eol}{eol}".encode()


class Wire:
    """One provider's wire: routes, auth rule, error body, JSON and SSE renderings of a ModelTurn."""

    name = ""
    base_path = ""
    routes: tuple[str, ...] = ()

    def key_of(self, req: TwinRequest) -> str | None:
        auth = req.headers.get("authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def check_route(self, req: TwinRequest) -> str | None:
        if req.method != "POST" or req.path not in self.routes:
            return f"Unknown route {req.method} {req.path}"
        return None

    def auth_error(self, key: str | None) -> ErrorReply:
        return ErrorReply(401, "Incorrect API key provided.")

    def error_body(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def render_json(self, turn: ModelTurn, req: TwinRequest) -> dict[str, Any]:
        raise NotImplementedError

    def render_sse(self, turn: ModelTurn, req: TwinRequest) -> list[bytes]:
        raise NotImplementedError


def split(s: str, n: int) -> list[str]:
    if not s:
        return []
    step = max(1, -(-len(s) // n))
    return [s[i : i + step] for i in range(0, len(s), step)]


def for_provider(name: str) -> Wire:
    # imported here: the provider modules import Wire from this one
    from .wire_anthropic import AnthropicWire
    from .wire_gemini import GeminiWire
    from .wire_openai import ChatWire, OpenAIWire

    wires: dict[str, type[Wire]] = {
        "openai": OpenAIWire,
        "anthropic": AnthropicWire,
        "gemini": GeminiWire,
        "openai_compatible": ChatWire,
    }
    return wires[name]()

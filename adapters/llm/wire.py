"""Small pure helpers shared by the provider codecs."""

from __future__ import annotations

import json
import uuid
from typing import Any

from .errors import UnsupportedToolChoiceError
from .types import (
    ContentKind,
    ContentPart,
    Message,
    RateLimitInfo,
    Request,
    Role,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)


def parse_arguments(raw: str | None) -> dict[str, Any] | str:
    """Parsed JSON object, or the raw string when it is not one (validated later)."""
    if raw is None or raw == "":
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, dict) else raw


def arguments_json(call: ToolCall) -> str:
    if call.raw_arguments is not None:
        return call.raw_arguments
    if isinstance(call.arguments, str):
        return call.arguments
    return json.dumps(call.arguments, ensure_ascii=False, separators=(",", ":"))


def arguments_dict(call: ToolCall) -> dict[str, Any]:
    if isinstance(call.arguments, dict):
        return call.arguments
    parsed = parse_arguments(call.arguments)
    return parsed if isinstance(parsed, dict) else {}


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def tool_choice_of(request: Request) -> ToolChoice | None:
    if not request.tools:
        return None
    choice = request.tool_choice or ToolChoice(ToolChoiceMode.AUTO)
    mode = ToolChoiceMode(choice.mode) if choice.mode in ToolChoiceMode._value2member_map_ else None
    if mode is None:
        raise UnsupportedToolChoiceError(f"unknown tool_choice mode {choice.mode!r}")
    if mode is ToolChoiceMode.NAMED and not choice.tool_name:
        raise UnsupportedToolChoiceError("tool_choice 'named' needs tool_name")
    return ToolChoice(mode, choice.tool_name)


def system_text(messages: list[Message]) -> str | None:
    """SYSTEM and DEVELOPER messages joined, for providers with one system slot."""
    texts = [m.text for m in messages if m.role in (Role.SYSTEM, Role.DEVELOPER)]
    return "\n\n".join(texts) if texts else None


def text_part(text: str) -> ContentPart:
    return ContentPart(ContentKind.TEXT, text=text)


def content_string(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def _int(v: str | None) -> int | None:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def rate_limit_from_headers(headers: dict[str, str] | None) -> RateLimitInfo | None:
    """OpenAI ``x-ratelimit-*`` and Anthropic ``anthropic-ratelimit-*`` headers."""
    if not headers:
        return None
    h = {k.lower(): v for k, v in headers.items()}
    for fmt in ("x-ratelimit-{kind}-{what}", "anthropic-ratelimit-{what}-{kind}"):

        def get(kind: str, what: str, fmt: str = fmt) -> str | None:
            return h.get(fmt.format(kind=kind, what=what))

        info = RateLimitInfo(
            requests_remaining=_int(get("remaining", "requests")),
            requests_limit=_int(get("limit", "requests")),
            tokens_remaining=_int(get("remaining", "tokens")),
            tokens_limit=_int(get("limit", "tokens")),
            reset_at=get("reset", "requests") or get("reset", "tokens"),
        )
        if any(v is not None for v in vars(info).values()):
            return info
    return None

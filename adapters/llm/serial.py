"""Plain-dict forms of messages and responses, for receipts and effect params.

Everything here is JSON-safe (bytes become base64) and round-trips: a
response's message turned into a dict and back is sent to the provider
exactly as the original, signatures and encrypted reasoning included.
"""

from __future__ import annotations

import base64
from dataclasses import asdict
from typing import Any

from .types import (
    ContentKind,
    ContentPart,
    ImageData,
    Message,
    Response,
    Role,
    ThinkingData,
    ToolCall,
    ToolResult,
    Usage,
)


def part_to_dict(part: ContentPart) -> dict[str, Any]:
    kind = part.kind.value if isinstance(part.kind, ContentKind) else str(part.kind)
    out: dict[str, Any] = {"kind": kind}
    if part.text is not None:
        out["text"] = part.text
    if part.image is not None:
        img = part.image
        out["image"] = {"url": img.url, "media_type": img.media_type, "detail": img.detail}
        if img.data is not None:
            out["image"]["data_b64"] = img.b64()
    if part.tool_call is not None:
        out["tool_call"] = asdict(part.tool_call)
    if part.tool_result is not None:
        out["tool_result"] = {k: v for k, v in asdict(part.tool_result).items() if k not in ("image_data",)}
    if part.thinking is not None:
        out["thinking"] = asdict(part.thinking)
    return out


def part_from_dict(d: dict[str, Any]) -> ContentPart:
    kind_raw = d.get("kind", "text")
    kind: ContentKind | str = ContentKind(kind_raw) if kind_raw in ContentKind._value2member_map_ else kind_raw
    part = ContentPart(kind, text=d.get("text"))
    if "image" in d:
        img = d["image"]
        data = base64.b64decode(img["data_b64"]) if img.get("data_b64") else None
        part.image = ImageData(
            url=None if data is not None else img.get("url"),
            data=data,
            media_type=img.get("media_type"),
            detail=img.get("detail"),
        )
    if "tool_call" in d:
        part.tool_call = ToolCall(**d["tool_call"])
    if "tool_result" in d:
        part.tool_result = ToolResult(**d["tool_result"])
    if "thinking" in d:
        part.thinking = ThinkingData(**d["thinking"])
    return part


def message_to_dict(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": msg.role.value, "content": [part_to_dict(p) for p in msg.content]}
    if msg.name is not None:
        out["name"] = msg.name
    if msg.tool_call_id is not None:
        out["tool_call_id"] = msg.tool_call_id
    return out


def message_from_dict(d: dict[str, Any]) -> Message:
    content = d.get("content", "")
    parts = (
        [ContentPart(ContentKind.TEXT, text=content)]
        if isinstance(content, str)
        else [part_from_dict(p) for p in content]
    )
    return Message(Role(d["role"]), parts, d.get("name"), d.get("tool_call_id"))


def usage_to_dict(u: Usage) -> dict[str, Any]:
    return {k: v for k, v in asdict(u).items() if k != "raw"}


def response_to_dict(resp: Response) -> dict[str, Any]:
    """The response without ``raw`` (provider bodies stay out of receipts)."""
    return {
        "id": resp.id,
        "model": resp.model,
        "provider": resp.provider,
        "text": resp.text,
        "reasoning": resp.reasoning,
        "finish_reason": {"reason": resp.finish_reason.reason, "raw": resp.finish_reason.raw},
        "usage": usage_to_dict(resp.usage),
        "tool_calls": [asdict(c) for c in resp.tool_calls],
        "message": message_to_dict(resp.message),
        "warnings": [asdict(w) for w in resp.warnings],
        "rate_limit": asdict(resp.rate_limit) if resp.rate_limit else None,
    }

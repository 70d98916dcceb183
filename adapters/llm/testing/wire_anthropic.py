"""The Anthropic Messages wire as the twin emits it."""

from __future__ import annotations

import json
from typing import Any

from .script import ErrorReply, ModelTurn, TwinRequest
from .wire import Wire, split, sse


# -- Anthropic Messages ------------------------------------------------------------------------
class AnthropicWire(Wire):
    name = "anthropic"
    base_path = ""
    routes = ("/v1/messages",)
    _TYPES = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
    }

    def key_of(self, req: TwinRequest) -> str | None:
        return req.headers.get("x-api-key")

    def check_route(self, req: TwinRequest) -> str | None:
        err = super().check_route(req)
        if err is None and "anthropic-version" not in req.headers:
            return "anthropic-version header is required"
        return err

    def auth_error(self, key: str | None) -> ErrorReply:
        return ErrorReply(401, "invalid x-api-key")

    def error_body(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        return {"type": "error", "error": {"type": code or self._TYPES.get(status, "api_error"), "message": message}}

    def _blocks(self, t: ModelTurn) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if t.reasoning is not None:
            blocks.append({"type": "thinking", "thinking": t.reasoning, "signature": t.reasoning_signature or ""})
        if t.redacted_reasoning is not None:
            blocks.append({"type": "redacted_thinking", "data": t.redacted_reasoning})
        if t.text is not None:
            blocks.append({"type": "text", "text": t.text})
        for i, c in enumerate(t.tool_calls):
            try:
                args = json.loads(c.arguments)
            except ValueError:
                args = {}
            blocks.append({"type": "tool_use", "id": c.id or f"toolu_{i:03d}", "name": c.name, "input": args})
        return blocks

    def _usage(self, t: ModelTurn, output: int) -> dict[str, Any]:
        return {
            "input_tokens": t.input_tokens,
            "cache_creation_input_tokens": t.cache_write_tokens or 0,
            "cache_read_input_tokens": t.cache_read_tokens or 0,
            "output_tokens": output,
        }

    def _stop(self, t: ModelTurn) -> str:
        return t.finish or ("tool_use" if t.tool_calls else "end_turn")

    def render_json(self, t: ModelTurn, req: TwinRequest) -> dict[str, Any]:
        return {
            "id": "msg_001",
            "type": "message",
            "role": "assistant",
            "model": (req.body or {}).get("model", ""),
            "content": self._blocks(t),
            "stop_reason": self._stop(t),
            "stop_sequence": None,
            "usage": self._usage(t, t.output_tokens),
        }

    def render_sse(self, t: ModelTurn, req: TwinRequest) -> list[bytes]:
        frames: list[bytes] = []

        def emit(kind: str, **payload: Any) -> None:
            frames.append(sse(kind, {"type": kind, **payload}))

        message = {
            "id": "msg_001",
            "type": "message",
            "role": "assistant",
            "model": (req.body or {}).get("model", ""),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage(t, 1),
        }
        emit("message_start", message=message)
        emit("ping")
        for name, payload in t.extra_events:
            frames.append(sse(name, {"type": name, **payload}))
        for idx, block in enumerate(self._blocks(t)):
            kind = block["type"]
            if kind == "thinking":
                emit(
                    "content_block_start",
                    index=idx,
                    content_block={"type": "thinking", "thinking": "", "signature": ""},
                )
                for piece in split(block["thinking"], 3):
                    emit("content_block_delta", index=idx, delta={"type": "thinking_delta", "thinking": piece})
                emit(
                    "content_block_delta", index=idx, delta={"type": "signature_delta", "signature": block["signature"]}
                )
            elif kind == "redacted_thinking":
                emit("content_block_start", index=idx, content_block=block)
            elif kind == "text":
                emit("content_block_start", index=idx, content_block={"type": "text", "text": ""})
                for piece in t.text_chunks():
                    emit("content_block_delta", index=idx, delta={"type": "text_delta", "text": piece})
            else:
                emit("content_block_start", index=idx, content_block={**block, "input": {}})
                raw = t.tool_calls[idx - sum(1 for b in self._blocks(t)[:idx] if b["type"] != "tool_use")].arguments
                for piece in split(raw, 3):
                    emit("content_block_delta", index=idx, delta={"type": "input_json_delta", "partial_json": piece})
            emit("content_block_stop", index=idx)
        emit(
            "message_delta",
            delta={"stop_reason": self._stop(t), "stop_sequence": None},
            usage={"output_tokens": t.output_tokens},
        )
        emit("message_stop")
        return frames

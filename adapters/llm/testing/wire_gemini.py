"""The Gemini generateContent / streamGenerateContent wire as the twin emits it."""

from __future__ import annotations

import json
from typing import Any

from .script import ErrorReply, ModelTurn, ScriptedCall, TwinRequest
from .wire import Wire, sse


# -- Gemini ------------------------------------------------------------------------------------
class GeminiWire(Wire):
    name = "gemini"
    base_path = ""
    _GRPC = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED",
    }

    def key_of(self, req: TwinRequest) -> str | None:
        return req.headers.get("x-goog-api-key") or req.query.get("key")

    def check_route(self, req: TwinRequest) -> str | None:
        ok = req.method == "POST" and req.path.startswith("/v1beta/models/")
        if ok and req.path.endswith(":generateContent"):
            return None
        if ok and req.path.endswith(":streamGenerateContent") and req.query.get("alt") == "sse":
            return None
        return f"Unknown route {req.method} {req.path}"

    def auth_error(self, key: str | None) -> ErrorReply:
        return ErrorReply(400, "API key not valid. Please pass a valid API key.", code="INVALID_ARGUMENT")

    def error_body(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        return {"error": {"code": status, "message": message, "status": code or self._GRPC.get(status, "UNKNOWN")}}

    def _usage(self, t: ModelTurn) -> dict[str, Any]:
        u = {
            "promptTokenCount": t.input_tokens,
            "candidatesTokenCount": t.output_tokens,
            "totalTokenCount": t.input_tokens + t.output_tokens + (t.reasoning_tokens or 0),
        }
        if t.reasoning_tokens is not None:
            u["thoughtsTokenCount"] = t.reasoning_tokens
        if t.cache_read_tokens is not None:
            u["cachedContentTokenCount"] = t.cache_read_tokens
        return u

    def _call_part(self, c: ScriptedCall) -> dict[str, Any]:
        part: dict[str, Any] = {"functionCall": {"name": c.name, "args": json.loads(c.arguments or "{}")}}
        if c.signature is not None:
            part["thoughtSignature"] = c.signature
        return part

    def _thought(self, t: ModelTurn) -> dict[str, Any]:
        part: dict[str, Any] = {"text": t.reasoning, "thought": True}
        if t.reasoning_signature:
            part["thoughtSignature"] = t.reasoning_signature
        return part

    def _chunk(self, parts: list[dict[str, Any]], t: ModelTurn, req: TwinRequest, last: bool) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if last:
            cand["finishReason"] = t.finish or "STOP"
        out: dict[str, Any] = {
            "candidates": [cand],
            "modelVersion": req.path.split("/")[-1].split(":")[0],
            "responseId": "resp-g-001",
        }
        if last:
            out["usageMetadata"] = self._usage(t)
        return out

    def render_json(self, t: ModelTurn, req: TwinRequest) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if t.reasoning is not None:
            parts.append(self._thought(t))
        if t.text is not None:
            parts.append({"text": t.text})
        parts += [self._call_part(c) for c in t.tool_calls]
        return self._chunk(parts, t, req, last=True)

    def render_sse(self, t: ModelTurn, req: TwinRequest) -> list[bytes]:
        chunks: list[list[dict[str, Any]]] = []
        if t.reasoning is not None:
            chunks.append([self._thought(t)])
        chunks += [[{"text": c}] for c in t.text_chunks()]
        if t.tool_calls:
            chunks.append([self._call_part(c) for c in t.tool_calls])
        if not chunks:
            chunks.append([])
        frames = [
            sse(None, self._chunk(parts, t, req, last=i == len(chunks) - 1), "\r\n") for i, parts in enumerate(chunks)
        ]
        for name, payload in t.extra_events:
            frames.insert(1, sse(name, payload, "\r\n"))
        return frames

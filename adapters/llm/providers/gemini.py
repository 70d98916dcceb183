"""Gemini ``generateContent`` / ``streamGenerateContent?alt=sse``: pure codec.

Wire facts: calls have no ids, so ``call_<uuid>`` ids are made up and mapped
back to the function name for ``functionResponse``; a ``functionCall`` part's
``thoughtSignature`` must be echoed verbatim on the same part next turn (kept
in ``ToolCall.signature``); string tool results are wrapped ``{"result": ...}``;
there is no tool finish reason (``tool_calls`` is inferred from the parts);
the stream has no terminator, so FINISH is emitted at end of stream.

The key travels in the ``x-goog-api-key`` header, not ``?key=``, so it never
appears in a URL that an error message or log line might quote.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..errors import InvalidRequestError, StreamError
from ..http import HttpCall
from ..sse import SseEvent
from ..types import (
    ContentKind,
    ContentPart,
    FinishReason,
    Message,
    Request,
    Response,
    Role,
    StreamEvent,
    StreamEventType,
    ThinkingData,
    ToolCall,
    ToolChoiceMode,
    Usage,
)
from ..wire import arguments_dict, new_call_id, system_text, tool_choice_of

NAME = "gemini"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
_THINKING_BUDGET = {"low": 1024, "medium": 8192, "high": 24576}
_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "BLOCKLIST": "content_filter",
    "SPII": "content_filter",
}


def auth_headers(api_key: str) -> dict[str, str]:
    return {"x-goog-api-key": api_key}


def _call_names(messages: list[Message]) -> dict[str, str]:
    return {c.id: c.name for m in messages for p in m.content if (c := p.tool_call) is not None}


def _part(part: ContentPart, names: dict[str, str]) -> dict[str, Any] | None:
    if part.kind == ContentKind.TEXT:
        return {"text": part.text or ""}
    if part.image is not None:
        img = part.image
        if img.url is not None:
            return {"fileData": {"mimeType": img.media_type or "image/png", "fileUri": img.url}}
        return {"inlineData": {"mimeType": img.media_type, "data": img.b64()}}
    if part.document is not None or part.audio is not None:
        media = part.document or part.audio
        assert media is not None
        if media.url is not None:
            return {"fileData": {"mimeType": media.media_type or "application/octet-stream", "fileUri": media.url}}
        return {
            "inlineData": {
                "mimeType": media.media_type or "application/octet-stream",
                "data": base64.b64encode(media.data or b"").decode(),
            }
        }
    if part.tool_call is not None:
        c = part.tool_call
        out: dict[str, Any] = {"functionCall": {"name": c.name, "args": arguments_dict(c)}}
        if c.signature is not None:
            out["thoughtSignature"] = c.signature
        return out
    if part.tool_result is not None:
        r = part.tool_result
        name = names.get(r.tool_call_id)
        if name is None:
            raise InvalidRequestError(f"gemini: no tool call with id {r.tool_call_id!r} in history", provider=NAME)
        response = r.content if isinstance(r.content, dict) else {"result": r.content}
        return {"functionResponse": {"name": name, "response": response}}
    if part.thinking is not None:
        th = part.thinking
        if th.provider not in (None, NAME) or th.redacted or not th.text:
            return None
        out = {"text": th.text, "thought": True}
        if th.signature:
            out["thoughtSignature"] = th.signature
        return out
    return None


def encode_request(request: Request, stream: bool = False) -> HttpCall:
    opts = request.options_for(NAME)
    names = _call_names(request.messages)
    contents: list[dict[str, Any]] = []
    for msg in request.messages:
        if msg.role in (Role.SYSTEM, Role.DEVELOPER):
            continue
        role = "model" if msg.role == Role.ASSISTANT else "user"
        parts = [p for p in (_part(x, names) for x in msg.content) if p is not None]
        if parts and contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)  # all function responses of a turn go in one content
        elif parts:
            contents.append({"role": role, "parts": parts})
    body: dict[str, Any] = {"contents": contents}
    system = system_text(request.messages)
    if system is not None:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    if request.tools:
        body["tools"] = [
            {
                "functionDeclarations": [
                    {"name": t.name, "description": t.description, "parameters": t.parameters} for t in request.tools
                ]
            }
        ]
        choice = tool_choice_of(request)
        assert choice is not None
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY", "named": "ANY"}[ToolChoiceMode(choice.mode).value]
        config: dict[str, Any] = {"mode": mode}
        if choice.mode == ToolChoiceMode.NAMED:
            config["allowedFunctionNames"] = [choice.tool_name]
        body["toolConfig"] = {"functionCallingConfig": config}
    gen: dict[str, Any] = {}
    if request.temperature is not None:
        gen["temperature"] = request.temperature
    if request.top_p is not None:
        gen["topP"] = request.top_p
    if request.max_tokens is not None:
        gen["maxOutputTokens"] = request.max_tokens
    if request.stop_sequences:
        gen["stopSequences"] = list(request.stop_sequences)
    if request.reasoning_effort is not None:
        gen["thinkingConfig"] = {
            "thinkingBudget": _THINKING_BUDGET.get(request.reasoning_effort, 8192),
            "includeThoughts": True,
        }
    fmt = request.response_format
    if fmt is not None and fmt.type in ("json", "json_schema"):
        gen["responseMimeType"] = "application/json"
        if fmt.json_schema is not None:
            gen["responseSchema"] = fmt.json_schema
    gen.update(opts.pop("generationConfig", {}) or {})
    if gen:
        body["generationConfig"] = gen
    body.update(opts)
    model = request.model if request.model.startswith("models/") else f"models/{request.model}"
    if stream:
        return HttpCall(f"/v1beta/{model}:streamGenerateContent", body, params={"alt": "sse"})
    return HttpCall(f"/v1beta/{model}:generateContent", body)


def _usage(u: dict[str, Any]) -> Usage:
    inp, out = int(u.get("promptTokenCount") or 0), int(u.get("candidatesTokenCount") or 0)
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=int(u.get("totalTokenCount") or inp + out),
        reasoning_tokens=u.get("thoughtsTokenCount"),
        cache_read_tokens=u.get("cachedContentTokenCount"),
        raw=u or None,
    )


def _decode_part(p: dict[str, Any]) -> ContentPart | None:
    if "functionCall" in p:
        fc = p["functionCall"]
        args = fc.get("args") or {}
        call = ToolCall(
            fc.get("id") or new_call_id(),
            fc["name"],
            args,
            raw_arguments=json.dumps(args, ensure_ascii=False),
            signature=p.get("thoughtSignature"),
        )
        return ContentPart(ContentKind.TOOL_CALL, tool_call=call)
    if p.get("thought"):
        th = ThinkingData(p.get("text", ""), signature=p.get("thoughtSignature"), provider=NAME)
        return ContentPart(ContentKind.THINKING, thinking=th)
    if "text" in p:
        return ContentPart(ContentKind.TEXT, text=p["text"])
    return None


def _finish(raw: str | None, parts: list[ContentPart]) -> FinishReason:
    if any(p.tool_call is not None for p in parts):
        return FinishReason("tool_calls", raw)
    return FinishReason(_FINISH.get(raw or "STOP", "other"), raw)


def decode_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    cand = (body.get("candidates") or [{}])[0]
    parts = [p for p in (_decode_part(x) for x in (cand.get("content") or {}).get("parts") or []) if p is not None]
    return Response(
        id=body.get("responseId", ""),
        model=body.get("modelVersion", ""),
        provider=NAME,
        message=Message(Role.ASSISTANT, parts),
        finish_reason=_finish(cand.get("finishReason"), parts),
        usage=_usage(body.get("usageMetadata") or {}),
        raw=body,
    )


class StreamDecoder:
    """Each SSE chunk is a whole GenerateContentResponse; calls arrive whole."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self._started = False
        self._text_open = False
        self._reasoning_open = False
        self._parts: list[ContentPart] = []
        self._finish_raw: str | None = None
        self._usage: dict[str, Any] = {}
        self._id = ""
        self._model = ""
        self._chunks: list[Any] = []

    def decode_stream_event(self, sse: SseEvent) -> list[StreamEvent]:
        try:
            data = json.loads(sse.data)
        except ValueError:
            return [StreamEvent(StreamEventType.PROVIDER_EVENT, raw=sse.data)]
        if not isinstance(data, dict) or ("candidates" not in data and "usageMetadata" not in data):
            return [StreamEvent(StreamEventType.PROVIDER_EVENT, raw=data)]
        self._chunks.append(data)
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(StreamEvent(StreamEventType.STREAM_START, raw=data))
        self._id = data.get("responseId", self._id)
        self._model = data.get("modelVersion", self._model)
        self._usage = data.get("usageMetadata") or self._usage
        cand = (data.get("candidates") or [{}])[0]
        for raw_part in (cand.get("content") or {}).get("parts") or []:
            part = _decode_part(raw_part)
            if part is None:
                continue
            if part.thinking is not None:
                if not self._reasoning_open:
                    self._reasoning_open = True
                    out.append(StreamEvent(StreamEventType.REASONING_START, text_id="reasoning"))
                out.append(
                    StreamEvent(
                        StreamEventType.REASONING_DELTA, reasoning_delta=part.thinking.text, text_id="reasoning"
                    )
                )
                self._merge(part)
            elif part.tool_call is not None:
                out.append(StreamEvent(StreamEventType.TOOL_CALL_START, tool_call=part.tool_call))
                out.append(StreamEvent(StreamEventType.TOOL_CALL_END, tool_call=part.tool_call))
                self._parts.append(part)
            else:
                if not self._text_open:
                    self._text_open = True
                    out.append(StreamEvent(StreamEventType.TEXT_START, text_id="text"))
                out.append(StreamEvent(StreamEventType.TEXT_DELTA, delta=part.text or "", text_id="text"))
                self._merge(part)
        if cand.get("finishReason"):
            self._finish_raw = cand["finishReason"]
            if self._reasoning_open:
                self._reasoning_open = False
                out.append(StreamEvent(StreamEventType.REASONING_END, text_id="reasoning"))
            if self._text_open:
                self._text_open = False
                out.append(StreamEvent(StreamEventType.TEXT_END, text_id="text"))
        return out

    def _merge(self, part: ContentPart) -> None:
        last = self._parts[-1] if self._parts else None
        if last is not None and last.kind == part.kind == ContentKind.TEXT:
            last.text = (last.text or "") + (part.text or "")
        elif last is not None and last.thinking is not None and part.thinking is not None:
            last.thinking.text += part.thinking.text
            last.thinking.signature = part.thinking.signature or last.thinking.signature
        else:
            self._parts.append(part)

    def end(self) -> list[StreamEvent]:
        if self._finish_raw is None:
            # no terminator exists; a stream that never said finishReason was cut off
            return [StreamEvent(StreamEventType.ERROR, error=StreamError("gemini: stream ended without finishReason"))]
        resp = Response(
            id=self._id,
            model=self._model,
            provider=NAME,
            message=Message(Role.ASSISTANT, self._parts),
            finish_reason=_finish(self._finish_raw, self._parts),
            usage=_usage(self._usage),
            raw=self._chunks,
        )
        return [StreamEvent(StreamEventType.FINISH, finish_reason=resp.finish_reason, usage=resp.usage, response=resp)]

"""Anthropic Messages API (``POST /v1/messages``): pure request/response codec.

Wire facts: strict user/assistant alternation (consecutive same-role
messages are merged, tool results ride in a user message); thinking blocks
and their signatures (streamed as ``signature_delta``) are echoed byte for
byte; ``max_tokens`` is required (default 4096).

Prompt caching heuristic (ULS 2.10; the spec leaves the placement open): unless
``provider_options.anthropic.auto_cache`` is false, ``cache_control`` goes on
the last system block, the last tool, and the last cacheable block of the
second-to-last message (a rolling prefix that keeps hitting as an agent
history grows). Any ``cache_control`` adds the ``prompt-caching-2024-07-31``
beta header.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..errors import InvalidRequestError, ServerError, StreamError
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
from ..wire import (
    arguments_dict,
    content_string,
    parse_arguments,
    rate_limit_from_headers,
    tool_choice_of,
)

NAME = "anthropic"
DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
CACHE_BETA = "prompt-caching-2024-07-31"
DEFAULT_MAX_TOKENS = 4096
_THINKING_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}
_EPHEMERAL = {"type": "ephemeral"}


def auth_headers(api_key: str) -> dict[str, str]:
    return {"x-api-key": api_key, "anthropic-version": API_VERSION}


def _block(part: ContentPart) -> dict[str, Any] | None:
    if part.kind == ContentKind.TEXT:
        return {"type": "text", "text": part.text or ""}
    if part.image is not None:
        img = part.image
        if img.url is not None:
            return {"type": "image", "source": {"type": "url", "url": img.url}}
        return {"type": "image", "source": {"type": "base64", "media_type": img.media_type, "data": img.b64()}}
    if part.document is not None:
        doc = part.document
        if doc.url is not None:
            return {"type": "document", "source": {"type": "url", "url": doc.url}}
        data = base64.b64encode(doc.data or b"").decode()
        return {
            "type": "document",
            "source": {"type": "base64", "media_type": doc.media_type or "application/pdf", "data": data},
        }
    if part.tool_call is not None:
        c = part.tool_call
        return {"type": "tool_use", "id": c.id, "name": c.name, "input": arguments_dict(c)}
    if part.tool_result is not None:
        r = part.tool_result
        return {
            "type": "tool_result",
            "tool_use_id": r.tool_call_id,
            "content": content_string(r.content),
            "is_error": r.is_error,
        }
    if part.thinking is not None:
        th = part.thinking
        if th.provider not in (None, NAME):
            # another provider's reasoning: its signature means nothing here; keep it as context
            return {"type": "text", "text": th.text} if th.text and not th.redacted else None
        if th.redacted:
            return {"type": "redacted_thinking", "data": th.signature or ""}
        return {"type": "thinking", "thinking": th.text, "signature": th.signature or ""}
    if part.kind == ContentKind.AUDIO:
        raise InvalidRequestError("anthropic: audio input is not supported", provider=NAME)
    return None


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for msg in messages:
        if msg.role in (Role.SYSTEM, Role.DEVELOPER):
            continue
        role = "assistant" if msg.role == Role.ASSISTANT else "user"
        blocks = [b for b in (_block(p) for p in msg.content) if b is not None]
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)  # strict alternation: merge same-role neighbours
        else:
            out.append({"role": role, "content": blocks})
    return out


def _apply_cache(body: dict[str, Any]) -> bool:
    """Mark the cache breakpoints; True if it marked any."""
    marked = False
    if body.get("system"):
        body["system"][-1]["cache_control"] = dict(_EPHEMERAL)
        marked = True
    if body.get("tools"):
        body["tools"][-1]["cache_control"] = dict(_EPHEMERAL)
        marked = True
    msgs = body["messages"]
    if len(msgs) >= 2:
        for block in reversed(msgs[-2]["content"]):
            if block["type"] not in ("thinking", "redacted_thinking"):  # the API rejects cache_control there
                block["cache_control"] = dict(_EPHEMERAL)
                return True
    return marked


def _has_cache_control(body: dict[str, Any]) -> bool:
    return "cache_control" in json.dumps(body)


def encode_request(request: Request, stream: bool = False) -> HttpCall:
    opts = request.options_for(NAME)
    betas: list[str] = list(opts.pop("beta_headers", []) or [])
    auto_cache = opts.pop("auto_cache", True)
    body: dict[str, Any] = {"model": request.model, "messages": _messages(request.messages)}
    system = [{"type": "text", "text": m.text} for m in request.messages if m.role in (Role.SYSTEM, Role.DEVELOPER)]
    if system:
        body["system"] = system
    choice = tool_choice_of(request)
    if request.tools and choice is not None and choice.mode != ToolChoiceMode.NONE:
        # mode none: Anthropic has no "none", so the tools are left out entirely
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in request.tools
        ]
        if choice.mode == ToolChoiceMode.AUTO:
            body["tool_choice"] = {"type": "auto"}
        elif choice.mode == ToolChoiceMode.REQUIRED:
            body["tool_choice"] = {"type": "any"}
        else:
            body["tool_choice"] = {"type": "tool", "name": choice.tool_name}
    max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
    if request.reasoning_effort is not None:
        budget = _THINKING_BUDGET.get(request.reasoning_effort, _THINKING_BUDGET["medium"])
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if request.max_tokens is None:
            max_tokens = budget + DEFAULT_MAX_TOKENS  # the budget must fit below max_tokens
    body["max_tokens"] = max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop_sequences:
        body["stop_sequences"] = list(request.stop_sequences)
    if request.metadata and "user_id" in request.metadata:
        body["metadata"] = {"user_id": request.metadata["user_id"]}  # the only key the API accepts
    if stream:
        body["stream"] = True
    body.update(opts)
    # (the scan is a JSON dump of the whole request: skipped when the breakpoints were just marked)
    marked = _apply_cache(body) if auto_cache else False
    if (marked or _has_cache_control(body)) and CACHE_BETA not in betas:
        betas.append(CACHE_BETA)
    headers = {"anthropic-beta": ",".join(betas)} if betas else {}
    return HttpCall("/v1/messages", body, headers)


_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "other",
}


def _usage(u: dict[str, Any], parts: list[ContentPart]) -> Usage:
    inp, out = int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0)
    thinking_chars = sum(len(p.thinking.text) for p in parts if p.thinking is not None)
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=inp + out,
        # Anthropic reports no reasoning count; estimate at ~4 characters per token
        reasoning_tokens=(thinking_chars + 3) // 4 if thinking_chars else None,
        cache_read_tokens=u.get("cache_read_input_tokens"),
        cache_write_tokens=u.get("cache_creation_input_tokens"),
        raw=u or None,
    )


def _part(block: dict[str, Any]) -> ContentPart | None:
    kind = block.get("type")
    if kind == "text":
        return ContentPart(ContentKind.TEXT, text=block.get("text", ""))
    if kind == "tool_use":
        args = block.get("input")
        raw = json.dumps(args, ensure_ascii=False) if isinstance(args, dict) else None
        call = ToolCall(block["id"], block["name"], args if isinstance(args, dict) else {}, raw_arguments=raw)
        return ContentPart(ContentKind.TOOL_CALL, tool_call=call)
    if kind == "thinking":
        th = ThinkingData(block.get("thinking", ""), signature=block.get("signature"), provider=NAME)
        return ContentPart(ContentKind.THINKING, thinking=th)
    if kind == "redacted_thinking":
        th = ThinkingData("", signature=block.get("data"), redacted=True, provider=NAME)
        return ContentPart(ContentKind.REDACTED_THINKING, thinking=th)
    return None


def decode_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    parts = [p for p in (_part(b) for b in body.get("content") or []) if p is not None]
    stop = body.get("stop_reason") or "end_turn"
    return Response(
        id=body.get("id", ""),
        model=body.get("model", ""),
        provider=NAME,
        message=Message(Role.ASSISTANT, parts),
        finish_reason=FinishReason(_FINISH.get(stop, "other"), stop),
        usage=_usage(body.get("usage") or {}, parts),
        raw=body,
        rate_limit=rate_limit_from_headers(headers),
    )


class StreamDecoder:
    """Rebuilds the message from the block events; FINISH carries the whole response."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self._headers = headers
        self._message: dict[str, Any] = {}
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, str] = {}
        self._done = False

    def decode_stream_event(self, sse: SseEvent) -> list[StreamEvent]:
        try:
            data = json.loads(sse.data)
        except ValueError:
            return [StreamEvent(StreamEventType.PROVIDER_EVENT, raw=sse.data)]
        kind = data.get("type") or sse.event
        if kind == "message_start":
            self._message = dict(data.get("message") or {})
            self._message["usage"] = dict(self._message.get("usage") or {})
            return [StreamEvent(StreamEventType.STREAM_START, raw=data)]
        if kind == "content_block_start":
            idx, block = data["index"], dict(data.get("content_block") or {})
            self._blocks[idx] = block
            btype = block.get("type")
            if btype == "text":
                block["text"] = block.get("text", "")
                return [StreamEvent(StreamEventType.TEXT_START, text_id=str(idx))]
            if btype == "tool_use":
                self._json[idx] = ""
                call = ToolCall(block["id"], block["name"], {}, raw_arguments="")
                return [StreamEvent(StreamEventType.TOOL_CALL_START, tool_call=call)]
            if btype == "thinking":
                block["thinking"] = block.get("thinking", "")
                block["signature"] = block.get("signature", "")
                return [StreamEvent(StreamEventType.REASONING_START, text_id=str(idx))]
            return []
        if kind == "content_block_delta":
            idx, delta = data["index"], data.get("delta") or {}
            block = self._blocks.get(idx, {})
            dtype = delta.get("type")
            if dtype == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
                return [StreamEvent(StreamEventType.TEXT_DELTA, delta=delta.get("text", ""), text_id=str(idx))]
            if dtype == "input_json_delta":
                self._json[idx] = self._json.get(idx, "") + delta.get("partial_json", "")
                call = ToolCall(block.get("id", ""), block.get("name", ""), {}, raw_arguments=self._json[idx])
                return [
                    StreamEvent(StreamEventType.TOOL_CALL_DELTA, delta=delta.get("partial_json", ""), tool_call=call)
                ]
            if dtype == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
                return [
                    StreamEvent(
                        StreamEventType.REASONING_DELTA, reasoning_delta=delta.get("thinking", ""), text_id=str(idx)
                    )
                ]
            if dtype == "signature_delta":
                block["signature"] = block.get("signature", "") + delta.get("signature", "")
                return []
            return [StreamEvent(StreamEventType.PROVIDER_EVENT, raw=data)]
        if kind == "content_block_stop":
            idx = data["index"]
            block = self._blocks.get(idx, {})
            btype = block.get("type")
            if btype == "text":
                return [StreamEvent(StreamEventType.TEXT_END, text_id=str(idx))]
            if btype == "tool_use":
                raw = self._json.get(idx, "")
                args = parse_arguments(raw)
                block["input"] = args if isinstance(args, dict) else {}
                block["_raw"] = raw
                call = ToolCall(block["id"], block["name"], args, raw_arguments=raw)
                return [StreamEvent(StreamEventType.TOOL_CALL_END, tool_call=call)]
            if btype == "thinking":
                return [StreamEvent(StreamEventType.REASONING_END, text_id=str(idx))]
            return []
        if kind == "message_delta":
            delta = data.get("delta") or {}
            if "stop_reason" in delta:
                self._message["stop_reason"] = delta["stop_reason"]
            self._message.setdefault("usage", {}).update(data.get("usage") or {})
            return []
        if kind == "message_stop":
            self._done = True
            resp = self._response()
            return [
                StreamEvent(StreamEventType.FINISH, finish_reason=resp.finish_reason, usage=resp.usage, response=resp)
            ]
        if kind == "ping":
            return []
        if kind == "error":
            self._done = True
            err_body = data.get("error") or {}
            etype = err_body.get("type", "")
            cls = ServerError if etype in ("overloaded_error", "api_error") else StreamError
            err = cls(f"anthropic: {etype}: {err_body.get('message', '')}")
            return [StreamEvent(StreamEventType.ERROR, error=err, raw=data)]
        return [StreamEvent(StreamEventType.PROVIDER_EVENT, raw=data)]

    def _response(self) -> Response:
        body = dict(self._message)
        body["content"] = [self._blocks[i] for i in sorted(self._blocks)]
        resp = decode_response(body, self._headers)
        # keep the model's exact argument text (it may be invalid JSON, validated later)
        raws = {b.get("id"): b.get("_raw") for b in body["content"] if b.get("type") == "tool_use"}
        for call in resp.tool_calls:
            raw = raws.get(call.id)
            if raw is not None:
                call.raw_arguments = raw
                call.arguments = parse_arguments(raw)
        return resp

    def end(self) -> list[StreamEvent]:
        if self._done:
            return []
        return [StreamEvent(StreamEventType.ERROR, error=StreamError("anthropic: stream ended before message_stop"))]

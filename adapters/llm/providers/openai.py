"""OpenAI Responses API (``POST /v1/responses``): pure request/response codec.

Wire facts this module exists to get right (the ULS does not state them):
- a ``function_call`` item has an item ``id`` (``fc_...``) and a ``call_id``
  (``call_...``); tool results echo ``call_id``. Streamed argument deltas
  carry only ``item_id``, so the decoder maps item id -> call id from
  ``response.output_item.added``.
- with ``store: false`` (our default: the world journal is the transcript,
  not OpenAI's servers) reasoning items must be replayed with their
  ``encrypted_content``, requested via ``include``.
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
    Warning,
)
from ..wire import (
    arguments_json,
    content_string,
    parse_arguments,
    rate_limit_from_headers,
    system_text,
    tool_choice_of,
)

NAME = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
_REASONING_MODELS = ("o1", "o3", "o4", "gpt-5")


def auth_headers(api_key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"}


def _user_part(part: ContentPart) -> dict[str, Any]:
    if part.kind == ContentKind.TEXT:
        return {"type": "input_text", "text": part.text or ""}
    if part.kind == ContentKind.IMAGE and part.image is not None:
        img = part.image
        out: dict[str, Any] = {"type": "input_image", "image_url": img.url or img.data_uri()}
        if img.detail:
            out["detail"] = img.detail
        return out
    doc = part.document
    if part.kind == ContentKind.DOCUMENT and doc is not None and doc.data is not None:
        uri = f"data:{doc.media_type or 'application/pdf'};base64,{base64.b64encode(doc.data).decode()}"
        return {"type": "input_file", "filename": doc.file_name or "document.pdf", "file_data": uri}
    raise InvalidRequestError(f"openai: content kind {part.kind!r} is not supported in input", provider=NAME)


def _assistant_items(msg: Message, store: bool) -> list[dict[str, Any]]:
    """Assistant text collects into message items; calls and reasoning are top-level items."""
    items: list[dict[str, Any]] = []
    texts: list[dict[str, Any]] = []

    def flush() -> None:
        if texts:
            items.append({"type": "message", "role": "assistant", "content": list(texts)})
            texts.clear()

    for part in msg.content:
        if part.kind == ContentKind.TEXT:
            texts.append({"type": "output_text", "text": part.text or ""})
        elif part.tool_call is not None:
            flush()
            call = part.tool_call
            items.append(
                {"type": "function_call", "call_id": call.id, "name": call.name, "arguments": arguments_json(call)}
            )
        elif part.thinking is not None and part.thinking.provider in (None, NAME) and part.thinking.id:
            th = part.thinking
            if not store and not th.signature:
                continue  # an unpersisted id alone would 404; drop it instead
            flush()
            item: dict[str, Any] = {
                "type": "reasoning",
                "id": th.id,
                "summary": [{"type": "summary_text", "text": th.text}] if th.text else [],
            }
            if th.signature:
                item["encrypted_content"] = th.signature
            items.append(item)
    flush()
    return items


def _input_items(messages: list[Message], store: bool) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for msg in messages:
        if msg.role in (Role.SYSTEM, Role.DEVELOPER):
            continue  # carried in ``instructions``
        if msg.role == Role.TOOL:
            for part in msg.content:
                if part.tool_result is not None:
                    items.append(
                        {
                            "type": "function_call_output",
                            "call_id": part.tool_result.tool_call_id,
                            "output": content_string(part.tool_result.content),
                        }
                    )
            continue
        if msg.role == Role.USER:
            items.append({"type": "message", "role": "user", "content": [_user_part(p) for p in msg.content]})
            continue
        items.extend(_assistant_items(msg, store))
    return items


def encode_request(request: Request, stream: bool = False) -> HttpCall:
    opts = request.options_for(NAME)
    store = bool(opts.pop("store", False))
    body: dict[str, Any] = {"model": request.model, "input": _input_items(request.messages, store), "store": store}
    instructions = system_text(request.messages)
    if instructions is not None:
        body["instructions"] = instructions
    if request.tools:
        body["tools"] = [
            {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}
            for t in request.tools
        ]
        choice = tool_choice_of(request)
        assert choice is not None
        if choice.mode == ToolChoiceMode.NAMED:
            body["tool_choice"] = {"type": "function", "name": choice.tool_name}
        else:
            body["tool_choice"] = ToolChoiceMode(choice.mode).value
    if request.max_tokens is not None:
        body["max_output_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.reasoning_effort is not None:
        body["reasoning"] = {"effort": request.reasoning_effort}
    if request.metadata:
        body["metadata"] = dict(request.metadata)
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema":
        body["text"] = {
            "format": {"type": "json_schema", "name": fmt.name, "schema": fmt.json_schema, "strict": fmt.strict}
        }
    elif fmt is not None and fmt.type == "json":
        body["text"] = {"format": {"type": "json_object"}}
    wants_reasoning = request.reasoning_effort is not None or request.model.startswith(_REASONING_MODELS)
    if not store and wants_reasoning:
        body["include"] = ["reasoning.encrypted_content"]
    if stream:
        body["stream"] = True
    body.update(opts)
    warnings = []
    if request.stop_sequences:
        warnings.append(
            Warning("the Responses API has no stop sequences; stop_sequences was not sent", "unsupported_parameter")
        )
    return HttpCall("/responses", body, warnings=warnings)


def _usage(u: dict[str, Any] | None) -> Usage:
    u = u or {}
    inp, out = int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0)
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=int(u.get("total_tokens") or inp + out),
        reasoning_tokens=(u.get("output_tokens_details") or {}).get("reasoning_tokens"),
        cache_read_tokens=(u.get("input_tokens_details") or {}).get("cached_tokens"),
        raw=u or None,
    )


def _item_parts(item: dict[str, Any]) -> list[ContentPart]:
    kind = item.get("type")
    if kind == "message":
        parts = []
        for c in item.get("content") or []:
            if c.get("type") == "output_text":
                parts.append(ContentPart(ContentKind.TEXT, text=c.get("text", "")))
            elif c.get("type") == "refusal":
                parts.append(ContentPart(ContentKind.TEXT, text=c.get("refusal", "")))
        return parts
    if kind == "function_call":
        raw = item.get("arguments") or ""
        call = ToolCall(item["call_id"], item["name"], parse_arguments(raw), raw_arguments=raw)
        return [ContentPart(ContentKind.TOOL_CALL, tool_call=call)]
    if kind == "reasoning":
        text = "".join(s.get("text", "") for s in item.get("summary") or [])
        th = ThinkingData(text, signature=item.get("encrypted_content"), provider=NAME, id=item.get("id"))
        return [ContentPart(ContentKind.THINKING, thinking=th)]
    return []


def _finish(body: dict[str, Any], has_calls: bool) -> FinishReason:
    status = body.get("status") or "completed"
    if status == "completed":
        return FinishReason("tool_calls" if has_calls else "stop", status)
    if status == "incomplete":
        why = (body.get("incomplete_details") or {}).get("reason")
        return FinishReason("content_filter" if why == "content_filter" else "length", why or status)
    if status == "failed":
        return FinishReason("error", status)
    return FinishReason("other", status)


def decode_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    parts = [p for item in body.get("output") or [] for p in _item_parts(item)]
    msg = Message(Role.ASSISTANT, parts)
    has_calls = any(p.tool_call is not None for p in parts)
    return Response(
        id=body.get("id", ""),
        model=body.get("model", ""),
        provider=NAME,
        message=msg,
        finish_reason=_finish(body, has_calls),
        usage=_usage(body.get("usage")),
        raw=body,
        rate_limit=rate_limit_from_headers(headers),
    )


_IGNORED = {
    "response.in_progress",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.done",
    "response.function_call_arguments.done",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_part.done",
    "response.reasoning_summary_text.done",
}


class StreamDecoder:
    """Turns Responses SSE events into unified events; one instance per stream."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self._headers = headers
        self._call_ids: dict[str, ToolCall] = {}  # item id (fc_...) -> call (keyed by call_id)
        self._open_text: set[str] = set()
        self._open_reasoning: set[str] = set()
        self._done = False

    def decode_stream_event(self, sse: SseEvent) -> list[StreamEvent]:

        try:
            data = json.loads(sse.data)
        except ValueError:
            return [StreamEvent(StreamEventType.PROVIDER_EVENT, raw=sse.data)]
        kind = data.get("type") or sse.event  # the payload's type wins over the SSE name
        if kind == "response.created":
            r = data.get("response") or {}
            return [StreamEvent(StreamEventType.STREAM_START, raw={"id": r.get("id"), "model": r.get("model")})]
        if kind == "response.output_item.added":
            item = data.get("item") or {}
            if item.get("type") == "function_call":
                call = ToolCall(item["call_id"], item.get("name", ""), {}, raw_arguments="")
                self._call_ids[item.get("id", item["call_id"])] = call
                return [StreamEvent(StreamEventType.TOOL_CALL_START, tool_call=call, raw=data)]
            return []
        if kind == "response.output_text.delta":
            item_id = data.get("item_id", "")
            out = []
            if item_id not in self._open_text:
                self._open_text.add(item_id)
                out.append(StreamEvent(StreamEventType.TEXT_START, text_id=item_id))
            out.append(StreamEvent(StreamEventType.TEXT_DELTA, delta=data.get("delta", ""), text_id=item_id))
            return out
        if kind == "response.reasoning_summary_text.delta":
            item_id = data.get("item_id", "")
            out = []
            if item_id not in self._open_reasoning:
                self._open_reasoning.add(item_id)
                out.append(StreamEvent(StreamEventType.REASONING_START, text_id=item_id))
            out.append(
                StreamEvent(StreamEventType.REASONING_DELTA, reasoning_delta=data.get("delta", ""), text_id=item_id)
            )
            return out
        if kind == "response.function_call_arguments.delta":
            pending = self._call_ids.get(data.get("item_id", ""))
            if pending is None:
                return [StreamEvent(StreamEventType.PROVIDER_EVENT, raw=data)]
            pending.raw_arguments = (pending.raw_arguments or "") + data.get("delta", "")
            return [StreamEvent(StreamEventType.TOOL_CALL_DELTA, delta=data.get("delta", ""), tool_call=pending)]
        if kind == "response.output_item.done":
            item = data.get("item") or {}
            itype = item.get("type")
            if itype == "message":
                self._open_text.discard(item.get("id", ""))
                return [StreamEvent(StreamEventType.TEXT_END, text_id=item.get("id"))]
            if itype == "function_call":
                raw = item.get("arguments") or ""
                call = ToolCall(item["call_id"], item.get("name", ""), parse_arguments(raw), raw_arguments=raw)
                return [StreamEvent(StreamEventType.TOOL_CALL_END, tool_call=call)]
            if itype == "reasoning":
                return [StreamEvent(StreamEventType.REASONING_END, text_id=item.get("id"))]
            return []
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            self._done = True
            resp = decode_response(data.get("response") or {}, self._headers)
            return [
                StreamEvent(
                    StreamEventType.FINISH, finish_reason=resp.finish_reason, usage=resp.usage, response=resp, raw=data
                )
            ]
        if kind == "error":
            self._done = True
            err = StreamError(f"openai: {data.get('code') or ''} {data.get('message') or ''}".strip())
            return [StreamEvent(StreamEventType.ERROR, error=err, raw=data)]
        if kind in _IGNORED:
            return []
        return [StreamEvent(StreamEventType.PROVIDER_EVENT, raw=data)]

    def end(self) -> list[StreamEvent]:
        if self._done:
            return []
        err = StreamError("openai: stream ended before response.completed")
        return [StreamEvent(StreamEventType.ERROR, error=err)]

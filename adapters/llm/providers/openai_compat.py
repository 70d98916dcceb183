"""OpenAI-compatible Chat Completions (``POST /v1/chat/completions``) for
third-party servers (vLLM, Ollama, OpenRouter...). Never used for OpenAI
itself, which goes through the Responses API (ULS 2.7).

Streamed tool calls are keyed by ``index``; the ``id`` comes only on the
first delta of each call. The stream ends with ``data: [DONE]``.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import StreamError
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
    ToolCall,
    ToolChoiceMode,
    Usage,
)
from ..wire import (
    arguments_json,
    content_string,
    parse_arguments,
    rate_limit_from_headers,
    tool_choice_of,
)

NAME = "openai_compatible"
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def auth_headers(api_key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def _user_content(msg: Message) -> str | list[dict[str, Any]]:
    if all(p.kind == ContentKind.TEXT for p in msg.content):
        return msg.text
    out: list[dict[str, Any]] = []
    for p in msg.content:
        if p.kind == ContentKind.TEXT:
            out.append({"type": "text", "text": p.text or ""})
        elif p.image is not None:
            out.append({"type": "image_url", "image_url": {"url": p.image.url or p.image.data_uri()}})
    return out


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role in (Role.SYSTEM, Role.DEVELOPER):
            out.append({"role": "system", "content": m.text})
        elif m.role == Role.USER:
            out.append({"role": "user", "content": _user_content(m)})
        elif m.role == Role.TOOL:
            for p in m.content:
                if p.tool_result is not None:
                    out.append(
                        {
                            "role": "tool",
                            "tool_call_id": p.tool_result.tool_call_id,
                            "content": content_string(p.tool_result.content),
                        }
                    )
        else:
            item: dict[str, Any] = {"role": "assistant", "content": m.text or None}
            calls = [p.tool_call for p in m.content if p.tool_call is not None]
            if calls:
                item["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": arguments_json(c)}}
                    for c in calls
                ]
            out.append(item)
    return out


def encode_request(request: Request, stream: bool = False) -> HttpCall:
    body: dict[str, Any] = {"model": request.model, "messages": _messages(request.messages)}
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in request.tools
        ]
        choice = tool_choice_of(request)
        assert choice is not None
        if choice.mode == ToolChoiceMode.NAMED:
            body["tool_choice"] = {"type": "function", "function": {"name": choice.tool_name}}
        else:
            body["tool_choice"] = ToolChoiceMode(choice.mode).value
    for key, value in (
        ("max_tokens", request.max_tokens),
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("stop", request.stop_sequences),
        ("reasoning_effort", request.reasoning_effort),
    ):
        if value is not None:
            body[key] = value
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": fmt.name, "schema": fmt.json_schema, "strict": fmt.strict},
        }
    elif fmt is not None and fmt.type == "json":
        body["response_format"] = {"type": "json_object"}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(request.options_for(NAME))
    return HttpCall("/chat/completions", body)


def _usage(u: dict[str, Any] | None) -> Usage:
    u = u or {}
    inp, out = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=int(u.get("total_tokens") or inp + out),
        reasoning_tokens=(u.get("completion_tokens_details") or {}).get("reasoning_tokens"),
        cache_read_tokens=(u.get("prompt_tokens_details") or {}).get("cached_tokens"),
        raw=u or None,
    )


def _response(
    rid: str,
    model: str,
    text: str,
    calls: list[ToolCall],
    finish: str | None,
    usage: Any,
    raw: Any,
    headers: dict[str, str] | None,
) -> Response:
    parts = [ContentPart(ContentKind.TEXT, text=text)] if text else []
    parts += [ContentPart(ContentKind.TOOL_CALL, tool_call=c) for c in calls]
    finish = finish or "stop"
    return Response(
        rid,
        model,
        NAME,
        Message(Role.ASSISTANT, parts),
        FinishReason(_FINISH.get(finish, "other"), finish),
        _usage(usage),
        raw,
        rate_limit=rate_limit_from_headers(headers),
    )


def decode_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    choice = (body.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    calls = []
    for c in msg.get("tool_calls") or []:
        raw = (c.get("function") or {}).get("arguments") or ""
        calls.append(ToolCall(c["id"], c["function"]["name"], parse_arguments(raw), raw_arguments=raw))
    return _response(
        body.get("id", ""),
        body.get("model", ""),
        msg.get("content") or "",
        calls,
        choice.get("finish_reason"),
        body.get("usage"),
        body,
        headers,
    )


class StreamDecoder:
    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self._headers = headers
        self._started = False
        self._text = ""
        self._text_open = False
        self._calls: dict[int, ToolCall] = {}
        self._finish: str | None = None
        self._usage: Any = None
        self._id = ""
        self._model = ""
        self._done = False

    def decode_stream_event(self, sse: SseEvent) -> list[StreamEvent]:
        if sse.data.strip() == "[DONE]":
            return self._finish_events()
        try:
            data = json.loads(sse.data)
        except ValueError:
            return [StreamEvent(StreamEventType.PROVIDER_EVENT, raw=sse.data)]
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(StreamEvent(StreamEventType.STREAM_START, raw=data))
        self._id, self._model = data.get("id", self._id), data.get("model", self._model)
        if data.get("usage"):
            self._usage = data["usage"]
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if not self._text_open:
                    self._text_open = True
                    out.append(StreamEvent(StreamEventType.TEXT_START, text_id="text"))
                self._text += delta["content"]
                out.append(StreamEvent(StreamEventType.TEXT_DELTA, delta=delta["content"], text_id="text"))
            for tc in delta.get("tool_calls") or []:
                idx = tc.get("index", 0)
                fn = tc.get("function") or {}
                call = self._calls.get(idx)
                if call is None:
                    call = self._calls[idx] = ToolCall(tc.get("id", ""), fn.get("name", ""), {}, raw_arguments="")
                    out.append(StreamEvent(StreamEventType.TOOL_CALL_START, tool_call=call))
                if fn.get("arguments"):
                    call.raw_arguments = (call.raw_arguments or "") + fn["arguments"]
                    out.append(StreamEvent(StreamEventType.TOOL_CALL_DELTA, delta=fn["arguments"], tool_call=call))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _finish_events(self) -> list[StreamEvent]:
        self._done = True
        out = []
        if self._text_open:
            out.append(StreamEvent(StreamEventType.TEXT_END, text_id="text"))
        calls = []
        for idx in sorted(self._calls):
            c = self._calls[idx]
            c.arguments = parse_arguments(c.raw_arguments)
            calls.append(c)
            out.append(StreamEvent(StreamEventType.TOOL_CALL_END, tool_call=c))
        resp = _response(self._id, self._model, self._text, calls, self._finish, self._usage, None, self._headers)
        out.append(
            StreamEvent(StreamEventType.FINISH, finish_reason=resp.finish_reason, usage=resp.usage, response=resp)
        )
        return out

    def end(self) -> list[StreamEvent]:
        if self._done:
            return []
        return [StreamEvent(StreamEventType.ERROR, error=StreamError("openai_compatible: stream ended before [DONE]"))]

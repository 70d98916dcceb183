"""StreamAccumulator (ULS 4.4): events in, the ``Response`` that ``complete()``
would have returned out.

Providers' FINISH carries the decoder's full response (including signatures
and encrypted reasoning that no delta event exposes); when it is present it
wins. ``partial_response`` is built from the deltas seen so far.
"""

from __future__ import annotations

from .types import (
    ContentKind,
    ContentPart,
    FinishReason,
    Message,
    Response,
    Role,
    StreamEvent,
    StreamEventType,
    ThinkingData,
    ToolCall,
    Usage,
)
from .wire import parse_arguments


class StreamAccumulator:
    def __init__(self) -> None:
        self._text: dict[str, str] = {}
        self._reasoning: dict[str, str] = {}
        self._calls: dict[str, ToolCall] = {}
        self._final: Response | None = None
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None

    def process(self, event: StreamEvent) -> None:
        t = event.type
        if t == StreamEventType.TEXT_DELTA:
            key = event.text_id or ""
            self._text[key] = self._text.get(key, "") + (event.delta or "")
        elif t == StreamEventType.REASONING_DELTA:
            key = event.text_id or ""
            self._reasoning[key] = self._reasoning.get(key, "") + (event.reasoning_delta or "")
        elif t in (StreamEventType.TOOL_CALL_START, StreamEventType.TOOL_CALL_DELTA) and event.tool_call:
            c = event.tool_call
            self._calls.setdefault(c.id, ToolCall(c.id, c.name, {}, raw_arguments=""))
            if t == StreamEventType.TOOL_CALL_DELTA:
                prev = self._calls[c.id]
                prev.raw_arguments = (prev.raw_arguments or "") + (event.delta or "")
        elif t == StreamEventType.TOOL_CALL_END and event.tool_call:
            self._calls[event.tool_call.id] = event.tool_call
        elif t == StreamEventType.FINISH:
            self._final = event.response
            self._finish = event.finish_reason
            self._usage = event.usage

    @property
    def partial_response(self) -> Response:
        parts = [ContentPart(ContentKind.THINKING, thinking=ThinkingData(r)) for r in self._reasoning.values()]
        parts += [ContentPart(ContentKind.TEXT, text=t) for t in self._text.values()]
        for c in self._calls.values():
            if not c.arguments and c.raw_arguments:
                c = ToolCall(c.id, c.name, parse_arguments(c.raw_arguments), c.raw_arguments, c.type, c.signature)
            parts.append(ContentPart(ContentKind.TOOL_CALL, tool_call=c))
        finish = self._finish or FinishReason("tool_calls" if self._calls else "other")
        return Response("", "", "", Message(Role.ASSISTANT, parts), finish, self._usage or Usage())

    def response(self) -> Response:
        return self._final if self._final is not None else self.partial_response

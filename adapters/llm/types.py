"""The provider-neutral data model of the unified LLM spec (ULS section 3).

Names follow the spec exactly. A few fields are additions the spec leaves out
but the wire needs (marked "wire:"): they carry provider state that must be
echoed back verbatim on the next request.
"""

from __future__ import annotations

import base64
import enum
import mimetypes
import os
from dataclasses import dataclass, field
from typing import Any


class Role(str, enum.Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    DEVELOPER = "developer"


class ContentKind(str, enum.Enum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    DOCUMENT = "document"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    THINKING = "thinking"
    REDACTED_THINKING = "redacted_thinking"


@dataclass
class ImageData:
    """Exactly one of ``url`` or ``data``; a local path in ``url`` is inlined."""

    url: str | None = None
    data: bytes | None = None
    media_type: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise ValueError("ImageData needs exactly one of url or data")
        if self.url is not None and self.url.startswith(("/", "./", "~")):
            # local paths never reach a provider: they are read and inlined here
            path = os.path.expanduser(self.url)
            with open(path, "rb") as f:
                self.data = f.read()
            self.media_type = self.media_type or mimetypes.guess_type(path)[0] or "image/png"
            self.url = None
        if self.data is not None and self.media_type is None:
            self.media_type = "image/png"

    def b64(self) -> str:
        assert self.data is not None
        return base64.b64encode(self.data).decode("ascii")

    def data_uri(self) -> str:
        return f"data:{self.media_type};base64,{self.b64()}"


@dataclass
class AudioData:
    url: str | None = None
    data: bytes | None = None
    media_type: str | None = None


@dataclass
class DocumentData:
    url: str | None = None
    data: bytes | None = None
    media_type: str | None = None
    file_name: str | None = None


@dataclass
class ToolCall:
    """A tool call requested by the model. ``arguments`` is parsed JSON.

    ``raw_arguments`` keeps the exact string the model produced (it may not be
    valid JSON); ``signature`` is wire: Gemini's ``thoughtSignature``, echoed
    verbatim on the next request.
    """

    id: str
    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    raw_arguments: str | None = None
    type: str = "function"
    signature: str | None = None


ToolCallData = ToolCall


@dataclass
class ToolResult:
    tool_call_id: str
    content: Any
    is_error: bool = False
    image_data: bytes | None = None
    image_media_type: str | None = None


ToolResultData = ToolResult


@dataclass
class ThinkingData:
    """Reasoning content. ``signature`` must round-trip verbatim.

    wire: ``provider`` names who produced it (signatures are stripped when the
    history is sent to another provider); ``id`` is the OpenAI ``rs_`` item id,
    whose ``encrypted_content`` travels in ``signature``.
    """

    text: str = ""
    signature: str | None = None
    redacted: bool = False
    provider: str | None = None
    id: str | None = None


@dataclass
class ContentPart:
    kind: ContentKind | str
    text: str | None = None
    image: ImageData | None = None
    audio: AudioData | None = None
    document: DocumentData | None = None
    tool_call: ToolCall | None = None
    tool_result: ToolResult | None = None
    thinking: ThinkingData | None = None


@dataclass
class Message:
    role: Role
    content: list[ContentPart]
    name: str | None = None
    tool_call_id: str | None = None

    @classmethod
    def system(cls, text: str) -> Message:
        return cls(Role.SYSTEM, [ContentPart(ContentKind.TEXT, text=text)])

    @classmethod
    def developer(cls, text: str) -> Message:
        return cls(Role.DEVELOPER, [ContentPart(ContentKind.TEXT, text=text)])

    @classmethod
    def user(cls, text: str) -> Message:
        return cls(Role.USER, [ContentPart(ContentKind.TEXT, text=text)])

    @classmethod
    def assistant(cls, text: str) -> Message:
        return cls(Role.ASSISTANT, [ContentPart(ContentKind.TEXT, text=text)])

    @classmethod
    def tool_result(cls, tool_call_id: str, content: Any, is_error: bool = False) -> Message:
        result = ToolResult(tool_call_id, content, is_error)
        return cls(
            Role.TOOL,
            [ContentPart(ContentKind.TOOL_RESULT, tool_result=result)],
            tool_call_id=tool_call_id,
        )

    @property
    def text(self) -> str:
        return "".join(p.text or "" for p in self.content if p.kind == ContentKind.TEXT)


class ToolChoiceMode(str, enum.Enum):
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"
    NAMED = "named"


@dataclass
class ToolChoice:
    mode: ToolChoiceMode | str = ToolChoiceMode.AUTO
    tool_name: str | None = None


@dataclass
class ToolDefinition:
    """What a provider is told about a tool (``Tool`` adds ``execute``)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass
class ResponseFormat:
    type: str = "text"  # text | json | json_schema
    json_schema: dict[str, Any] | None = None
    strict: bool = False
    name: str = "output"


@dataclass
class Request:
    model: str
    messages: list[Message]
    provider: str | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop_sequences: list[str] | None = None
    reasoning_effort: str | None = None
    metadata: dict[str, str] | None = None
    provider_options: dict[str, Any] | None = None

    def options_for(self, provider: str) -> dict[str, Any]:
        """The ``provider_options`` entry of one provider (each takes only its own)."""
        return dict((self.provider_options or {}).get(provider) or {})


@dataclass
class FinishReason:
    reason: str  # stop | length | tool_calls | content_filter | error | other
    raw: str | None = None


def _add_opt(a: int | None, b: int | None) -> int | None:
    if a is None and b is None:
        return None
    return (a or 0) + (b or 0)


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    raw: dict[str, Any] | None = None

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total_tokens + other.total_tokens,
            _add_opt(self.reasoning_tokens, other.reasoning_tokens),
            _add_opt(self.cache_read_tokens, other.cache_read_tokens),
            _add_opt(self.cache_write_tokens, other.cache_write_tokens),
        )


@dataclass
class Warning:
    message: str
    code: str | None = None


@dataclass
class RateLimitInfo:
    requests_remaining: int | None = None
    requests_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_limit: int | None = None
    reset_at: str | None = None


@dataclass
class Response:
    id: str
    model: str
    provider: str
    message: Message
    finish_reason: FinishReason
    usage: Usage = field(default_factory=Usage)
    raw: Any = None
    warnings: list[Warning] = field(default_factory=list)
    rate_limit: RateLimitInfo | None = None

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [p.tool_call for p in self.message.content if p.tool_call is not None]

    @property
    def reasoning(self) -> str | None:
        parts = [p.thinking.text for p in self.message.content if p.thinking is not None and not p.thinking.redacted]
        return "".join(parts) if parts else None


class StreamEventType(str, enum.Enum):
    STREAM_START = "stream_start"
    TEXT_START = "text_start"
    TEXT_DELTA = "text_delta"
    TEXT_END = "text_end"
    REASONING_START = "reasoning_start"
    REASONING_DELTA = "reasoning_delta"
    REASONING_END = "reasoning_end"
    TOOL_CALL_START = "tool_call_start"
    TOOL_CALL_DELTA = "tool_call_delta"
    TOOL_CALL_END = "tool_call_end"
    FINISH = "finish"
    ERROR = "error"
    PROVIDER_EVENT = "provider_event"
    # emitted by the high-level stream() between tool-loop steps
    STEP_FINISH = "step_finish"


@dataclass
class StreamEvent:
    type: StreamEventType | str
    delta: str | None = None
    text_id: str | None = None
    reasoning_delta: str | None = None
    tool_call: ToolCall | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    response: Response | None = None
    error: Exception | None = None
    raw: Any = None

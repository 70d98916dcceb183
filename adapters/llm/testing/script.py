"""What a twin is told to do: a script of turns, each checking the incoming
request and naming a reply. Provider-neutral; ``wire.py`` renders replies
in each provider's exact shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TwinRequest:
    """One request as the twin saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    body: Any

    @property
    def stream(self) -> bool:
        return bool(isinstance(self.body, dict) and self.body.get("stream")) or "streamGenerateContent" in self.path


@dataclass
class ScriptedCall:
    """A tool call the scripted model makes. ``arguments`` is the raw JSON
    text the model emits (it may be malformed on purpose)."""

    name: str
    arguments: str = "{}"
    id: str | None = None
    signature: str | None = None  # Gemini thoughtSignature


@dataclass
class ModelTurn:
    """What the model says in one turn, streamed or not, on any provider.

    ``reasoning_signature`` is Anthropic's thinking signature, OpenAI's
    reasoning ``encrypted_content`` and Gemini's thought-part signature.
    ``extra_events`` are (event name, payload) pairs inserted into a stream
    (e.g. unknown event types).
    """

    text: str | None = None
    chunks: list[str] | None = None
    tool_calls: list[ScriptedCall] = field(default_factory=list)
    reasoning: str | None = None
    reasoning_signature: str | None = None
    redacted_reasoning: str | None = None
    input_tokens: int = 10
    output_tokens: int = 5
    reasoning_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    finish: str | None = None  # the provider's native finish value; inferred if None
    extra_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def text_chunks(self) -> list[str]:
        if self.chunks is not None:
            return self.chunks
        if not self.text:
            return []
        step = max(1, len(self.text) // 3)
        return [self.text[i : i + step] for i in range(0, len(self.text), step)]


@dataclass
class ErrorReply:
    """An HTTP error in the provider's error-body format. ``{api_key}`` in
    the message is replaced by the key the request carried (real APIs echo
    it, masked or not)."""

    status: int
    message: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)
    code: str | None = None


@dataclass
class RawReply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Faults:
    """Fault injection for streamed replies.

    chunk_sizes: write the SSE bytes in pieces of these sizes (cycled), each
    its own HTTP chunk, so frames split at arbitrary byte boundaries.
    drop_after / stall_after: after that many SSE events, close the socket
    abruptly / stop writing and hold the connection until the client leaves.
    """

    chunk_sizes: list[int] | None = None
    crlf: bool = False
    heartbeat: bool = False
    drop_after: int | None = None
    stall_after: int | None = None


Expect = Callable[[TwinRequest], None]


Responder = Callable[[TwinRequest], "ModelTurn | ErrorReply | RawReply"]


@dataclass
class Turn:
    """One scripted exchange. ``reply`` may be a ``Responder``: a function of the
    request, for models that react to what they are sent (tool results)."""

    reply: ModelTurn | ErrorReply | RawReply | Responder
    expect: Expect | None = None
    faults: Faults = field(default_factory=Faults)

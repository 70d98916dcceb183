"""The sans-IO SSE parser, fed every way a socket can split its bytes."""

from __future__ import annotations

from aos.adapters.llm.sse import SseEvent, SseParser

STREAM = (
    ": heartbeat\n"
    "event: message_start\n"
    'data: {"a": "h\u00e9llo \u2603"}\n'
    "\n"
    "retry: 3000\n"
    "id: 7\n"
    "data: line one\n"
    "data: line two\n"
    "\n"
    "event: unknown_thing\n"
    "data: {}\n"
    "\n"
).encode("utf-8")

EXPECTED = [
    SseEvent("message_start", '{"a": "h\u00e9llo \u2603"}'),
    SseEvent(None, "line one\nline two", id="7", retry=3000),
    SseEvent("unknown_thing", "{}", id="7"),
]


def _parse(pieces: list[bytes]) -> list[SseEvent]:
    parser = SseParser()
    out: list[SseEvent] = []
    for p in pieces:
        out += parser.feed(p)
    return out


def test_whole_stream() -> None:
    """One read yields every event, comments skipped, multi-line data joined."""
    assert _parse([STREAM]) == EXPECTED


def test_every_two_way_split() -> None:
    """Splitting the bytes at any offset (including inside UTF-8 sequences) changes nothing."""
    for i in range(len(STREAM) + 1):
        assert _parse([STREAM[:i], STREAM[i:]]) == EXPECTED, i


def test_byte_at_a_time_with_crlf() -> None:
    """CRLF line ends fed one byte at a time, so CR and LF arrive in separate reads."""
    crlf = STREAM.replace(b"\n", b"\r\n")
    assert _parse([crlf[i : i + 1] for i in range(len(crlf))]) == EXPECTED


def test_bare_cr_line_ends() -> None:
    """Old-Mac CR-only line ends are line ends too."""
    assert _parse([STREAM.replace(b"\n", b"\r")]) == EXPECTED


def test_unterminated_event_is_not_emitted() -> None:
    """An event without its closing blank line is incomplete and never surfaces."""
    parser = SseParser()
    assert parser.feed(b"data: partial\n") == []
    assert parser.close() == []

"""A sans-IO Server-Sent Events parser (WHATWG event-stream rules).

Feed it bytes in whatever pieces the socket delivers; it returns the complete
events those bytes finished. It handles LF, CR and CRLF line ends (a CRLF
split across two reads included), multi-line ``data:``, ``event:``, ``id:``,
``retry:`` and ``:`` comment lines, and UTF-8 sequences split across reads
(decoding happens per line, after the line is whole).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class SseEvent:
    event: str | None
    data: str
    id: str | None = None
    retry: int | None = None


class SseParser:
    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip_lf = False  # the last read ended on CR: a following LF belongs to it
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        out: list[SseEvent] = []
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        self._buf += chunk
        start = 0
        for m in _EOL.finditer(self._buf):
            event = self._line(bytes(self._buf[start : m.start()]).decode("utf-8", errors="replace"))
            if event is not None:
                out.append(event)
            start = m.end()
        if start and self._buf[start - 1] == 0x0D:
            self._skip_lf = True  # a lone CR at the end: its LF may be in the next read
        del self._buf[:start]
        return out

    def close(self) -> list[SseEvent]:
        """End of stream: a trailing event without its blank line is dropped (per spec)."""
        self._buf.clear()
        return []

    def _line(self, line: str) -> SseEvent | None:
        if line == "":
            if not self._data and self._event is None:
                return None
            event = SseEvent(self._event, "\n".join(self._data), self._id, self._retry)
            self._event, self._data, self._retry = None, [], None
            return event
        if line.startswith(":"):
            return None  # comment, e.g. a heartbeat
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

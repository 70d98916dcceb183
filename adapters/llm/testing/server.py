"""The twin server: HTTP/1.1 on a real 127.0.0.1 socket, in its own thread.

It runs its own asyncio loop so a test's client loop and the server never
share a scheduler (the server notices a client disconnect on its own).
Requests are checked against the script in order; a failed ``expect`` is
recorded and answered with a 400, and ``assert_done()`` re-raises it in the
test. Keep-alive is supported; streamed replies use chunked encoding, as
the real APIs do, so a dropped connection is a broken chunked body.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import wire
from .script import ErrorReply, Faults, ModelTurn, RawReply, Turn, TwinRequest

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class ProviderTwin:
    """A stand-in for one provider. Use as a context manager or start()/stop()."""

    def __init__(self, provider: str, api_key: str = "test-key-0123456789") -> None:
        self.provider = provider
        self.api_key = api_key
        self.wire = wire.for_provider(provider)
        self.requests: list[TwinRequest] = []
        self.failures: list[str] = []
        self.disconnects = 0
        self._turns: deque[Turn] = deque()
        self._repeat: Turn | None = None
        self.record = True
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    # -- script -------------------------------------------------------------------------------
    def script(self, *turns: Turn | ModelTurn | ErrorReply | RawReply) -> ProviderTwin:
        with self._cond:
            for t in turns:
                self._turns.append(t if isinstance(t, Turn) else Turn(t))
        return self

    def repeat(self, turn: Turn | ModelTurn) -> ProviderTwin:
        """Answer every request after the script with ``turn`` (benchmarks, soak tests)."""
        self._repeat = turn if isinstance(turn, Turn) else Turn(turn)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.wire.base_path}"

    def adapter(self, **kwargs: Any) -> Any:
        """A real adapter of this provider pointed at the twin."""
        from .. import adapter

        classes = {
            "openai": adapter.OpenAIAdapter,
            "anthropic": adapter.AnthropicAdapter,
            "gemini": adapter.GeminiAdapter,
            "openai_compatible": adapter.OpenAICompatibleAdapter,
        }
        return classes[self.provider](self.api_key, self.base_url, **kwargs)

    def client(self, **kwargs: Any) -> Any:
        from ..client import Client

        return Client({self.provider: self.adapter(**kwargs)})

    def assert_done(self) -> None:
        """Every expect passed and the whole script was consumed."""
        with self._cond:
            if self.failures:
                raise AssertionError("twin expectations failed:\n" + "\n".join(self.failures))
            if self._turns:
                raise AssertionError(f"twin script not consumed: {len(self._turns)} turn(s) left")

    def wait_for(self, predicate: Callable[[ProviderTwin], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate(twin)`` holds (True) or ``timeout`` passes (False)."""
        with self._cond:
            return bool(self._cond.wait_for(lambda: predicate(self), timeout))

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> ProviderTwin:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name=f"twin-{self.provider}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("twin did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    def __enter__(self) -> ProviderTwin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    # -- HTTP ---------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                req = await self._read_request(reader)
                if req is None:
                    return
                keep = await self._handle(req, reader, writer)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        except Exception:  # noqa: BLE001 - a twin bug must show up in the test, not vanish
            with self._cond:
                self.failures.append("twin crashed:\n" + traceback.format_exc())
                self._cond.notify_all()
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, asyncio.CancelledError):
                pass

    async def _read_request(self, reader: asyncio.StreamReader) -> TwinRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        url = urlsplit(target)
        return TwinRequest(method, url.path, dict(parse_qsl(url.query)), headers, raw, body)

    async def _handle(self, req: TwinRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        with self._cond:
            if self.record:
                self.requests.append(req)
            self._cond.notify_all()
        key = self.wire.key_of(req)
        route_error = self.wire.check_route(req)
        if route_error is not None:
            return await self._send_error(writer, ErrorReply(404, route_error), key)
        if key != self.api_key:
            return await self._send_error(writer, self.wire.auth_error(key), key)
        with self._cond:
            turn = self._turns.popleft() if self._turns else self._repeat
            if turn is None:
                self.failures.append(f"unscripted request {req.method} {req.path}")
        if turn is None:
            return await self._send_error(writer, ErrorReply(500, "twin: script exhausted"), key)
        if turn.expect is not None:
            try:
                turn.expect(req)
            except AssertionError as e:
                with self._cond:
                    self.failures.append(f"request {len(self.requests)} ({req.path}): {e}\n{traceback.format_exc()}")
                return await self._send_error(writer, ErrorReply(400, f"twin expectation failed: {e}"), key)
        reply = turn.reply
        if callable(reply):
            # a reactive turn: the reply is computed from the request (e.g. from tool results)
            reply = reply(req)
        if isinstance(reply, ErrorReply):
            return await self._send_error(writer, reply, key)
        if isinstance(reply, RawReply):
            await self._send(writer, reply.status, reply.headers, reply.body)
            return True
        if not req.stream and turn.faults.stall_after is not None:
            await self._await_hangup(reader)
            return False
        if req.stream:
            return await self._send_stream(reader, writer, self.wire.render_sse(reply, req), reply, turn.faults)
        await self._send(
            writer,
            200,
            {"content-type": "application/json", **reply.headers},
            _dumps(self.wire.render_json(reply, req)),
        )
        return True

    async def _send(self, writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes) -> None:
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
        for k, v in {**headers, "content-length": str(len(body))}.items():
            head += f"{k}: {v}\r\n"
        writer.write(head.encode("latin-1") + b"\r\n" + body)
        await writer.drain()

    async def _send_error(self, writer: asyncio.StreamWriter, err: ErrorReply, key: str | None) -> bool:
        message = err.message.replace("{api_key}", key or "")
        body = self.wire.error_body(err.status, message, err.code)
        await self._send(writer, err.status, {"content-type": "application/json", **err.headers}, _dumps(body))
        return True

    async def _send_stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        frames: list[bytes],
        reply: ModelTurn,
        faults: Faults,
    ) -> bool:
        head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n"
        for k, v in reply.headers.items():
            head += f"{k}: {v}\r\n"
        writer.write(head.encode("latin-1") + b"\r\n")
        cut = faults.drop_after if faults.drop_after is not None else faults.stall_after
        body_frames = frames if cut is None else frames[:cut]
        if faults.heartbeat:
            body_frames = [f for frame in body_frames for f in (b": ping\n\n", frame)]
        if faults.crlf:
            body_frames = [f.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for f in body_frames]
        # like a real server, flush each event as it is produced, unless told to cut elsewhere
        pieces = _pieces(b"".join(body_frames), faults.chunk_sizes) if faults.chunk_sizes else body_frames
        try:
            for piece in pieces:
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
        except ConnectionError:
            self._note_disconnect()  # the client left mid-stream (abort, timeout)
            return False
        if faults.drop_after is not None:
            writer.transport.abort()  # no terminating chunk: a broken body, as when a proxy dies
            return False
        if faults.stall_after is not None:
            await self._await_hangup(reader)
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _await_hangup(self, reader: asyncio.StreamReader) -> None:
        """Hold the connection open until the client gives up, and record that it did."""
        try:
            await asyncio.wait_for(reader.read(), 60)
        except (TimeoutError, ConnectionError):
            pass
        self._note_disconnect()

    def _note_disconnect(self) -> None:
        with self._cond:
            self.disconnects += 1
            self._cond.notify_all()


def _pieces(data: bytes, sizes: list[int]) -> list[bytes]:
    out, i, k = [], 0, 0
    while i < len(data):
        n = max(1, sizes[k % len(sizes)])
        out.append(data[i : i + n])
        i, k = i + n, k + 1
    return out


def _dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")

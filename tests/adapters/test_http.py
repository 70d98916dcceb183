"""http.request: real requests to a real HTTP server on 127.0.0.1, under a host allow list, with secrets scrubbed."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aos.adapters.http import HttpAdapter

HTTP = HttpAdapter()
API_KEY = "sk-live-0123456789abcdef"


class Server:
    def __init__(self) -> None:
        self.hits: list[dict[str, Any]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.hits.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
                path = self.path
                if path == "/hello":
                    self._reply(200, b"hello", {"X-Test": "1", "Content-Type": "text/plain"})
                elif path == "/echo":
                    auth = self.headers.get("Authorization", "")
                    doc = {"method": self.command, "body": body.decode(), "headers": dict(self.headers)}
                    self._reply(200, json.dumps(doc).encode(), {"X-Echo-Auth": auth})
                elif path == "/big":
                    self._reply(200, b"y" * 3_000_000)
                elif path == "/binary":
                    self._reply(200, b"\x00\xff\x10")
                elif path == "/fail":
                    self._reply(500, b"broken")
                elif path.startswith("/redirect?to="):
                    self._reply(302, b"", {"Location": path.split("=", 1)[1]})
                elif path == "/stall":
                    server.release.wait(10)  # never answers while the test runs
                    self._reply(200, b"late")
                else:
                    self._reply(404, b"no")

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    try:
        yield s
    finally:
        s.close()


def grant_for(s: Server) -> dict[str, Any]:
    return {"hosts": [f"127.0.0.1:{s.port}"]}


def test_get(server, run_effect):
    """A GET to an allowed host returns status, lower-cased headers, the body as text, and the final url."""
    r = run_effect(HTTP, "http.request", {"method": "GET", "url": server.base + "/hello"}, grant_for(server))
    assert r.status == "ok"
    assert r.payload["status"] == 200 and r.payload["body"] == "hello" and r.payload["truncated"] is False
    assert ["x-test", "1"] in r.payload["headers"]
    assert r.payload["url"] == server.base + "/hello"
    assert server.hits[0]["method"] == "GET"
    json.dumps(r.to_dict())  # journal-friendly


def test_post_text_and_bytes(server, run_effect):
    """POST sends the body (text or bytes) and headers as given; encoding 'bytes' returns the raw response."""
    g = grant_for(server)
    r = run_effect(HTTP, "http.request", {"method": "POST", "url": server.base + "/echo", "body": "ping", "headers": {"X-A": "b"}}, g)
    doc = json.loads(r.payload["body"])
    assert doc["method"] == "POST" and doc["body"] == "ping" and doc["headers"]["X-A"] == "b"
    run_effect(HTTP, "http.request", {"method": "PUT", "url": server.base + "/echo", "body": b"\x01\x02"}, g)
    assert server.hits[-1]["body"] == b"\x01\x02" and server.hits[-1]["method"] == "PUT"
    r = run_effect(HTTP, "http.request", {"url": server.base + "/binary", "encoding": "bytes"}, g)
    assert r.payload["body"] == b"\x00\xff\x10"


def test_http_error_status_is_error_receipt(server, run_effect):
    """A 4xx/5xx answer is an http_status error that still carries status and body."""
    r = run_effect(HTTP, "http.request", {"url": server.base + "/fail"}, grant_for(server))
    assert (r.status, r.error) == ("error", "http_status")
    assert r.payload["status"] == 500 and r.payload["body"] == "broken"


def test_body_cap(server, run_effect):
    """A body larger than max_body_bytes is cut to it with truncated: true; the default cap is 1 MiB."""
    g = grant_for(server)
    r = run_effect(HTTP, "http.request", {"url": server.base + "/big", "max_body_bytes": 10}, g)
    assert r.payload["body"] == "y" * 10 and r.payload["truncated"] is True
    r = run_effect(HTTP, "http.request", {"url": server.base + "/big"}, g)
    assert len(r.payload["body"]) == 1024 * 1024 and r.payload["truncated"] is True


@pytest.mark.parametrize(
    "hosts",
    [["example.com"], ["127.0.0.1:1"], ["localhost"], []],
)
def test_disallowed_host_refused_without_connecting(server, run_effect, hosts):
    """A host (or port) not in the grant is refused not_allowed before any connection is made."""
    r = run_effect(HTTP, "http.request", {"url": server.base + "/hello"}, {"hosts": hosts})
    assert (r.status, r.error) == ("error", "not_allowed")
    assert server.hits == []


def test_host_entries(server, run_effect):
    """A bare host entry allows any port of it and '*' allows any host."""
    for hosts in (["127.0.0.1"], ["*"], ["EXAMPLE.com", f"127.0.0.1:{server.port}"]):
        assert run_effect(HTTP, "http.request", {"url": server.base + "/hello"}, {"hosts": hosts}).status == "ok"
    assert len(server.hits) == 3


def test_redirects(server, run_effect):
    """Redirects are returned, not followed, by default; when followed, each hop must be an allowed host."""
    g = grant_for(server)
    to_ok = server.base + "/redirect?to=/hello"
    r = run_effect(HTTP, "http.request", {"url": to_ok}, g)
    assert r.status == "ok" and r.payload["status"] == 302 and len(server.hits) == 1
    r = run_effect(HTTP, "http.request", {"url": to_ok, "follow_redirects": True}, g)
    assert r.payload["status"] == 200 and r.payload["body"] == "hello" and r.payload["url"].endswith("/hello")
    hits = len(server.hits)
    to_bad = server.base + f"/redirect?to=http://localhost:{server.port}/hello"
    r = run_effect(HTTP, "http.request", {"url": to_bad, "follow_redirects": True}, g)
    assert (r.status, r.error) == ("error", "not_allowed") and len(server.hits) == hits + 1


def test_connection_refused(run_effect):
    """A port with nothing listening gives connection_error."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
        port = sock.getsockname()[1]
        r = run_effect(HTTP, "http.request", {"url": f"http://127.0.0.1:{port}/"}, {"hosts": ["127.0.0.1"]})
    assert (r.status, r.error) == ("error", "connection_error") and r.message


def test_timeout(server, run_effect):
    """A server that never answers ends with status timeout at the requested deadline."""
    t0 = time.monotonic()
    r = run_effect(HTTP, "http.request", {"url": server.base + "/stall", "timeout_s": 0.3}, grant_for(server))
    assert (r.status, r.error) == ("timeout", "timeout")
    assert time.monotonic() - t0 < 5


def test_timeout_capped_by_grant(server, run_effect):
    """The grant's max_timeout_s bounds a longer timeout asked for in params."""
    t0 = time.monotonic()
    g = {**grant_for(server), "max_timeout_s": 0.3}
    r = run_effect(HTTP, "http.request", {"url": server.base + "/stall", "timeout_s": 60}, g)
    assert r.status == "timeout" and time.monotonic() - t0 < 5


def test_secret_header_sent_but_never_in_receipt(server, run_effect):
    """A {"secret": NAME} header reaches the server, but its value is scrubbed from the receipt even when echoed back."""
    params = {"method": "POST", "url": server.base + "/echo", "headers": {"Authorization": {"secret": "api"}}}
    r = run_effect(HTTP, "http.request", params, grant_for(server), secrets={"api": API_KEY}.__getitem__)
    assert r.status == "ok"
    assert server.hits[0]["headers"]["Authorization"] == API_KEY
    assert API_KEY not in repr(r)
    assert ["x-echo-auth", "[redacted]"] in r.payload["headers"]
    assert json.loads(r.payload["body"])["headers"]["Authorization"] == "[redacted]"


def test_secret_not_carried_across_origins(server, run_effect):
    """Following a redirect to another origin drops headers that carried secrets."""
    other = Server()
    try:
        g = {"hosts": [f"127.0.0.1:{server.port}", f"127.0.0.1:{other.port}"]}
        params = {
            "url": server.base + f"/redirect?to={other.base}/echo",
            "headers": {"X-Key": {"secret": "api"}, "X-Plain": "p"},
            "follow_redirects": True,
        }
        r = run_effect(HTTP, "http.request", params, g, secrets={"api": API_KEY}.__getitem__)
        assert r.status == "ok"
        assert server.hits[0]["headers"]["X-Key"] == API_KEY
        assert "X-Key" not in other.hits[0]["headers"] and other.hits[0]["headers"]["X-Plain"] == "p"
    finally:
        other.close()


def test_unavailable_secret_and_bad_params(server, run_effect):
    """An unknown secret, a bad scheme or a malformed header is refused before any request is sent."""
    g = {"hosts": ["*"]}
    url = server.base + "/hello"
    r = run_effect(HTTP, "http.request", {"url": url, "headers": {"A": {"secret": "x"}}}, g, secrets={}.__getitem__)
    assert r.error == "secret_unavailable"
    assert run_effect(HTTP, "http.request", {"url": "ftp://127.0.0.1/"}, g).error == "invalid_params"
    assert run_effect(HTTP, "http.request", {"url": url, "headers": {"A": "x\r\nB: y"}}, g).error == "invalid_params"
    assert run_effect(HTTP, "http.request", {"url": url, "method": "GET /"}, g).error == "invalid_params"
    assert run_effect(HTTP, "http.request", {"url": url}, {}).error == "bad_grant"
    assert server.hits == []


def test_idempotency_key_and_sys_name(server, run_effect):
    """send_idempotency_key passes the call's key as Idempotency-Key, and the sys/http.request@1 name is accepted."""
    r = run_effect(HTTP, "sys/http.request@1", {"url": server.base + "/hello", "send_idempotency_key": True}, grant_for(server))
    assert r.status == "ok" and server.hits[0]["headers"]["Idempotency-Key"] == "idem-1"

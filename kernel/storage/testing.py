"""Test helpers for shared storage: a real S3 server (moto) on 127.0.0.1, in its own process.

``MotoServer().start()`` runs ``python -m aos.kernel.storage.testing`` (moto's
own WSGI app under werkzeug's threaded server, as ``moto_server`` runs it),
waits for the port it bound, and hands out the standard AWS variables that
point boto3 at it. Shipped with the package so users can test their own
storage code the way we test ours.

One addition to stock moto: moto checks ``If-None-Match``/``If-Match`` and
then stores the object in separate steps without a lock (moto/s3/responses.py
``put_object``), so two racing conditional PUTs can both succeed there, which
S3 itself never allows. The fencing protocol relies on that atomicity, so
this server applies mutating requests one at a time: the race tests then test
our protocol, not moto's check-then-act window.

It also counts the requests it serves by HTTP method (``requests()``, from
``GET /_aos/requests``, a path no bucket can have), so a benchmark can say
what another process, a kernel, cost in S3 requests.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aos.kernel.storage.contract import ObjectStore
    from aos.kernel.storage.objects import RequestCounter

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


class MotoServer:
    """A moto S3 server in a subprocess on 127.0.0.1 (port chosen by the kernel)."""

    def __init__(self, log_path: str | None = None) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._dir = tempfile.TemporaryDirectory(prefix="aos-moto-")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        log = open(self.log_path or os.devnull, "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aos.kernel.storage.testing"], stdout=subprocess.PIPE, stderr=log,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                self.stop()
                raise RuntimeError("the moto server did not report its port in time")
            chunk = os.read(self.proc.stdout.fileno(), 64)
            if not chunk:
                self.stop()
                raise RuntimeError("the moto server exited before it reported its port")
            line += chunk
        selector.close()
        self.port = int(line.split()[1])
        return self

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point boto3 (and nothing else) at this server."""
        none = os.path.join(self._dir.name, "none")
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            # keep the machine's own ~/.aws out of tests
            "AWS_CONFIG_FILE": none,
            "AWS_SHARED_CREDENTIALS_FILE": none,
        }

    @contextlib.contextmanager
    def environ(self) -> Iterator[None]:
        """``os.environ`` with ``env()`` set and ``AWS_VARIABLES_TO_CLEAR`` unset while the block runs (boto3 in
        this process reaches this server), put back as it was afterwards."""
        values = self.env()
        saved = {name: os.environ.get(name) for name in (*AWS_VARIABLES_TO_CLEAR, *values)}
        for name in AWS_VARIABLES_TO_CLEAR:
            os.environ.pop(name, None)
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def requests(self) -> dict[str, int]:
        """Requests served so far by HTTP method (every client of this server)."""
        import json
        import urllib.request

        with urllib.request.urlopen(f"{self.endpoint}/_aos/requests", timeout=10) as response:
            counts: dict[str, int] = json.loads(response.read())
        return counts

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self._dir.cleanup()


@dataclass
class Backend:
    """One storage location (``s3://...`` or ``file://...``) and ways to reach it from tests.

    ``open`` gives an independent handle (one per simulated kernel); ``run``
    runs a script against the same storage in its own process.
    """

    name: str
    url: str

    def open(self, counter: RequestCounter | None = None) -> ObjectStore:
        from aos.kernel.storage.config import StorageConfig

        return StorageConfig.from_url(self.url).open(counter)

    def run(self, script: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """Run the Python file ``script`` with this storage's URL as its first argument."""
        return subprocess.run(
            [sys.executable, script, self.url, *args], capture_output=True, text=True, timeout=timeout,
            env=dict(os.environ),
        )

    def start(self, script: str, *args: str) -> subprocess.Popen[str]:
        """Start ``script`` like ``run``, with pipes for its stdin and stdout."""
        return subprocess.Popen(
            [sys.executable, script, self.url, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=dict(os.environ),
        )


AWS_VARIABLES_TO_CLEAR = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS")


def _atomic_writes(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Apply PUT/POST/DELETE requests one at a time, as S3 applies conditional writes atomically; count them all."""
    import json
    from collections import Counter

    lock = threading.Lock()
    counted: Counter[str] = Counter()
    counting = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/_aos/requests":
            with counting:
                body = json.dumps(dict(counted)).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        with counting:
            counted[str(environ.get("REQUEST_METHOD"))] += 1
        if environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE"):
            with lock:
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapped


def serve() -> None:
    """Run moto's S3 on 127.0.0.1, an ephemeral port, printing ``port N`` once it listens."""
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = _atomic_writes(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    sys.stdout.write(f"port {server.server_port}\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    serve()

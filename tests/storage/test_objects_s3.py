"""The boto3 wrapper and the storage configuration: requests counted by type,
5xx retried with backoff, failures turned into typed errors (an unreachable
endpoint, a server that keeps failing, a missing bucket), URLs parsed
strictly, and the local backend refusing keys that would leave its directory.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aos.errors import InvalidArgument, StorageError, StorageUnavailable
from aos.kernel.storage import LocalObjects, RequestCounter, StorageConfig
from aos.kernel.storage.objects import S3Objects, make_client
from aos.kernel.storage.testing import Backend


class FlakyS3(BaseHTTPRequestHandler):
    """Answers PUTs with 503 ``failures`` times, then like S3 (200 and an ETag)."""

    failures = 0
    seen = 0
    lock = threading.Lock()

    def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with FlakyS3.lock:
            FlakyS3.seen += 1
            fail = FlakyS3.seen <= FlakyS3.failures
        if fail:
            body = b"<Error><Code>ServiceUnavailable</Code><Message>try again</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(200)
            self.send_header("ETag", '"abc"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_endpoint(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FlakyS3]]:
    """An HTTP server on 127.0.0.1 that fails PUTs a chosen number of times; AWS_ENDPOINT_URL points at it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FlakyS3.seen = 0
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
    try:
        yield FlakyS3
    finally:
        server.shutdown()
        server.server_close()


def test_requests_are_counted_by_type(s3_backend: Backend) -> None:
    """Every PUT, GET and LIST sent to S3 is counted under its operation name."""
    counter = RequestCounter()
    store = s3_backend.open(counter)
    store.put("a", b"1")
    store.put("b", b"2")
    store.get("a")
    list(store.list(""))
    assert counter.snapshot() == {"PutObject": 2, "GetObject": 1, "ListObjectsV2": 1}
    before = counter.snapshot()
    store.get("missing")
    assert counter.since(before) == {"GetObject": 1}
    assert counter.total == 5


def test_a_5xx_is_retried_until_it_succeeds(flaky_endpoint: type[FlakyS3]) -> None:
    """Two 503s and then a 200: the PUT succeeds, and all three attempts are counted."""
    flaky_endpoint.failures = 2
    store = S3Objects(make_client(max_attempts=3), "bucket-x")
    assert store.put("k", b"data") == '"abc"'
    assert store.counter.snapshot() == {"PutObject": 3}


def test_a_server_that_keeps_failing_is_unavailable(flaky_endpoint: type[FlakyS3]) -> None:
    """When every attempt fails with 503 the PUT raises StorageUnavailable after the configured attempts."""
    flaky_endpoint.failures = 100
    store = S3Objects(make_client(max_attempts=2), "bucket-x")
    with pytest.raises(StorageUnavailable, match="kept failing"):
        store.put("k", b"data")
    assert store.counter.snapshot() == {"PutObject": 2}


def test_an_unreachable_endpoint_is_unavailable(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listening at AWS_ENDPOINT_URL gives StorageUnavailable, not a botocore traceback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    store = StorageConfig(scheme="s3", bucket="nowhere", max_attempts=1).open()
    with pytest.raises(StorageUnavailable, match="cannot reach"):
        store.get("k")


def test_a_missing_bucket_is_a_storage_error(s3_env: dict[str, str]) -> None:
    """Writing to a bucket that does not exist says so with a StorageError."""
    store = StorageConfig.from_url("s3://no-such-bucket-here/p").open()
    with pytest.raises(StorageError, match="bucket does not exist"):
        store.put("k", b"x")


def test_storage_urls_parse_strictly() -> None:
    """s3:// and file:// URLs parse into their parts; anything else is InvalidArgument."""
    config = StorageConfig.from_url("s3://my-bucket/some/prefix/")
    assert (config.scheme, config.bucket, config.prefix, config.url) == ("s3", "my-bucket", "some/prefix", "s3://my-bucket/some/prefix")
    assert StorageConfig.from_url("s3://my-bucket").prefix == ""
    assert StorageConfig.from_url("file:///var/lib/aos/store").path == "/var/lib/aos/store"
    for bad in ("", "http://x/y", "s3://", "s3://Bad_Bucket/p", "s3://ok-bucket/a//b", "s3://ok-bucket/../x",
                "file://relative/path", "s3://ok-bucket/p?x=1"):
        with pytest.raises(InvalidArgument):
            StorageConfig.from_url(bad)


def test_storage_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """AOS_STORAGE names the location; without it there is no shared storage."""
    monkeypatch.delenv("AOS_STORAGE", raising=False)
    assert StorageConfig.from_env() is None
    monkeypatch.setenv("AOS_STORAGE", "s3://env-bucket/x")
    config = StorageConfig.from_env()
    assert config is not None and config.bucket == "env-bucket"


def test_local_keys_cannot_leave_the_directory(tmp_path: object) -> None:
    """The directory backend refuses keys with empty, '.' or '..' parts and its own temporary names."""
    store = LocalObjects(str(tmp_path))
    for bad in ("", "../x", "a/../../x", "a//b", "a/./b", ".lock", "a/.tmp-1"):
        with pytest.raises(InvalidArgument):
            store.put(bad, b"x")
    store.put("u/ok", b"x")
    assert list(store.list("")) == ["u/ok"]

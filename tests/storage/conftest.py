"""Fixtures for shared storage: a real moto S3 server on 127.0.0.1 (its own process),
a fresh bucket per test with the standard AWS variables pointing at it, and a
``backend`` fixture that runs a test once on S3 and once on the local directory backend.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator

import pytest

from aos.kernel.storage.objects import S3Objects, make_client
from aos.kernel.storage.testing import AWS_VARIABLES_TO_CLEAR, Backend, MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto S3 server process for the session (each test gets its own bucket)."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The standard AWS variables, pointing at the moto server, set for this test (and its subprocesses)."""
    for name in AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    env = moto_server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def bucket(s3_env: dict[str, str]) -> str:
    """A new, empty bucket on the moto server."""
    name = f"aos-{uuid.uuid4().hex[:16]}"
    S3Objects(make_client(), name).ensure_bucket()
    return name


@pytest.fixture(params=["s3", "local"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The same test on a moto S3 bucket and on a local directory."""
    if request.param == "s3":
        name = request.getfixturevalue("bucket")
        yield Backend("s3", f"s3://{name}/aos-test")
    else:
        with tempfile.TemporaryDirectory(prefix="aos-store-") as path:
            yield Backend("local", f"file://{path}")


@pytest.fixture
def s3_backend(bucket: str) -> Backend:
    """A moto S3 bucket only (for what is about S3 itself: request counts, HTTP errors)."""
    return Backend("s3", f"s3://{bucket}/aos-test")

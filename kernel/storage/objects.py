"""A thin boto3 wrapper: the ``ObjectStore`` contract on S3 (or R2, MinIO, moto).

What it adds to boto3, and nothing else: conditional PUT (``If-None-Match:
*`` / ``If-Match``), GET with the ETag, ordered LIST, a request counter, and
typed errors. Endpoint, region and credentials come from boto3's usual chain
(``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE`` and the config files), never from AOS settings.

Retries: botocore's "standard" mode retries 5xx, throttling and connection
errors with exponential backoff and jitter (unless ``AWS_RETRY_MODE`` or
``AWS_MAX_ATTEMPTS`` say otherwise). A retried conditional PUT whose first
attempt did land comes back 412; the log recognises its own bytes for that
case (``s3log.py``). S3's 409 ConditionalRequestConflict ("retry the
request") is not retried by botocore, so ``put`` does it here.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from aos.errors import StorageError, StorageUnavailable
from aos.kernel.storage.contract import PreconditionFailed, Stored

CONFLICT_RETRIES = 5
DEFAULT_ATTEMPTS = 5


class RequestCounter:
    """HTTP requests sent to the object store by operation (``PutObject``, ``GetObject``, ...), retries included.

    Object stores bill per request, so this is the figure that matters for
    cost; tests and benchmarks report it per 1,000 events.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def attach(self, client: Any) -> None:
        """Count every request ``client`` sends (botocore emits ``before-send`` once per HTTP attempt)."""
        client.meta.events.register("before-send.s3", self._on_send)

    def _on_send(self, event_name: str = "", **_: Any) -> None:
        self.add(event_name.rsplit(".", 1)[-1])

    def add(self, operation: str, n: int = 1) -> None:
        with self._lock:
            self._counts[operation] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def since(self, before: dict[str, int]) -> dict[str, int]:
        """Requests by operation since ``before`` (a ``snapshot()``)."""
        now = self.snapshot()
        return {op: n - before.get(op, 0) for op, n in now.items() if n - before.get(op, 0)}

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


def make_client(max_attempts: int | None = None) -> Any:
    """An S3 client configured only by the standard AWS chain, plus standard-mode retries."""
    options: dict[str, Any] = {"connect_timeout": 5, "read_timeout": 30, "max_pool_connections": 32}
    if "AWS_RETRY_MODE" not in os.environ and "AWS_MAX_ATTEMPTS" not in os.environ:
        options["retries"] = {"mode": "standard", "total_max_attempts": max_attempts or DEFAULT_ATTEMPTS}
    try:
        return boto3.session.Session().client("s3", config=botocore.config.Config(**options))
    except botocore.exceptions.BotoCoreError as exc:
        raise StorageError(f"cannot configure the S3 client: {exc}") from None


class S3Objects:
    """``ObjectStore`` on one bucket, every key under ``prefix/``."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", counter: RequestCounter | None = None) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._base = self.prefix + "/" if self.prefix else ""
        self.counter = counter if counter is not None else RequestCounter()
        self.counter.attach(client)

    def __repr__(self) -> str:
        return f"S3Objects(s3://{self.bucket}/{self.prefix})"

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._base + key, "Body": data}
        if if_none_match:
            args["IfNoneMatch"] = "*"
        if if_match is not None:
            args["IfMatch"] = if_match
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                etag: str = self._client.put_object(**args)["ETag"]
                return etag
            except botocore.exceptions.ClientError as exc:
                code, status = _code(exc)
                if status == 412 or code == "PreconditionFailed":
                    raise PreconditionFailed(f"{key}: the object exists or changed") from None
                if if_match is not None and (status == 404 or code == "NoSuchKey"):
                    raise PreconditionFailed(f"{key}: the object to replace is gone") from None
                if (status == 409 or code == "ConditionalRequestConflict") and attempt < CONFLICT_RETRIES:
                    # a concurrent conditional write on the same key: S3 asks for a retry
                    time.sleep(0.02 * 2**attempt * (1 + random.random()))
                    continue
                raise _translate(exc, "PUT", key) from None
            except botocore.exceptions.BotoCoreError as exc:
                raise _translate(exc, "PUT", key) from None
        raise StorageUnavailable(f"PUT {key}: conflicting writes kept failing")  # pragma: no cover

    def get(self, key: str) -> Stored | None:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._base + key)
            data = response["Body"].read()
        except botocore.exceptions.ClientError as exc:
            code, status = _code(exc)
            if status == 404 and code in ("NoSuchKey", "404"):
                return None
            raise _translate(exc, "GET", key) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise _translate(exc, "GET", key) from None
        return Stored(data, response["ETag"])

    def list(self, prefix: str, start_after: str = "") -> Iterator[str]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._base + prefix}
        if start_after:
            args["StartAfter"] = self._base + start_after
        cut = len(self._base)
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(**args):
                for item in page.get("Contents", ()):
                    yield item["Key"][cut:]
        except botocore.exceptions.ClientError as exc:
            raise _translate(exc, "LIST", prefix) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise _translate(exc, "LIST", prefix) from None

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (tests, first start against a fresh MinIO)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except botocore.exceptions.ClientError as exc:
            if _code(exc)[1] != 404:
                raise _translate(exc, "HEAD", self.bucket) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise _translate(exc, "HEAD", self.bucket) from None
        try:
            self._client.create_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            if _code(exc)[0] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise _translate(exc, "CREATE", self.bucket) from None


def _code(exc: botocore.exceptions.ClientError) -> tuple[str, int]:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), int(status or 0)


def _translate(exc: Exception, verb: str, key: str) -> StorageError:
    """One typed error per failure kind; messages name the request, never credentials."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code, status = _code(exc)
        if status >= 500 or code in ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout"):
            return StorageUnavailable(f"{verb} {key}: the object store kept failing ({code or status}) after retries")
        if code == "NoSuchBucket":
            return StorageError(f"{verb} {key}: the bucket does not exist")
        if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(f"{verb} {key}: access denied ({code}); check the AWS credentials")
        return StorageError(f"{verb} {key}: {code or status}")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return StorageError("no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
    if isinstance(exc, botocore.exceptions.IncompleteReadError | botocore.exceptions.ResponseStreamingError):
        return StorageUnavailable(f"{verb} {key}: the response was cut off")
    if isinstance(exc, (botocore.exceptions.HTTPClientError, botocore.exceptions.ConnectionError)):
        return StorageUnavailable(f"{verb} {key}: cannot reach the object store ({type(exc).__name__})")
    return StorageError(f"{verb} {key}: {type(exc).__name__}: {exc}")

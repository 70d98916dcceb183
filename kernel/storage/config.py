"""Where shared storage lives: ``s3://BUCKET/PREFIX`` or ``file:///PATH``.

Only the location is AOS configuration (``aos-kernel --storage``, or
``AOS_STORAGE``). How to reach S3 (endpoint, region, credentials, retries) is boto3's
standard chain: ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``~/.aws/config``. So one kernel
binary runs on AWS S3, R2, MinIO or a test server unchanged.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from aos.errors import InvalidArgument
from aos.kernel.storage.contract import ObjectStore
from aos.kernel.storage.objects import RequestCounter

# S3's bucket naming rules (3-63 chars, lowercase letters, digits, dots, hyphens)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """A parsed storage location.

    scheme: ``s3`` (boto3) or ``file`` (a local directory with the same semantics).
    bucket / prefix: for ``s3``; every key lives under ``prefix/``.
    path: for ``file``; an absolute directory.
    max_attempts: botocore standard-mode attempts per request (unless the
        AWS variables or profile set retries themselves).
    """

    scheme: str
    bucket: str = ""
    prefix: str = ""
    path: str = ""
    max_attempts: int = 5

    @classmethod
    def from_url(cls, url: str) -> StorageConfig:
        """Parse ``s3://BUCKET[/PREFIX]`` or ``file:///PATH``; anything else is ``InvalidArgument``."""
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.query or parts.fragment:
            raise InvalidArgument(f"bad storage URL {str(url)[:80]!r}: use s3://BUCKET/PREFIX or file:///PATH")
        if parts.scheme == "s3":
            if _BUCKET.fullmatch(parts.netloc) is None:
                raise InvalidArgument(f"bad bucket name {parts.netloc[:80]!r} in storage URL")
            prefix = parts.path.strip("/")
            if any(piece in ("", ".", "..") for piece in prefix.split("/")) and prefix:
                raise InvalidArgument(f"bad prefix {prefix[:80]!r} in storage URL")
            return cls("s3", bucket=parts.netloc, prefix=prefix)
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
                raise InvalidArgument(f"bad storage URL {url[:80]!r}: a file URL needs an absolute path")
            return cls("file", path=os.path.normpath(parts.path))
        raise InvalidArgument(f"bad storage URL {url[:80]!r}: use s3://BUCKET/PREFIX or file:///PATH")

    @classmethod
    def from_env(cls) -> StorageConfig | None:
        """``AOS_STORAGE`` if set, else None (the kernel stays embedded)."""
        url = os.environ.get("AOS_STORAGE", "")
        return cls.from_url(url) if url else None

    @property
    def url(self) -> str:
        if self.scheme == "s3":
            return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"file://{self.path}"

    def open(self, counter: RequestCounter | None = None) -> ObjectStore:
        """The object store this config names (boto3 reads its own settings now, not at import)."""
        if self.scheme == "s3":
            from aos.kernel.storage.objects import S3Objects, make_client

            return S3Objects(make_client(self.max_attempts), self.bucket, self.prefix, counter)
        from aos.kernel.storage.local import LocalObjects

        return LocalObjects(self.path, counter)

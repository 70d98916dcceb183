"""Kernel configuration: one dataclass, documented fields, ``AOS_`` environment overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "aos", "kernel")


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits the kernel enforces on every caller (reported by ``Kernel.status``)."""

    max_message_bytes: int = 8 << 20  # largest Data in one call
    max_blob_bytes: int = 1 << 30  # largest blob via chunked upload
    max_records_per_append: int = 4096
    max_records_per_read: int = 4096


@dataclass(frozen=True, slots=True)
class KernelConfig:
    """Everything ``aos-kernel`` needs to start.

    data_dir: RocksDB, the lock file and ``admin.token`` live here (``AOS_DATA``).
    listen: addresses to serve, ``unix:PATH`` or ``tcp:HOST:PORT`` (``AOS_LISTEN``, comma-separated).
    health: ``HOST:PORT`` for the gRPC health service, ``""`` to disable (``AOS_HEALTH``).
    tls_cert / tls_key: PEM files; when both are set, every TCP listener speaks TLS.
    idle_seconds: a world quiescent this long hibernates to a snapshot (``AOS_IDLE_SECONDS``).
    host_roots: directories under which worlds may be granted host.fs / host.exec
        (``--grant-host``; none by default, so no world touches host files unless the operator says so).
    python_modules: Python workflow modules worlds may run besides the project's own
        (``--python-module``, ``AOS_PYTHON_MODULES`` comma-separated; ``pkg.*`` for a package).
    python_step_seconds: a Python workflow step running longer traps (``AOS_PYTHON_STEP_SECONDS``).
    metrics: ``HOST:PORT`` for Prometheus metrics at ``/metrics`` (``AOS_METRICS``; ``""``: none).
    storage: ``s3://BUCKET/PREFIX`` (or ``file:///PATH``) for shared storage (``AOS_STORAGE``); ``""``:
        embedded, RocksDB only. Endpoint, region and credentials come from the standard AWS variables.
    host_id: this kernel's id on shared storage, which is also its log's (``--host-id``, ``AOS_HOST_ID``);
        ``""``: the one kept in the data directory, or a new one for a new directory.
    """

    data_dir: str = field(default_factory=default_data_dir)
    listen: tuple[str, ...] = ()
    health: str = "127.0.0.1:0"
    tls_cert: str = ""
    tls_key: str = ""
    limits: Limits = field(default_factory=Limits)
    idle_seconds: float = 30.0
    host_roots: tuple[str, ...] = ()
    python_modules: tuple[str, ...] = ()
    python_step_seconds: float = 10.0
    metrics: str = ""
    storage: str = ""
    host_id: str = ""

    @property
    def default_socket(self) -> str:
        return "unix:" + os.path.join(self.data_dir, "kernel.sock")

    @property
    def listen_or_default(self) -> tuple[str, ...]:
        return self.listen or (self.default_socket,)


def from_env(**overrides: object) -> KernelConfig:
    values: dict[str, object] = {}
    if "AOS_DATA" in os.environ:
        values["data_dir"] = os.environ["AOS_DATA"]
    if os.environ.get("AOS_LISTEN"):
        values["listen"] = tuple(a for a in os.environ["AOS_LISTEN"].split(",") if a)
    if "AOS_IDLE_SECONDS" in os.environ:
        values["idle_seconds"] = float(os.environ["AOS_IDLE_SECONDS"])
    if os.environ.get("AOS_PYTHON_MODULES"):
        values["python_modules"] = tuple(m for m in os.environ["AOS_PYTHON_MODULES"].split(",") if m.strip())
    if "AOS_PYTHON_STEP_SECONDS" in os.environ:
        values["python_step_seconds"] = float(os.environ["AOS_PYTHON_STEP_SECONDS"])
    if os.environ.get("AOS_METRICS"):
        values["metrics"] = os.environ["AOS_METRICS"]
    if os.environ.get("AOS_STORAGE"):
        values["storage"] = os.environ["AOS_STORAGE"]
    if os.environ.get("AOS_HOST_ID"):
        values["host_id"] = os.environ["AOS_HOST_ID"]
    if "AOS_HEALTH" in os.environ:
        values["health"] = os.environ["AOS_HEALTH"]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return KernelConfig(**values)  # type: ignore[arg-type]

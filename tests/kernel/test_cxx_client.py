"""A C++ client, compiled against ``schemas/`` with Debian's Cap'n Proto, uses the kernel.

The client (``tests/kernel/cxx/client.c++``) is built here from the schema
files alone: ``capnp compile -oc++`` generates the bindings and g++ links them
against libcapnp-rpc (Debian's ``capnproto`` and ``libcapnp-dev``, 0.9.2 on
Debian 12, installed by ``./run setup``). It stores and reads back a blob and a
journal record and checks three typed errors; a Python client then reads what
it wrote. The built binary is cached in a private directory under /tmp keyed by
the hash of the schemas, the source and the toolchain, so reruns skip the
compile (about 5 s cold).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from aos.kernel.client import Connection, run

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
SOURCE = Path(__file__).resolve().parent / "cxx" / "client.c++"

# What the C++ client writes (it builds the same bytes; see blobPayload and
# recordPayload in client.c++).
BLOB = b"blob from c++\n" + bytes(range(256))
RECORD = b"record from c++" + b"\x00\xff"
UNIVERSE, WORLD = "cxx", "w1"

FALLBACK_LIBS = ["-lcapnp-rpc", "-lcapnp", "-lkj-async", "-lkj"]

pytestmark = pytest.mark.cxx


def _output(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _toolchain() -> dict[str, object]:
    """Locate capnp, the headers and a C++ compiler, or skip saying what is missing."""
    capnp = shutil.which("capnp")
    if capnp is None:
        pytest.skip("the capnp compiler is not installed (apt-get install capnproto libcapnp-dev, or ./run setup)")
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler (g++) is installed")
    candidates = [_output(["pkg-config", "--variable=includedir", "capnp-rpc"]), "/usr/include", "/usr/local/include"]
    include = next(
        (d for d in candidates if d and all((Path(d) / "capnp" / f).is_file() for f in ("c++.capnp", "ez-rpc.h"))),
        None,
    )
    if include is None:
        pytest.skip("the Cap'n Proto C++ headers are not installed (apt-get install libcapnp-dev, or ./run setup)")
    flags = _output(["pkg-config", "--cflags", "--libs", "capnp-rpc"]).split() or FALLBACK_LIBS
    return {"capnp": capnp, "cxx": cxx, "include": include, "flags": flags}


def _build_key(tools: dict[str, object]) -> str:
    digest = hashlib.sha256()
    for path in sorted(SCHEMAS.glob("*.capnp")) + [SOURCE]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for part in (_output([str(tools["capnp"]), "--version"]), _output([str(tools["cxx"]), "--version"]), repr(tools)):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:20]


def _private_cache() -> Path | None:
    """A directory under /tmp only this user can write, or None."""
    path = Path(tempfile.gettempdir()) / f"aos-cxx-client-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None
    return path


def _run(step: list[str]) -> None:
    done = subprocess.run(step, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(step)} failed:\n{done.stdout}\n{done.stderr}"


def _compile(tools: dict[str, object], out: Path) -> None:
    schemas = sorted(str(p) for p in SCHEMAS.glob("*.capnp"))
    with tempfile.TemporaryDirectory(prefix="build-", dir=out.parent) as build:
        capnp, include = str(tools["capnp"]), tools["include"]
        _run([capnp, "compile", f"-I{include}", f"--src-prefix={SCHEMAS}", f"-oc++:{build}", *schemas])
        generated = sorted(str(p) for p in Path(build).glob("*.capnp.c++"))
        assert len(generated) == len(schemas), f"capnp generated {generated}"
        flags = [str(f) for f in tools["flags"]]  # type: ignore[attr-defined]
        cxx = str(tools["cxx"])
        _run([cxx, "-std=c++17", "-O1", f"-I{build}", str(SOURCE), *generated, *flags, "-pthread", "-o", f"{build}/client"])
        os.replace(f"{build}/client", out)  # atomic: a concurrent run sees no half-written binary


@pytest.fixture(scope="module")
def cxx_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built C++ client, from the cache when the schemas and source are unchanged."""
    tools = _toolchain()
    cache = _private_cache() or tmp_path_factory.mktemp("cxx")
    binary = cache / f"client-{_build_key(tools)}"
    if not binary.is_file():
        _compile(tools, binary)
        for stale in cache.glob("client-*"):  # builds for older schemas or sources
            if stale != binary:
                stale.unlink(missing_ok=True)
    return binary


@pytest.mark.timeout(600)  # a cold compile on a slow machine
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_cxx_client_stores_and_reads_a_blob_and_a_record(cxx_client, transport, request):
    """The C++ client round-trips a blob and a record, gets typed errors, and Python sees its writes."""
    kernel = request.getfixturevalue("kernel" if transport == "unix" else "kernel_tcp")
    address = next(a for a in kernel.addresses if a.startswith(f"{transport}:"))
    if transport == "tcp":
        address = address.removeprefix("tcp:")  # KJ's address syntax is HOST:PORT
    token = kernel.admin_token
    env = {**os.environ, "AOS_TOKEN": token}

    done = subprocess.run(
        [str(cxx_client), address, UNIVERSE, WORLD], env=env, capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"C++ client failed ({done.returncode}):\n{output}"
    assert token not in output
    lines = done.stdout.splitlines()
    expected_hash = "sha256:" + hashlib.sha256(BLOB).hexdigest()
    assert f"cas put {expected_hash} size={len(BLOB)}" in lines
    assert f"cas get ok size={len(BLOB)}" in lines
    assert f"journal append world={WORLD} seq=0" in lines
    assert "journal read ok records=1 nextSeq=1" in lines
    assert "error append-wrong-seq aos.SeqConflict" in lines
    assert "error get-missing-blob aos.BlobNotFound" in lines
    assert "error restore-unknown-token aos.InvalidToken" in lines
    assert lines[-1] == "OK"

    async def python_reads_back():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(token)
            cas = await admin.cas(UNIVERSE)
            journal = await admin.journal(UNIVERSE)
            return await cas.get(expected_hash), await journal.read(WORLD), await journal.head(WORLD)

    data, (records, next_seq), head = run(python_reads_back())
    assert data == BLOB
    assert records == [RECORD] and next_seq == 1
    assert head == (1, 1)  # the refused SeqConflict append wrote nothing
    assert kernel.stop() == 0

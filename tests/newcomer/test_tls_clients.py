"""Reaching a TLS kernel as docs/clients.md says: from ``aos``, from ``aos-shell`` and from C++.

A kernel with ``--tls-cert/--tls-key`` (a self-signed certificate made with
openssl, as the doc shows) is reached by the CLI with ``--tls-ca`` and by
``$AOS_TLS_CA``; each way it can go wrong (no CA, a name the certificate
lacks, TLS against a plain listener, plain against a TLS one) is one line.
The C++ program in docs/clients.md is extracted from the doc, built with the
doc's commands and run against the same kernel.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aos.testing import KernelProcess, self_signed_certificate

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "clients.md"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, as docs/clients.md makes one."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install openssl)")
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    return Path(cert), Path(key)


@pytest.fixture
def tls_kernel(data_dir, certificate):
    """A kernel whose TCP listener speaks TLS, next to a plain unix socket."""
    cert, key = certificate
    kernel = KernelProcess(data_dir, listen=[f"unix:{data_dir}/kernel.sock", "tcp:127.0.0.1:0"],
                           extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]).start()
    try:
        yield kernel
    finally:
        kernel.kill()


def _tcp(kernel) -> str:
    return next(a for a in kernel.addresses if a.startswith("tcp:"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    env.update(extra)
    return env


def _aos(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aos.cli", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)


def test_the_cli_reaches_a_tls_kernel_with_its_ca(tls_kernel, certificate):
    """--tls-ca (or $AOS_TLS_CA) with the kernel's certificate: status and world commands work over TLS."""
    cert, _ = certificate
    flags = _aos("--connect", _tcp(tls_kernel), "--tls-ca", str(cert), "--token-file", tls_kernel.token_path,
                 "status", env=_env())
    assert flags.returncode == 0, flags.stderr
    assert flags.stdout.startswith("aos-kernel 0.1.0  data ")
    env = _env(AOS_CONNECT=_tcp(tls_kernel), AOS_TLS_CA=str(cert), AOS_TOKEN_FILE=tls_kernel.token_path)
    assert _aos("world", "create", "examples/counter", "--id", "c1", env=env).returncode == 0
    sent = _aos("world", "send", "c1", "demo/CounterEvent@1", '{"by": 3}', env=env)
    assert sent.returncode == 0 and sent.stdout == "event journaled at seq 1\n", sent.stderr
    # the name to check can be given apart from the address (here the IP is in the certificate too)
    named = _aos("--tls-server-name", "localhost", "world", "state", "c1", "demo/counter@1", env=env)
    assert named.returncode == 0 and '"count": 3' in named.stdout


@pytest.mark.parametrize("how, args, expected", [
    ("no CA", ["--connect", "tls:{tcp}"], "TLS: self-signed certificate"),
    ("a name the certificate lacks", ["--connect", "{tcp}", "--tls-ca", "{cert}", "--tls-server-name", "other.example"],
     "TLS: Hostname mismatch, certificate is not valid for 'other.example'"),
    ("plain against TLS", ["--connect", "{tcp}"], "if that listener speaks TLS, pass --tls-ca PEM"),
])
def test_each_tls_mistake_is_one_line(tls_kernel, certificate, how, args, expected):
    """A TLS mistake exits 1 with one `aos: KernelUnavailable: ...` line that says what to change."""
    cert, _ = certificate
    args = [a.replace("{tcp}", _tcp(tls_kernel)[4:] if a.startswith("tls:") else _tcp(tls_kernel))
            .replace("{cert}", str(cert)) for a in args]
    done = _aos(*args, "--token-file", tls_kernel.token_path, "status", env=_env())
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("aos: KernelUnavailable: ") and expected in line, line


def test_tls_options_against_a_plain_listener_say_so(kernel_tcp, certificate):
    """--tls-ca against a plain TCP listener: one line saying the listener does not speak TLS."""
    cert, _ = certificate
    tcp = _tcp(kernel_tcp)
    done = _aos("--connect", tcp, "--tls-ca", str(cert), "--token-file", kernel_tcp.token_path, "status", env=_env())
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"aos: KernelUnavailable: cannot reach a kernel at {tcp}: TLS: "
                                        "WRONG_VERSION_NUMBER (the listener does not speak TLS: connect with tcp: and "
                                        "no TLS options)"]


def test_aos_shell_reaches_a_tls_kernel(tls_kernel, certificate, tmp_path):
    """aos-shell --connect tcp:... --tls-ca runs its commands over TLS; $AOS_TLS_CA does the same."""
    cert, _ = certificate
    env = _env(AOS_SHELL_HISTORY=str(tmp_path / "history"))
    flags = subprocess.run([sys.executable, "-m", "aos.shell", "--connect", _tcp(tls_kernel), "--tls-ca", str(cert),
                            "--token-file", tls_kernel.token_path, "-c", "create examples/counter --id c1; worlds"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert flags.returncode == 0, flags.stderr
    assert "created world c1" in flags.stdout and "c1  demo/counter" in flags.stdout
    by_env = subprocess.run([sys.executable, "-m", "aos.shell", "-c", "worlds"], cwd=REPO,
                            env=dict(env, AOS_CONNECT=_tcp(tls_kernel), AOS_TLS_CA=str(cert),
                                     AOS_TOKEN_FILE=tls_kernel.token_path),
                            capture_output=True, text=True, timeout=60)
    assert by_env.returncode == 0 and "c1  demo/counter" in by_env.stdout, by_env.stderr


def _doc_program() -> str:
    """The C++ program of docs/clients.md, as the reader copies it."""
    blocks = re.findall(r"```c\+\+\n(.*?)```", DOC.read_text(), re.S)
    (program,) = [b for b in blocks if b.startswith("// tls-status:")]
    return program


@pytest.fixture(scope="module")
def tls_status() -> Path:
    """docs/clients.md's tls-status, built with the doc's commands (cached by the hash of schemas and program)."""
    for tool in ("capnp", "g++", "pkg-config"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (./run setup installs capnproto and libcapnp-dev)")
    if subprocess.run(["pkg-config", "--exists", "capnp-rpc", "kj-tls"], check=False).returncode != 0:
        pytest.skip("the Cap'n Proto C++ library with kj-tls is not installed (apt-get install libcapnp-dev)")
    program = _doc_program()
    digest = hashlib.sha256(program.encode())
    for path in sorted((REPO / "schemas").glob("*.capnp")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    cache = Path(f"/tmp/aos-tls-status-{os.getuid()}")
    cache.mkdir(mode=0o700, exist_ok=True)
    if cache.stat().st_uid != os.getuid() or cache.stat().st_mode & 0o022:
        pytest.fail(f"{cache} is not private to this user")
    build = cache / digest.hexdigest()[:20]
    binary = build / "tls-status"
    if binary.exists():
        return binary
    work = cache / f"work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "build").mkdir(parents=True)
    (work / "tls_status.c++").write_text(program)
    shutil.copytree(REPO / "schemas", work / "schemas", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "capnp-rpc", "kj-tls"], check=True, capture_output=True,
                           text=True).stdout.split()
    schemas = sorted(str(p.relative_to(work)) for p in (work / "schemas").glob("*.capnp"))
    _build_step(work, ["capnp", "compile", "-I/usr/include", "--src-prefix=schemas", "-oc++:build", *schemas])
    generated = sorted(str(p.relative_to(work)) for p in (work / "build").glob("*.capnp.c++"))
    _build_step(work, ["g++", "-std=c++17", "-Ibuild", "tls_status.c++", *generated, *flags, "-pthread",
                       "-o", "build/tls-status"])
    build.mkdir(exist_ok=True)
    os.replace(work / "build" / "tls-status", binary)
    shutil.rmtree(work, ignore_errors=True)
    return binary


def _build_step(work: Path, command: list[str]) -> None:
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.cxx
def test_the_docs_cxx_client_reaches_a_tls_kernel(tls_status, tls_kernel, certificate):
    """The doc's C++ program prints the kernel's version over TLS, and refuses a name the certificate lacks."""
    cert, _ = certificate
    env = dict(os.environ, AOS_TOKEN=tls_kernel.admin_token)
    host_port = _tcp(tls_kernel)[4:]
    done = subprocess.run([str(tls_status), host_port, str(cert), "localhost"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "aos-kernel 0.1.0 over TLS\n"
    wrong = subprocess.run([str(tls_status), host_port, str(cert), "other.example"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert wrong.returncode == 1 and "hostname mismatch" in wrong.stderr

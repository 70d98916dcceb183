"""aos-kernel as an operator meets it: startup, locking, signals, health, logs, TLS."""

import os
import re
import signal
import ssl
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aos.kernel.client import Connection, run
from aos.testing import KernelProcess, KernelStartError


def test_startup_prints_where_it_listens_and_the_token_path(kernel_tcp):
    """The first lines name the data dir, each listener, the health port and the token file."""
    out = kernel_tcp.output
    assert out[0].startswith("aos-kernel ") and f"data={kernel_tcp.data_dir}" in out[0]
    assert f"listening unix:{kernel_tcp.socket}" in out
    assert any(re.fullmatch(r"listening tcp:127\.0\.0\.1:\d+", line) for line in out)
    assert f"admin token: {kernel_tcp.token_path}" in out
    assert out[-1] == "ready"
    assert kernel_tcp.admin_token not in "\n".join(out + kernel_tcp.log_lines)


def test_tcp_and_unix_listeners_serve_the_same_kernel(kernel_tcp):
    """A blob put over TCP is read back over the unix socket."""
    tcp = next(a for a in kernel_tcp.addresses if a.startswith("tcp:"))

    async def main():
        async with await Connection.open(tcp) as over_tcp, await Connection.open(f"unix:{kernel_tcp.socket}") as over_unix:
            address = await (await (await over_tcp.restore_kernel(kernel_tcp.admin_token)).cas("u")).put(b"via tcp")
            return await (await (await over_unix.restore_kernel(kernel_tcp.admin_token)).cas("u")).get(address)

    assert run(main()) == b"via tcp"


def test_second_kernel_on_the_same_data_dir_is_refused(kernel):
    """A second daemon on the same --data exits non-zero naming the running kernel's pid."""
    second = subprocess.run(
        [sys.executable, "-m", "aos.kernel.daemon", "--data", kernel.data_dir, "--listen", f"unix:{kernel.data_dir}/other.sock"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1  # start-up mistakes exit 1, one line (issue 17)
    assert f"another aos-kernel (pid {kernel.proc.pid}) is using {kernel.data_dir}" in second.stderr
    assert run(_put(kernel)).startswith("sha256:")  # the first one is unaffected


async def _put(kernel):
    async with await Connection.open(kernel.address) as conn:
        return await (await (await conn.restore_kernel(kernel.admin_token)).cas("u")).put(b"x")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_shut_down_cleanly(kernel, sig):
    """SIGTERM/SIGINT exit 0, log the shutdown, remove the socket and release the lock."""
    kernel.proc.send_signal(sig)
    assert kernel.proc.wait(30) == 0
    assert not os.path.exists(kernel.socket)
    kernel.wait_for_log("event=stopped")
    kernel.start()  # the lock was released
    assert run(_put(kernel)).startswith("sha256:")


def test_admin_token_is_kept_across_restarts(kernel):
    """Restarting does not rotate the admin token."""
    token = kernel.admin_token
    assert kernel.stop() == 0
    kernel.start()
    assert kernel.admin_token == token


def test_grpc_health_reports_serving(kernel):
    """The gRPC health service answers SERVING for the server and for aos.kernel."""
    with grpc.insecure_channel(kernel.health) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "aos.kernel"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_logs_are_logfmt_lines(kernel):
    """Every log line is ts=... level=... logger=... followed by key=value pairs."""
    run(_put(kernel))
    assert kernel.stop() == 0
    pattern = re.compile(r"ts=\S+Z level=(debug|info|warning|error|critical) logger=\S+ (event|msg)=\S.*")
    assert kernel.log_lines
    for line in kernel.log_lines:
        assert pattern.fullmatch(line), line
    assert any("event=listening" in line for line in kernel.log_lines)


def test_bad_listen_address_is_a_clear_error(data_dir):
    """An address that is neither unix: nor tcp: is refused with a one-line message."""
    with pytest.raises(KernelStartError) as info:
        KernelProcess(data_dir, listen=["udp:1.2.3.4:5"]).start()
    assert "bad address 'udp:1.2.3.4:5'" in str(info.value)


def test_tls_listener(data_dir, tmp_path):
    """With --tls-cert/--tls-key, TCP speaks TLS: a verifying client works, a plain one does not."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    kernel = KernelProcess(
        data_dir, listen=["tcp:127.0.0.1:0"], extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]
    ).start()
    try:
        assert any("tls=yes" in line for line in kernel.log_lines)
        context = ssl.create_default_context(cafile=str(cert))

        async def main():
            async with await Connection.open(kernel.address, tls=context) as conn:
                return await (await (await conn.restore_kernel(kernel.admin_token)).cas("u")).put(b"over tls")

        assert run(main()).startswith("sha256:")

        async def plain():
            conn = await Connection.open(kernel.address)
            try:
                await conn.restore_kernel(kernel.admin_token)
            finally:
                conn.close()

        from aos.errors import KernelUnavailable

        with pytest.raises(KernelUnavailable):
            run(plain())
    finally:
        kernel.kill()

"""``aos-kernel`` start-up mistakes are one line and status 1; a normal SIGTERM logs no errors.

Each mistake is made for real: a TCP port another process holds, TLS files
that are missing or not PEM, ``--health`` addresses that are malformed, in use
or not this host's, a ``--grant-host`` (or ``aos world create --grant-root``)
directory that does not exist. Then a kernel with clients connected (a plain
client and a live tail) is stopped with SIGTERM and its log must hold no
``level=error`` line, and a kernel started ``--exit-with`` a process stops
when that process exits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aos.kernel.client import Connection, run
from aos.testing import KernelProcess

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def taken_port():
    """A TCP port on 127.0.0.1 that another socket is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _kernel(data_dir: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aos.kernel.daemon", "--data", data_dir, *args],
                          capture_output=True, text=True, timeout=60)


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The kernel's stderr without its info logs: must be exactly one `aos-kernel: ` line."""
    lines = [line for line in done.stderr.splitlines() if "level=info" not in line]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("aos-kernel: "), done.stderr
    assert "Traceback" not in done.stderr and "level=error" not in done.stderr
    return lines[0]


def test_a_tcp_port_in_use(data_dir, taken_port):
    """--listen on a port another process holds: one line naming the address and the reason."""
    line = _one_line(_kernel(data_dir, "--listen", f"tcp:127.0.0.1:{taken_port}"))
    assert line.startswith("aos-kernel: cannot start: ") and f"{taken_port}" in line and "in use" in line


def test_tls_files_missing_or_not_pem(data_dir, tmp_path):
    """A missing --tls-cert or --tls-key, or files that are not a PEM pair, are refused before anything starts."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not PEM\n")
    tcp = ["--listen", "tcp:127.0.0.1:0"]
    missing = _one_line(_kernel(data_dir, *tcp, "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(garbage)))
    assert missing == f"aos-kernel: --tls-cert {tmp_path / 'c.pem'}: no such file"
    missing_key = _one_line(_kernel(data_dir, *tcp, "--tls-cert", str(garbage), "--tls-key", str(tmp_path / "k.pem")))
    assert missing_key == f"aos-kernel: --tls-key {tmp_path / 'k.pem'}: no such file"
    bad = _one_line(_kernel(data_dir, *tcp, "--tls-cert", str(garbage), "--tls-key", str(garbage)))
    assert bad.startswith(f"aos-kernel: --tls-cert {garbage} / --tls-key {garbage}: not a usable PEM")
    alone = _one_line(_kernel(data_dir, *tcp, "--tls-cert", str(garbage)))
    assert alone == "aos-kernel: --tls-cert and --tls-key go together"
    assert not os.path.exists(os.path.join(data_dir, "db"))  # refused before the database was opened


@pytest.mark.parametrize("address, reason", [("bogus", "use HOST:PORT"), ("127.0.0.1:http", "use HOST:PORT"),
                                             ("127.0.0.1:70000", "use HOST:PORT"),
                                             ("192.0.2.1:7421", "cannot listen there")])
def test_bad_health_addresses(data_dir, address, reason):
    """A malformed --health, or one not on this host, is one line."""
    assert reason in _one_line(_kernel(data_dir, "--health", address))


def test_a_health_port_in_use(data_dir, taken_port):
    """--health on a port another process holds is one line (grpcio's own complaint does not show)."""
    line = _one_line(_kernel(data_dir, "--health", f"127.0.0.1:{taken_port}"))
    assert line == f"aos-kernel: --health 127.0.0.1:{taken_port}: cannot listen there: Address already in use"


def test_missing_grant_directories_are_refused(data_dir, kernel, tmp_path):
    """`aos-kernel --grant-host DIR` and `aos world create --grant-root DIR` refuse a DIR that does not exist."""
    missing = tmp_path / "no-such-dir"
    assert _one_line(_kernel(data_dir + "-g", "--grant-host", str(missing))) == \
        f"aos-kernel: --grant-host {missing}: no such directory"
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path)
    done = subprocess.run([sys.executable, "-m", "aos.cli", "world", "create", "examples/fs-notes", "--grant-root",
                           str(missing)], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"aos: InvalidArgument: --grant-root {missing}: no such directory"]


def test_sigterm_with_clients_connected_logs_no_errors(data_dir):
    """SIGTERM while a client holds a connection and another follows a journal: exit 0, no level=error line."""
    kernel = KernelProcess(data_dir).start()
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path)
    tail = subprocess.Popen([sys.executable, "-m", "aos.cli", "journal", "tail", "j1", "--from", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    async def hold_and_stop() -> None:
        async with await Connection.open(kernel.address) as conn:
            await (await (await conn.restore_kernel(kernel.admin_token)).journal("default")).append("j1", 0, 1, [b"x"])
            assert tail.stdout.readline() == "       0  x\n"  # the tail is connected and following
            kernel.proc.send_signal(signal.SIGTERM)
            await conn.disconnected()

    try:
        run(hold_and_stop())
        assert kernel.proc.wait(30) == 0
        kernel.wait_for_log("event=stopped")
        tail.wait(30)
    finally:
        kernel.kill()
        if tail.poll() is None:
            tail.kill()
            tail.wait()
        tail.stdout.close()
        tail.stderr.close()
    errors = [line for line in kernel.log_lines if "level=error" in line or "Traceback" in line]
    assert errors == []


def test_exit_with_stops_the_kernel_when_that_process_exits(data_dir):
    """`aos-kernel --exit-with PID` shuts down cleanly (exit 0, reason parent_exited) once PID exits."""
    sleeper = subprocess.Popen(["sleep", "600"])
    kernel = KernelProcess(data_dir, extra_args=["--exit-with", str(sleeper.pid)]).start()
    try:
        sleeper.kill()
        sleeper.wait()
        assert kernel.proc.wait(30) == 0
        kernel.wait_for_log("event=shutdown reason=parent_exited")
    finally:
        kernel.kill()
    done = _kernel(data_dir, "--exit-with", str(sleeper.pid))  # already gone at start: starts, then stops at once
    assert done.returncode == 0 and "event=shutdown reason=parent_exited" in done.stderr

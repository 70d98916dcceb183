"""A cluster that speaks TLS end to end: ``aos-scheduler --tls-cert/--tls-key``, host kernels with
their own ``--tls-cert/--tls-key`` joining ``--scheduler tls:HOST:PORT`` with ``--tls-ca``, and
clients (``SchedulerSession(tls=...)``, ``aos``, ``aos-shell``) passing ``--tls-ca`` through, to the
scheduler and to the hosts the introductions name. Real etcd, real processes, a self-signed
certificate made with openssl; each mistake (plain TCP against TLS, a wrong CA, bad TLS options)
is one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from aos.errors import KernelUnavailable
from aos.kernel.client import TlsOptions, run
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.testing import LocalCluster, running_cluster
from aos.kernel.world.loader import read_bundle
from aos.testing import self_signed_certificate

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
COUNTER = os.path.join(REPO, "examples", "counter")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install openssl)")
    where = tmp_path_factory.mktemp("tls")
    cert, key = self_signed_certificate(where)
    other, _ = self_signed_certificate(where, "other")  # a CA that signed nothing here
    return {"cert": cert, "key": key, "other": other}


@pytest.fixture(scope="module")
def cluster(etcd_server: Any, certs: dict[str, str]) -> Iterator[LocalCluster]:
    import uuid

    tls = ["--tls-cert", certs["cert"], "--tls-key", certs["key"], "--tls-ca", certs["cert"]]
    with tempfile.TemporaryDirectory(prefix="aost-", dir="/tmp") as root:
        c = LocalCluster(root, hosts=2, scheduler_args=tls, host_args=[tls, tls])
        with running_cluster(c, f"{etcd_server.url}/t{uuid.uuid4().hex[:12]}"):
            yield c


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}


def _aos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aos.cli", *args], capture_output=True, text=True, env=_env(),
                          timeout=120)


def _plain(address: str) -> str:
    return "tcp:" + address[len("tls:"):]


def test_a_tls_session_creates_a_universe_and_a_world_and_sends_an_event(cluster: LocalCluster,
                                                                          certs: dict[str, str]) -> None:
    """The scheduler says it listens at tls:..., the hosts joined over TLS and advertise tls: addresses,
    and a session with the CA reaches both the scheduler and the world's host."""
    assert cluster.scheduler.address.startswith("tls:127.0.0.1:")
    doc, wasm = read_bundle(COUNTER)

    async def main() -> tuple[Any, ...]:
        async with await SchedulerSession.open(cluster.addresses, cluster.scheduler.admin_token,
                                               tls=TlsOptions(certs["cert"])) as s:
            status = await s.scheduler.status()
            await s.scheduler.create_universe("acme")
            placement, _ = await (await s.universe("acme")).create_world(doc, wasm, "c1")
            world = await s.open_world("acme", "c1")
            await world.send("demo/CounterEvent@1", {"by": 4})
            return status, placement, world.conn.address, await world.state("demo/counter@1")

    status, placement, host_address, state = run(main())
    assert status["leader"]["address"] == cluster.scheduler.address
    assert len(status["hosts"]) == 2 and all(h["address"].startswith("tls:") for h in status["hosts"])
    assert host_address.startswith("tls:") and placement["hostId"] in {h["hostId"] for h in status["hosts"]}
    assert state == {"count": 4}


def test_the_cli_and_aos_shell_pass_tls_ca_through(cluster: LocalCluster, certs: dict[str, str]) -> None:
    """``aos universe`` (a session of cli_cluster), ``aos world`` (the CLI's connection handed to the
    scheduler, then the world's host) and aos-shell, each with --tls-ca."""
    flags = ["--connect", cluster.addresses, "--tls-ca", certs["cert"], "--token-file", cluster.scheduler.token_path]
    created = _aos(*flags, "universe", "create", "cli")
    assert created.returncode == 0, created.stderr
    made = _aos(*flags, "world", "create", COUNTER, "--universe", "cli", "--id", "w1")
    assert made.returncode == 0, made.stderr
    sent = _aos(*flags, "world", "send", "cli/w1", "demo/CounterEvent@1", '{"by": 2}')
    assert sent.returncode == 0, sent.stderr

    shell = subprocess.run([sys.executable, "-m", "aos.shell", *flags, "-u", "cli", "-c",
                            'world w1; send demo/CounterEvent@1 {"by": 3}; state demo/counter@1'],
                           capture_output=True, text=True, env=dict(_env(), TERM="xterm", NO_COLOR="1"),
                           cwd=REPO, timeout=120)
    assert shell.returncode == 0, shell.stderr + shell.stdout
    assert '"count": 5' in shell.stdout.replace("'", '"')


def test_plain_tcp_against_the_tls_scheduler_is_one_line_with_the_hint(cluster: LocalCluster) -> None:
    done = _aos("--connect", _plain(cluster.scheduler.address), "--token-file", cluster.scheduler.token_path,
                "universe", "ls")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pass --tls-ca PEM" in lines[0], done.stderr


def test_a_wrong_ca_is_refused_clearly(cluster: LocalCluster, certs: dict[str, str]) -> None:
    async def main() -> None:
        await SchedulerSession.open(cluster.scheduler.address, cluster.scheduler.admin_token,
                                    tls=TlsOptions(certs["other"]))

    with pytest.raises(KernelUnavailable, match="TLS: .*self-signed certificate"):
        run(main())
    done = _aos("--connect", cluster.scheduler.address, "--tls-ca", certs["other"], "--token-file",
                cluster.scheduler.token_path, "universe", "ls")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "TLS: " in lines[0] and "certificate" in lines[0], done.stderr


@pytest.mark.parametrize("args, expected", [
    (["--tls-cert", "{cert}"], "--tls-cert and --tls-key go together"),
    (["--tls-cert", "/nonexistent.pem", "--tls-key", "{key}"], "--tls-cert /nonexistent.pem: no such file"),
    (["--tls-cert", "{key}", "--tls-key", "{key}"], "--tls-cert {key} / --tls-key {key}: not a usable PEM"),
    (["--tls-ca", "/nonexistent.pem"], "--tls-ca /nonexistent.pem: no such file"),
    (["--tls-ca", "{key}"], "--tls-ca {key}: not a PEM certificate"),
])
def test_bad_tls_options_are_refused_before_the_scheduler_starts(certs: dict[str, str], args: list[str],
                                                                 expected: str) -> None:
    """aos-scheduler's start-up check, shared with aos-kernel (kernel/tls.py)."""
    from aos.errors import InvalidArgument
    from aos.kernel.scheduler import daemon

    parsed = daemon.build_parser().parse_args(["--etcd", "http://127.0.0.1:1", *[a.format(**certs) for a in args]])
    with pytest.raises(InvalidArgument) as refused:
        daemon.check(parsed)
    assert str(refused.value).startswith(expected.format(**certs))


def test_the_scheduler_says_a_bad_tls_option_in_one_line(certs: dict[str, str], tmp_path: Any) -> None:
    done = subprocess.run([sys.executable, "-m", "aos.kernel.scheduler.daemon", "--data", str(tmp_path),
                           "--etcd", "http://127.0.0.1:1", "--tls-cert", certs["cert"]],
                          capture_output=True, text=True, env=_env(), timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["aos-scheduler: --tls-cert and --tls-key go together"], done.stderr


def test_a_kernel_checks_its_tls_ca_for_the_cluster(certs: dict[str, str], tmp_path: Any) -> None:
    from aos.errors import InvalidArgument
    from aos.kernel import daemon

    token = tmp_path / "token"
    token.write_text("aos1_x\n")

    def check(*args: str) -> str:
        with pytest.raises(InvalidArgument) as refused:
            daemon.check(daemon.build_parser().parse_args(["--data", str(tmp_path / "k"), *args]))
        return str(refused.value)

    assert check("--scheduler", "tls:127.0.0.1:1", "--scheduler-token", str(token),
                 "--tls-ca", "/nonexistent.pem") == "--tls-ca /nonexistent.pem: no such file"
    assert "--tls-ca" in check("--tls-ca", certs["cert"])  # outgoing TLS exists only in a cluster


def test_portal_mail_between_tls_hosts(cluster: LocalCluster, certs: dict[str, str]) -> None:
    """A world on one TLS host sends portal mail to a world on the other: the sending host reaches its
    peer at the tls: address the peer advertises, trusting --tls-ca, and each message arrives once."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_portal_cross_host import SCRIPT, manifest, received, sends, until

    ids = ["t0", "t1", "t2"]

    async def main() -> Any:
        async with await SchedulerSession.open(cluster.addresses, cluster.scheduler.admin_token,
                                               tls=TlsOptions(certs["cert"])) as s:
            first, second = sorted(h["hostId"] for h in (await s.scheduler.status())["hosts"])
            await s.scheduler.create_universe("mail")
            mail = await s.universe("mail")
            await mail.create_world(manifest(), None, "s", pin=first)
            await mail.create_world(manifest(), None, "r", pin=second)
            await (await s.open_world("mail", "s")).send(SCRIPT, sends("r", ids))

            async def arrived() -> Any:
                got = await received(s, "mail")
                return got if set(got) >= set(ids) else None

            return await until(arrived, timeout=30.0)

    assert run(main()) == {i: 1 for i in ids}


def test_the_consoles_scheduler_backend_passes_tls_through(cluster: LocalCluster, certs: dict[str, str]) -> None:
    """``aos console --connect tls:... --tls-ca`` (console/cli.py hands its TLS options to open_backend)."""
    from aos.console.cluster import SchedulerBackend, open_backend

    async def main() -> Any:
        backend = await open_backend(cluster.addresses, cluster.scheduler.admin_token, TlsOptions(certs["cert"]))
        try:
            assert isinstance(backend, SchedulerBackend)
            return await backend.cluster()
        finally:
            backend.forget()

    view = run(main())
    assert len(view["hosts"]) == 2 and all(h["address"].startswith("tls:") for h in view["hosts"])

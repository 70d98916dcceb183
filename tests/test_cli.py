"""The `aos` command line against a real kernel, as a user types it."""

import json
import os
import subprocess
import sys


def aos(kernel, *args, stdin=None):
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path)
    return subprocess.run(
        [sys.executable, "-m", "aos.cli", *args], input=stdin, capture_output=True, env=env, timeout=60
    )


def test_cas_put_then_get_round_trips_a_file(kernel, tmp_path):
    """`aos cas put` prints the address; `aos cas get -o` writes the same bytes."""
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(3000))
    put = aos(kernel, "cas", "put", str(source), "--json")
    assert put.returncode == 0, put.stderr
    address = json.loads(put.stdout)["hash"]
    out = tmp_path / "out.bin"
    get = aos(kernel, "cas", "get", address, "-o", str(out))
    assert get.returncode == 0 and out.read_bytes() == source.read_bytes()


def test_journal_append_read_ls(kernel):
    """Appends from the CLI are read back in order, and the world is listed."""
    assert aos(kernel, "journal", "append", "w1", "a", "b").returncode == 0
    assert aos(kernel, "journal", "append", "w1", "c").returncode == 0
    read = aos(kernel, "--json", "journal", "read", "w1")
    assert [r["data"] for r in json.loads(read.stdout)["records"]] == ["a", "b", "c"]
    assert b"w1" in aos(kernel, "journal", "ls").stdout
    human = aos(kernel, "journal", "read", "w1").stdout.decode()
    assert "       2  c" in human and "(next seq 3)" in human


def test_errors_are_one_line_and_exit_1(kernel, tmp_path):
    """Unknown worlds, bad hashes, bad tokens and an absent kernel: one line on stderr, status 1."""
    cases = [
        aos(kernel, "journal", "read", "nope"),
        aos(kernel, "cas", "get", "sha256:beef"),
        aos(kernel, "--token-file", str(tmp_path / "missing"), "status"),
        aos(kernel, "--connect", f"unix:{tmp_path}/no.sock", "status"),
    ]
    (tmp_path / "forged").write_text("aos1_" + "A" * 43)
    cases.append(aos(kernel, "--token-file", str(tmp_path / "forged"), "status"))
    for result in cases:
        assert result.returncode == 1
        lines = result.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("aos: "), result.stderr
    assert b"UnknownWorld" in cases[0].stderr and b"InvalidToken" in cases[4].stderr


def test_status_shows_limits(kernel):
    """`aos status` reports the kernel's version and limits."""
    result = aos(kernel, "status")
    assert result.returncode == 0
    assert b"aos-kernel 0.1.0" in result.stdout and b"limits: message 8.0 MiB" in result.stdout

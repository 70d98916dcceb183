"""No traceback reaches a terminal: ``aos`` and ``aos-shell`` turn every failure into one line and status 1.

The variants are what users and fuzzers hand the CLI: files that cannot be
read, token files of random bytes or nothing, JSON nested deeper than any
parser's stack, malformed JSON, bad addresses and TLS files, each against a
real kernel. The mapping itself (``aos.cli_errors.describe``) is checked
directly for the kinds of exception no user input can provoke on purpose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aos.cli_errors import describe
from aos.errors import UnknownWorld

REPO = Path(__file__).resolve().parents[2]
DEEP_ARRAY = "[" * 20000 + "]" * 20000
DEEP_OBJECT = '{"a":' * 20000 + "1" + "}" * 20000


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Inputs a user might hand the CLI by mistake."""
    (tmp_path / "random.token").write_bytes(os.urandom(64) + b"\xff")
    (tmp_path / "empty.token").write_bytes(b"")
    (tmp_path / "spaced.token").write_text("aos1_abc def\n")
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    deep = tmp_path / "deep-bundle"
    deep.mkdir()
    (deep / "manifest.json").write_text(DEEP_OBJECT)
    broken = tmp_path / "broken-bundle"
    broken.mkdir()
    (broken / "manifest.json").write_text('{"version": 1,')
    binary = tmp_path / "binary-bundle"
    binary.mkdir()
    (binary / "manifest.json").write_bytes(os.urandom(200) + b"\xff\xfe")
    dir_manifest = tmp_path / "dir-manifest"
    (dir_manifest / "manifest.json").mkdir(parents=True)
    return {"tmp": tmp_path, "random": tmp_path / "random.token", "empty": tmp_path / "empty.token",
            "spaced": tmp_path / "spaced.token", "garbage": tmp_path / "garbage.pem", "deep": deep,
            "broken": broken, "binary": binary, "dir_manifest": dir_manifest}


def _aos(kernel, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path)
    for name in ("AOS_UNIVERSE", "AOS_DEBUG", "AOS_TLS_CA", "AOS_TLS_SERVER_NAME"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "aos.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)


def _fill(arg: str, values: dict[str, str]) -> str:
    """Put the fixture's paths into ``@name@`` placeholders."""
    for name, value in values.items():
        arg = arg.replace(f"@{name}@", value)
    return arg


VARIANTS = {
    # files that cannot be read
    "cas put of a directory": (["cas", "put", "@tmp@"], "Is a directory"),
    "cas put of a missing file": (["cas", "put", "@tmp@/nope.bin"], "No such file or directory"),
    "cas get into a missing directory": (["cas", "get", "@blob@", "-o", "@tmp@/no/such/dir/out"],
                                         "No such file or directory"),
    "world create from a missing directory": (["world", "create", "@tmp@/nowhere"], "ManifestError"),
    "world create, manifest is a directory": (["world", "create", "@dir_manifest@"], ""),
    "world create, manifest of random bytes": (["world", "create", "@binary@"], "manifest.json is not UTF-8 text"),
    "world create, truncated manifest": (["world", "create", "@broken@"], ""),
    # tokens
    "token file of random bytes": (["--token-file", "@random@", "status"], "does not hold a token"),
    "empty token file": (["--token-file", "@empty@", "status"], "is empty"),
    "token file with a space": (["--token-file", "@spaced@", "status"], "does not hold a token"),
    "token file is a directory": (["--token-file", "@tmp@", "status"], "cannot read token file"),
    "missing token file": (["--token-file", "@tmp@/none.token", "status"], "cannot read token file"),
    "forged token": (["--token-file", "@forged@", "status"], "InvalidToken"),
    # JSON
    "deeply nested event value": (["world", "send", "c1", "demo/CounterEvent@1", DEEP_ARRAY], "bad JSON"),
    "deeply nested object value": (["world", "send", "c1", "demo/CounterEvent@1", DEEP_OBJECT], "bad JSON"),
    "deeply nested cell key": (["world", "state", "c1", "demo/cells@1", "--key", DEEP_ARRAY], "bad JSON"),
    "deeply nested manifest": (["world", "create", "@deep@"], "manifest.json nests too deeply"),
    "malformed event value": (["world", "send", "c1", "demo/CounterEvent@1", '{"by": 5'], "not valid JSON"),
    "a float where ints live": (["world", "send", "c1", "demo/CounterEvent@1", '{"by": 1.5}'], "no floats"),
    "an int past 64 bits": (["world", "send", "c1", "demo/CounterEvent@1", '{"by": 99999999999999999999999}'],
                            "out of range for int"),
    # addresses and TLS
    "unknown address kind": (["--connect", "udp:1.2.3.4:5", "status"], "bad address"),
    "port that is not a number": (["--connect", "tcp:127.0.0.1:http", "status"], "bad address"),
    "nobody listening": (["--connect", "tcp:127.0.0.1:1", "status"], "KernelUnavailable"),
    "missing TLS CA file": (["--connect", "tcp:127.0.0.1:1", "--tls-ca", "@tmp@/none.pem", "status"],
                            "No such file or directory"),
    "TLS CA file that is not PEM": (["--connect", "tcp:127.0.0.1:1", "--tls-ca", "@garbage@", "status"],
                                    "TLS CA file"),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_bad_input_is_one_line_and_status_1(kernel, files, variant):
    """Each bad input exits 1 with exactly one line on stderr, `aos: ...`, naming what was wrong; no traceback."""
    from aos.kernel.client import Connection, run

    async def prepare() -> str:
        async with await Connection.open(kernel.address) as conn:
            return await (await (await conn.restore_kernel(kernel.admin_token)).cas("default")).put(b"blob")

    blob = run(prepare())
    forged = files["tmp"] / "forged.token"
    forged.write_text("aos1_" + "A" * 43 + "\n")
    _aos(kernel, "world", "create", "examples/counter", "--id", "c1")
    args, expected = VARIANTS[variant]
    fill = {name: str(path) for name, path in files.items()} | {"blob": blob, "forged": str(forged)}
    args = [_fill(a, fill) for a in args]
    done = _aos(kernel, *args)
    lines = done.stderr.splitlines()
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("aos: "), done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "internal error" not in lines[0]
    assert expected in lines[0], lines[0]
    assert done.stdout == ""


SHELL_VARIANTS = {
    "token file of random bytes": (["--token-file", "@random@", "-c", "worlds"], "does not hold a token"),
    "deeply nested event value": (["-c", f"world c1; send demo/CounterEvent@1 {DEEP_ARRAY}"], "bad JSON"),
    "deeply nested cell key": (["-c", f"world c1; state demo/cells@1 --key {DEEP_OBJECT}"], "bad JSON"),
    "deeply nested manifest": (["-c", "create @deep@"], "manifest.json nests too deeply"),
    "missing TLS CA file": (["--connect", "tcp:127.0.0.1:1", "--tls-ca", "@tmp@/none.pem", "-c", "worlds"],
                            "No such file or directory"),
}


@pytest.mark.parametrize("variant", list(SHELL_VARIANTS))
def test_aos_shell_says_the_same_in_one_line(kernel, files, variant):
    """aos-shell (script mode) prints one `error: ...` line and exits 1 for the same inputs; no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    env["AOS_SHELL_HISTORY"] = str(files["tmp"] / "history")
    subprocess.run([sys.executable, "-m", "aos.cli", "--connect", kernel.address, "--token-file", kernel.token_path,
                    "world", "create", "examples/counter", "--id", "c1"], cwd=REPO, env=env, check=True,
                   capture_output=True)
    args, expected = SHELL_VARIANTS[variant]
    fill = {name: str(path) for name, path in files.items()}
    args = [_fill(a, fill) for a in args]
    command = [sys.executable, "-m", "aos.shell", "--connect", kernel.address, *args]
    if "--token-file" not in args:
        command[5:5] = ["--token-file", kernel.token_path]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    lines = done.stderr.splitlines()
    assert done.returncode == 1, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    assert "Traceback" not in done.stderr and expected in lines[0], lines[0]


def test_describe_maps_every_kind_of_failure_to_one_line():
    """AosError -> its class and message; OSError -> path and reason; JSON -> bad JSON; the rest -> internal error."""
    assert describe(UnknownWorld("no world 'x'\n in universe u")) == "UnknownWorld: no world 'x' in universe u"
    assert describe(IsADirectoryError(21, "Is a directory", "/tmp")) == "/tmp: Is a directory"
    assert describe(ConnectionRefusedError(111, "Connection refused")) == "Connection refused"
    try:
        json.loads(DEEP_ARRAY)
    except RecursionError as exc:
        assert describe(exc) == "bad JSON: nested too deeply"
    try:
        json.loads('{"a": ')
    except ValueError as exc:
        assert describe(exc).startswith("bad JSON: Expecting value")
    assert describe(RecursionError("maximum recursion depth exceeded")) == \
        "internal error: RecursionError: maximum recursion depth exceeded"  # not from JSON: a bug of ours
    assert describe(KeyError("k")) == "internal error: KeyError: 'k'"
    assert "\n" not in describe(RuntimeError("two\nlines"))


def test_aos_debug_adds_the_traceback_of_an_internal_error(capsys, monkeypatch):
    """With AOS_DEBUG=1 an internal error prints its traceback before the one line; without, only the line."""
    from aos.cli_errors import report

    try:
        {}["missing"]
    except KeyError as exc:
        error = exc
    monkeypatch.delenv("AOS_DEBUG", raising=False)
    report("aos", error)
    assert capsys.readouterr().err == "aos: internal error: KeyError: 'missing'\n"
    monkeypatch.setenv("AOS_DEBUG", "1")
    report("aos", error)
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and err.endswith("aos: internal error: KeyError: 'missing'\n")

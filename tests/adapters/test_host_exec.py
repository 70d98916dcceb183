"""host.exec: real subprocesses under a grant: allow lists, process-group kills, output caps, environment and secrets."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from aos.adapters._common import Scrubber, StreamScrubber
from aos.adapters.base import EffectCall
from aos.adapters.host_exec import HostExecAdapter

EXEC = HostExecAdapter()
TOKEN = "s3cr3t-t0ken-value"


def alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def group_alive(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes in process group ``pgid``."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(name))
    return out


def wait_until(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


@pytest.fixture
def grant(tmp_path: Path) -> dict:
    work = tmp_path / "work"
    work.mkdir()
    return {"cwd": str(work), "allow": None}


def test_echo_and_frames(grant, run_effect):
    """A command's stdout, exit code 0 and an ok status come back, and its output is streamed as frames."""
    r = run_effect(EXEC, "host.exec", {"argv": ["echo", "hello", "world"]}, {**grant, "allow": ["echo"]})
    assert r.status == "ok" and r.payload["exit_code"] == 0
    assert r.payload["stdout"] == "hello world\n" and r.payload["stderr"] == ""
    assert r.payload["truncated"] is False
    assert "".join(f["data"] for f in run_effect.frames if f["stream"] == "stdout") == "hello world\n"
    json.dumps(r.to_dict())  # journal-friendly


def test_nonzero_exit_is_error_with_output(grant, run_effect):
    """A non-zero exit is an exit_status error whose payload still holds the exit code and both streams."""
    r = run_effect(EXEC, "host.exec", {"argv": ["sh", "-c", "echo out; echo oops >&2; exit 3"]}, grant)
    assert (r.status, r.error) == ("error", "exit_status")
    assert r.payload["exit_code"] == 3 and r.payload["stdout"] == "out\n" and r.payload["stderr"] == "oops\n"
    assert "3" in r.message


def test_not_allowed(grant, run_effect, tmp_path):
    """A command outside the grant's allow list (by name, by path, or as a local script) is refused and never runs."""
    g = {**grant, "allow": ["echo"]}
    marker = tmp_path / "marker"
    marker.write_text("keep")
    r = run_effect(EXEC, "host.exec", {"argv": ["rm", str(marker)]}, g)
    assert (r.status, r.error) == ("error", "not_allowed") and marker.exists()
    assert run_effect(EXEC, "host.exec", {"argv": ["/bin/rm", str(marker)]}, g).error == "not_allowed"
    assert run_effect(EXEC, "host.exec", {"argv": ["./echo"]}, g).error == "not_allowed"
    assert run_effect(EXEC, "host.exec", {"argv": ["echo", "x"]}, {"cwd": grant["cwd"], "commands": ["ls"]}).error == "not_allowed"
    assert marker.exists()


def test_allowed_name_resolves_on_host_path_not_params_path(grant, run_effect):
    """An allowed bare name is looked up on the kernel's PATH; a PATH in params is refused, so it cannot substitute a world-written program."""
    work = Path(grant["cwd"])
    (work / "bin").mkdir()
    fake = work / "bin" / "echo"
    fake.write_text(f"#!/bin/sh\ntouch {work}/hijacked\n")
    fake.chmod(0o755)
    g = {**grant, "allow": ["echo"], "allow_env": ["*"]}
    r = run_effect(EXEC, "host.exec", {"argv": ["echo", "real"], "env": {"PATH": str(work / "bin")}}, g)
    assert (r.status, r.error) == ("error", "not_allowed") and not (work / "hijacked").exists()
    assert run_effect(EXEC, "host.exec", {"argv": ["echo", "real"]}, g).payload["stdout"] == "real\n"


def test_timeout_kills_whole_process_group(grant, run_effect):
    """On timeout the status is 'timeout' and every process in the command's group, background ones too, is killed."""
    g = {**grant, "max_timeout_s": 1.0}  # the grant's cap wins over the 100 s asked for
    script = "echo $$; sleep 100 & echo $!; sleep 100"
    t0 = time.monotonic()
    r = run_effect(EXEC, "host.exec", {"argv": ["sh", "-c", script], "timeout_s": 100}, g)
    assert time.monotonic() - t0 < 10
    assert (r.status, r.error) == ("timeout", "timeout") and r.payload["exit_code"] is None
    pgid, bg = (int(x) for x in r.payload["stdout"].split())
    assert wait_until(lambda: not alive(bg) and not group_alive(pgid)), group_alive(pgid)
    assert wait_until(lambda: _killpg_gone(pgid))


def _killpg_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return not group_alive(pgid)  # only zombies left, waiting for init to reap them


def test_background_process_does_not_outlive_command(grant, run_effect):
    """A command that exits while a background child holds its stdout returns at once, and the child is killed."""
    t0 = time.monotonic()
    r = run_effect(EXEC, "host.exec", {"argv": ["sh", "-c", "sleep 100 & echo $!"], "timeout_s": 30}, grant)
    assert r.status == "ok" and time.monotonic() - t0 < 10
    bg = int(r.payload["stdout"])
    assert wait_until(lambda: not alive(bg))


def test_escaped_process_cannot_hold_the_effect_open(grant, run_effect):
    """A process that leaves the group (setsid) while holding stdout delays the receipt only by the drain grace."""
    script = 'setsid sh -c "echo \\$\\$ > esc.pid; exec sleep 30" & while [ ! -s esc.pid ]; do :; done; echo started'
    t0 = time.monotonic()
    r = run_effect(HostExecAdapter(drain_grace_s=0.2), "host.exec", {"argv": ["sh", "-c", script], "timeout_s": 20}, grant)
    elapsed = time.monotonic() - t0
    escaped = int((Path(grant["cwd"]) / "esc.pid").read_text())
    try:
        assert r.status == "ok" and r.payload["stdout"] == "started\n"
        assert elapsed < 5
        assert alive(escaped)  # it really did escape: only a cgroup could have caught it
    finally:
        os.kill(escaped, 9)


def test_output_cap(grant, run_effect):
    """Output beyond the cap is counted and dropped, with a truncated flag, and the default cap is 1 MiB."""
    big = ["sh", "-c", "head -c 3000000 /dev/zero; echo done >&2"]
    r = run_effect(EXEC, "host.exec", {"argv": big, "max_output_bytes": 1000, "encoding": "bytes"}, grant)
    assert r.status == "ok"
    assert r.payload["stdout"] == b"\0" * 1000 and r.payload["stdout_bytes"] == 3_000_000
    assert r.payload["stdout_truncated"] is True and r.payload["truncated"] is True
    assert r.payload["stderr"] == b"done\n" and r.payload["stderr_truncated"] is False
    assert sum(len(f["data"]) for f in run_effect.frames if f["stream"] == "stdout") == 1000
    r = run_effect(EXEC, "host.exec", {"argv": big}, grant)
    assert len(r.payload["stdout"]) == 1024 * 1024 and r.payload["stdout_truncated"] is True


def test_environment_is_minimal_and_secret_names_filtered(grant, run_effect, monkeypatch):
    """The child gets a minimal environment; a host variable named like a secret is withheld even if the grant passes it through."""
    monkeypatch.setenv("AOS_TEST_API_KEY", "sekret")
    monkeypatch.setenv("AOS_TEST_PLAIN", "visible")
    r = run_effect(EXEC, "host.exec", {"argv": ["env"]}, grant)
    env = dict(line.split("=", 1) for line in r.payload["stdout"].splitlines())
    assert set(env) == {"PATH", "HOME", "LANG", "TERM"} and env["TERM"] == "dumb"
    g = {**grant, "inherit_env": ["AOS_TEST_API_KEY", "AOS_TEST_PLAIN"], "allow_env": ["EXTRA"]}
    r = run_effect(EXEC, "host.exec", {"argv": ["env"], "env": {"EXTRA": "1"}}, g)
    assert "AOS_TEST_PLAIN=visible" in r.payload["stdout"] and "EXTRA=1" in r.payload["stdout"]
    assert "sekret" not in r.payload["stdout"] and "AOS_TEST_API_KEY" not in r.payload["stdout"]


def test_secret_injected_by_name_and_redacted(grant, run_effect):
    """A granted secret reaches the child by name, but its value appears nowhere in the receipt or the frames."""
    script = 'echo "token is $GH_TOKEN"; echo "$GH_TOKEN" >&2; printf %s "$GH_TOKEN" > seen'
    params = {"argv": ["sh", "-c", script], "env": {"GH_TOKEN": {"secret": "github"}}}
    r = run_effect(EXEC, "host.exec", params, {**grant, "allow_env": ["GH_TOKEN"]}, secrets={"github": TOKEN}.__getitem__)
    assert r.status == "ok"
    assert (Path(grant["cwd"]) / "seen").read_text() == TOKEN  # the child really had it
    assert r.payload["stdout"] == "token is [redacted]\n" and r.payload["stderr"] == "[redacted]\n"
    assert TOKEN not in repr(r) and TOKEN not in repr(run_effect.frames)
    assert "[redacted]" in "".join(f["data"] for f in run_effect.frames)


def test_secret_cut_by_output_cap_does_not_leak(grant, run_effect):
    """A secret that straddles the output cap is redacted before the cut, so not even its first bytes appear."""
    params = {
        "argv": ["sh", "-c", 'printf "%s%s" "$(head -c 97 /dev/zero | tr "\\0" x)" "$T"'],
        "env": {"T": {"secret": "t"}},
        "max_output_bytes": 100,
    }
    r = run_effect(EXEC, "host.exec", params, {**grant, "allow_env": ["T"]}, secrets={"t": TOKEN}.__getitem__)
    assert r.payload["stdout"] == "x" * 97 + "[re" and r.payload["stdout_truncated"] is True
    assert TOKEN[:3] not in repr(r) and TOKEN[:3] not in repr(run_effect.frames)


def test_secret_unavailable(grant, run_effect):
    """A secret the resolver refuses ends the effect secret_unavailable without running anything."""
    params = {"argv": ["sh", "-c", "touch ran"], "env": {"X": {"secret": "nope"}}}
    grant = {**grant, "allow_env": ["X"]}
    r = run_effect(EXEC, "host.exec", params, grant, secrets={}.__getitem__)
    assert r.error == "secret_unavailable" and not (Path(grant["cwd"]) / "ran").exists()
    assert run_effect(EXEC, "host.exec", params, grant).error == "secret_unavailable"


def test_stream_scrubber_catches_secret_split_across_chunks():
    """A secret split over several chunks of a stream is still redacted, and nothing else is lost."""
    s = StreamScrubber(Scrubber([TOKEN]))
    text = f"a{TOKEN}b{TOKEN}".encode()
    out = b"".join(s.feed(text[i : i + 3]) for i in range(0, len(text), 3)) + s.flush()
    assert out == b"a[redacted]b[redacted]"


def test_stdin_large_without_deadlock(grant, run_effect):
    """stdin is fed while output is read, so 2 MiB through cat neither deadlocks nor loses bytes."""
    r = run_effect(EXEC, "host.exec", {"argv": ["cat"], "stdin": "abc"}, grant)
    assert r.payload["stdout"] == "abc"
    data = os.urandom(2 * 1024 * 1024)
    r = run_effect(EXEC, "host.exec", {"argv": ["cat"], "stdin": data, "encoding": "bytes", "max_output_bytes": 4 << 20}, grant)
    assert r.status == "ok" and r.payload["stdout"] == data


def test_cwd_confined(grant, run_effect, tmp_path):
    """cwd is relative to the grant's directory; '..' and a symlink to outside are refused path_escape."""
    work = Path(grant["cwd"])
    (work / "sub").mkdir()
    (work / "out").symlink_to(tmp_path)
    r = run_effect(EXEC, "host.exec", {"argv": ["pwd"], "cwd": "sub"}, grant)
    assert r.payload["stdout"].strip() == str((work / "sub").resolve())
    assert run_effect(EXEC, "host.exec", {"argv": ["pwd"]}, grant).payload["stdout"].strip() == str(work.resolve())
    assert run_effect(EXEC, "host.exec", {"argv": ["pwd"], "cwd": ".."}, grant).error == "path_escape"
    assert run_effect(EXEC, "host.exec", {"argv": ["pwd"], "cwd": "out"}, grant).error == "path_escape"
    assert run_effect(EXEC, "host.exec", {"argv": ["pwd"], "cwd": "missing"}, grant).error == "not_found"


def test_shell_needs_grant(grant, run_effect):
    """shell: true is refused unless the grant allows it, and then runs the script with /bin/sh."""
    params = {"argv": ["echo abc | tr a z"], "shell": True}
    assert run_effect(EXEC, "host.exec", params, {**grant, "allow": ["echo"]}).error == "not_allowed"
    r = run_effect(EXEC, "host.exec", params, {**grant, "shell": True})
    assert r.payload["stdout"] == "zbc\n"


def test_unknown_command_and_bad_params(grant, run_effect):
    """A missing program is not_found and malformed params are invalid_params, never exceptions."""
    assert run_effect(EXEC, "host.exec", {"argv": ["no-such-program-aos"]}, grant).error == "not_found"
    assert run_effect(EXEC, "host.exec", {"argv": []}, grant).error == "invalid_params"
    assert run_effect(EXEC, "host.exec", {"argv": "echo hi"}, grant).error == "invalid_params"
    assert run_effect(EXEC, "host.exec", {"argv": ["echo"], "timeout_s": -1}, grant).error == "invalid_params"
    assert run_effect(EXEC, "sys/host.exec@1", {"argv": ["true"]}, grant).status == "ok"


def test_invalid_utf8_output(grant, run_effect):
    """Undecodable output becomes U+FFFD in text mode and is exact in bytes mode."""
    params = {"argv": ["printf", "a\\377b"]}
    assert run_effect(EXEC, "host.exec", params, grant).payload["stdout"] == "a\ufffdb"
    assert run_effect(EXEC, "host.exec", {**params, "encoding": "bytes"}, grant).payload["stdout"] == b"a\xffb"


def test_cancellation_kills_process_group(grant):
    """Cancelling a running effect (as the runtime does on shutdown) kills the command's whole process group."""
    seen: list[dict] = []

    async def main() -> None:
        got_pids = asyncio.Event()

        async def sink(frame):
            seen.append(dict(frame))
            if len("".join(f["data"] for f in seen).split()) == 2:
                got_pids.set()

        call = EffectCall("host.exec", {"argv": ["sh", "-c", "echo $$; sleep 100 & echo $!; sleep 100"]}, grant, "k")
        task = asyncio.ensure_future(EXEC.run(call, sink))
        await asyncio.wait_for(got_pids.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    pgid, bg = (int(x) for x in "".join(f["data"] for f in seen).split())
    assert wait_until(lambda: not alive(bg) and not group_alive(pgid))


def test_a_file_that_is_not_executable_is_permission_denied(grant, run_effect):
    """A command that exists but may not be executed is permission_denied before anything runs."""
    script = Path(grant["cwd"]) / "notes.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o644)
    assert run_effect(EXEC, "host.exec", {"argv": ["./notes.sh"]}, grant).error == "permission_denied"
    script.chmod(0o755)
    assert run_effect(EXEC, "host.exec", {"argv": ["./notes.sh"]}, grant).payload["stdout"] == "ran\n"


def test_a_command_dies_with_the_process_that_started_it(tmp_path):
    """The command is SIGKILLed when the process that ran the adapter dies (PR_SET_PDEATHSIG), though
    the spawn forks no Python (no preexec_fn: setpriv sets the signal in the child)."""
    import subprocess
    import sys

    pid_file = tmp_path / "pid"
    runner = (
        "import asyncio, sys\n"
        "from aos.adapters.base import EffectCall\n"
        "from aos.adapters.host_exec import HostExecAdapter, _SETPRIV\n"
        "print('setpriv' if _SETPRIV else 'preexec', flush=True)\n"
        f"call = EffectCall('host.exec', {{'argv': ['sh', '-c', 'echo $$ > {pid_file}; exec sleep 60']}}, "
        f"{{'cwd': {str(tmp_path)!r}, 'allow': None}}, 'ik')\n"
        "asyncio.run(HostExecAdapter().run(call, lambda f: None))\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", runner], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() in ("setpriv", "preexec")
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 10)
        child = int(pid_file.read_text())
        assert alive(child)
    finally:
        parent.kill()
        parent.wait()
    assert wait_until(lambda: not alive(child), 10)

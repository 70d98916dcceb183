"""``host.exec``: run one command on the host, under a ``{"cwd", "allow"}`` grant.

How it works. ``argv`` is executed directly (no shell, unless both the grant
and the params say ``shell: true``, in which case ``argv`` is one script run
by ``/bin/sh -c``). A bare command name must be in the grant's ``allow``
list (``commands`` is accepted as the same thing, as in world manifests) and
is looked up on the kernel's own PATH (``exec_path``: ``AOS_EXEC_PATH`` or
the kernel's ``PATH``, keeping only absolute directories outside the grant's
directory that not everyone can write), never on one the world supplies,
and never resolving to a file inside the grant's directory, so a world
cannot shadow an allowed command with a file it wrote. (With a shell or no
allow list the world may run anything, so there the kernel's PATH is kept
whole, less relative entries.) Under an allow list a
name with a ``/`` must be an absolute path listed exactly: a relative one
(``./echo``) would run whatever file is at that place below the working
directory, so it is refused even if listed. The child runs in the grant's
``cwd`` (or a directory below it, confined like ``host.fs``) in a new session,
so it leads its own process group: on timeout, on cancellation, and when the
command exits, the whole group gets SIGKILL, so no background process it
started outlives the effect (one that calls ``setsid`` itself escapes; only
a cgroup could catch that).

The environment is built, not inherited (``exec_env``): the kernel's fixed
``PATH``, ``HOME`` and ``LANG`` from the host, ``TERM=dumb``, any host
variables the grant lists in ``inherit_env`` whose names do not look like
secrets, then the params' ``env``, whose names must be in the grant's
``allow_env`` and never one that changes what a program loads or runs
(``LD_*``, ``BASH_ENV``, ``PYTHON*``, ``GIT_*``, ...: ``exec_env.DENIED``,
refused whatever the grant says). An ``env`` value ``{"secret": "NAME"}`` is
resolved through ``call.secrets``; its value is replaced by ``[redacted]`` in the captured
output, in stream frames (which hold back enough bytes to catch a value
split across reads) and in the receipt.

stdout and stderr are read as they arrive, sent as frames
``{"stream": "stdout" | "stderr", "data": ...}`` and kept up to a cap each;
the pipes are drained past the cap so the child never blocks on them.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import exec_env
from ._common import (
    Fail,
    Scrubber,
    StreamScrubber,
    decode_text,
    effect_name,
    grant_num,
    looks_secret,
    p_bool,
    p_int,
    p_seconds,
    p_str,
    resolve_secret,
    secret_ref,
)
from .base import EffectCall, FrameSink, Receipt

MiB = 1024 * 1024
DEFAULT_TIMEOUT_S = 60.0
MAX_TIMEOUT_S = 600.0  # grant ``max_timeout_s`` overrides
DEFAULT_OUTPUT_BYTES = 1 * MiB
MAX_OUTPUT_BYTES = 8 * MiB  # grant ``max_output_bytes`` overrides
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
MAX_ARG_BYTES = 128 * 1024  # Linux refuses a longer single argument or variable (MAX_ARG_STRLEN)
MAX_EXEC_BYTES = 1024 * 1024  # argv plus environment, under the kernel's ARG_MAX with room to spare
DRAIN_GRACE_S = 2.0  # after the group is killed, how long to wait for the pipes to close


@dataclass
class _Spec:
    argv: list[str]
    executable: str
    cwd: str
    env: dict[str, str]
    stdin: bytes | None
    timeout: float
    cap: int
    encoding: str


# util-linux's setpriv sets PR_SET_PDEATHSIG in the child and execs the command, so the spawn needs no
# preexec_fn: with one, Python must fork() the whole kernel (page tables of every mapping, the event loop
# blocked meanwhile: ~50 ms for a 150 MB process on a busy machine) instead of vfork()ing it (~2 ms)
_SETPRIV = shutil.which("setpriv", path="/usr/bin:/bin") if os.uname().sysname == "Linux" else None


def _spawn(spec: _Spec) -> tuple[str, list[str], dict[str, Any]]:
    """(program, argv, extra Popen arguments) that run ``spec`` and die with the kernel."""
    if _SETPRIV is None:
        return spec.executable, spec.argv, {"preexec_fn": _die_with_parent}
    if not os.access(spec.executable, os.X_OK):  # what exec would refuse, said before setpriv runs
        raise PermissionError(spec.executable)
    # the command's argv[0] becomes its resolved path (setpriv execs that path with the rest)
    return _SETPRIV, [_SETPRIV, "--pdeathsig", "KILL", "--", spec.executable, *spec.argv[1:]], {}


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the kernel dies (Linux PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the process-group record below still covers it
        pass


def _start_time(pid: int) -> str:
    """The kernel's start time of a process (field 22 of /proc/PID/stat): tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def sweep_orphans(run_dir: str) -> int:
    """Kill the process groups of commands a previous kernel left running (it was killed
    mid-command); returns how many were killed. Each record is ``pgid`` -> start time."""
    killed = 0
    if not os.path.isdir(run_dir):
        return 0
    for name in os.listdir(run_dir):
        path = os.path.join(run_dir, name)
        try:
            with open(path) as f:
                started = f.read().strip()
            pgid = int(name)
        except (OSError, ValueError):
            continue
        if started and _start_time(pgid) == started:
            _kill_group(pgid)
            killed += 1
        try:
            os.unlink(path)
        except OSError:
            pass
    return killed


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _inside(path: str, base: str) -> bool:
    return base != "/" and (path == base or path.startswith(base.rstrip("/") + "/"))


def exec_path(root: str, strict: bool = True) -> str:
    """The PATH commands are looked up on, and that children get: the kernel's
    ``AOS_EXEC_PATH`` or ``PATH`` (or ``DEFAULT_PATH``), keeping only absolute
    directories that exist and, if ``strict``, are outside ``root`` (the
    grant's directory, which the world may write) and are not writable by
    everyone (a ``/tmp/bin`` would let any process plant an ``echo``). Never
    empty: an empty PATH means the current directory to ``execvp``."""
    raw = os.environ.get("AOS_EXEC_PATH") or os.environ.get("PATH") or DEFAULT_PATH
    keep: list[str] = []
    for d in raw.split(":"):
        if not os.path.isabs(d) or d in keep:
            continue
        real = os.path.realpath(d)
        try:
            info = os.stat(real)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or strict and (_inside(real, root) or info.st_mode & stat.S_IWOTH):
            continue
        keep.append(d)
    return ":".join(keep) or "/nonexistent"


def _confine(base: str, rel: str) -> str:
    """``base/rel`` with symlinks resolved, refused unless inside ``base``."""
    if "\0" in rel:
        raise Fail("invalid_params", "'cwd' contains a NUL byte")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Fail("path_escape", f"cwd {rel!r} may not contain '..'")
    real = os.path.realpath(os.path.join(base, *parts))
    if real != base and not real.startswith(base.rstrip("/") + "/"):
        raise Fail("path_escape", f"cwd {rel!r} leads outside the grant's directory")
    if not os.path.exists(real):
        raise Fail("not_found", f"cwd {rel!r} does not exist")
    if not os.path.isdir(real):
        raise Fail("not_a_directory", f"cwd {rel!r} is not a directory")
    return real


class HostExecAdapter:
    """Carries out ``host.exec`` effects."""

    kinds: tuple[str, ...] = ("host.exec",)

    def __init__(self, drain_grace_s: float = DRAIN_GRACE_S, run_dir: str | None = None) -> None:
        self.drain_grace_s = drain_grace_s
        # where running process groups are recorded, so a kernel restarted after a
        # crash can kill what its predecessor left behind (``sweep_orphans``)
        self.run_dir = run_dir

    def _remember(self, pgid: int) -> str | None:
        if self.run_dir is None:
            return None
        os.makedirs(self.run_dir, exist_ok=True)
        path = os.path.join(self.run_dir, str(pgid))
        with open(path, "w") as f:
            f.write(_start_time(pgid))
        return path

    async def run(self, call: EffectCall, emit_frame: FrameSink) -> Receipt:
        if effect_name(call.kind) != "host.exec":
            return Receipt.fail("unsupported", f"host.exec adapter does not handle {call.kind!r}")
        scrub = Scrubber()
        try:
            spec = self._prepare(call, scrub)
            receipt = await self._execute(spec, emit_frame, scrub)
        except Fail as f:
            receipt = f.receipt()
        return scrub.receipt(receipt)

    # --- checking the request against the grant --------------------------------------------------
    def _prepare(self, call: EffectCall, scrub: Scrubber) -> _Spec:
        grant, params = call.grant, call.params
        root = grant.get("cwd")
        if not isinstance(root, str) or not os.path.isabs(root):
            raise Fail("bad_grant", "host.exec grant needs an absolute 'cwd'")
        root = os.path.realpath(root)
        if not os.path.isdir(root):
            raise Fail("not_found", "the grant's working directory does not exist")
        allow = grant["allow"] if "allow" in grant else grant.get("commands")
        if allow is not None and (not isinstance(allow, (list, tuple)) or not all(isinstance(a, str) for a in allow)):
            raise Fail("bad_grant", "grant parameter 'allow' must be a list of command names or null")

        argv = params.get("argv")
        if not isinstance(argv, (list, tuple)) or not argv or not all(isinstance(a, str) for a in argv):
            raise Fail("invalid_params", "'argv' must be a non-empty list of strings")
        if any("\0" in a for a in argv):
            raise Fail("invalid_params", "'argv' contains a NUL byte")
        argv = list(argv)
        cwd = _confine(root, p_str(params, "cwd", ".")) if params.get("cwd") is not None else root

        shell = p_bool(params, "shell", False)
        if shell and grant.get("shell") is not True:
            raise Fail("not_allowed", "the grant does not allow shell commands")
        # Under an allow list the PATH decides which program an allowed name (and every name the
        # program runs) is, so it must hold nothing the world can write. With a shell or no allow
        # list the world may run any program anyway: the kernel's PATH is kept whole, so that a
        # repository's own tools (REPO/.venv/bin on the operator's PATH) still work for an agent.
        restricted = allow is not None and not shell
        host_path = exec_path(root, strict=restricted)
        env = self._env(call, host_path, scrub)

        if shell:
            if len(argv) != 1:
                raise Fail("invalid_params", "with shell: true, 'argv' is one script string")
            argv = ["/bin/sh", "-c", argv[0]]
            executable = "/bin/sh"
        else:
            cmd = argv[0]
            if allow is not None and cmd not in allow:
                raise Fail("not_allowed", f"command {cmd!r} is not allowed by the grant")
            if "/" in cmd:
                if not os.path.isabs(cmd) and allow is not None:
                    raise Fail(
                        "not_allowed",
                        f"command {cmd!r} is a relative path, which names whatever file is at that place "
                        "below the working directory; the grant must list an absolute path",
                    )
                executable = os.path.join(cwd, cmd)
                if not os.path.isfile(executable):
                    raise Fail("not_found", f"command {cmd!r} does not exist")
            else:
                found = shutil.which(cmd, path=host_path)
                if found is None:
                    raise Fail("not_found", f"command {cmd!r} is not on the PATH")
                if restricted and _inside(os.path.realpath(found), root):
                    raise Fail("not_allowed", f"command {cmd!r} resolves to a file inside the grant's directory")
                executable = found
        size = sum(len(a.encode()) + 1 for a in argv) + sum(len(k) + len(v.encode()) + 2 for k, v in env.items())
        if size > MAX_EXEC_BYTES or any(len(a.encode()) >= MAX_ARG_BYTES for a in argv):
            raise Fail("too_large", f"argv and environment are {size} bytes; the limit is {MAX_EXEC_BYTES}, "
                                    f"and {MAX_ARG_BYTES} for one argument")

        stdin = params.get("stdin")
        if isinstance(stdin, str):
            stdin = stdin.encode("utf-8")
        elif isinstance(stdin, (bytearray, memoryview)):
            stdin = bytes(stdin)
        elif stdin is not None and not isinstance(stdin, bytes):
            raise Fail("invalid_params", "'stdin' must be text or bytes")

        max_timeout = float(grant_num(grant, "max_timeout_s", MAX_TIMEOUT_S))
        if params.get("timeout_ms") is not None:
            # world values have no floats: sub-second timeouts come in milliseconds
            timeout = p_seconds({"timeout_ms": params["timeout_ms"]}, "timeout_ms", DEFAULT_TIMEOUT_S * 1000,
                                max_timeout * 1000) / 1000
        else:
            timeout = p_seconds(params, "timeout_s", DEFAULT_TIMEOUT_S, max_timeout)
        max_cap = int(grant_num(grant, "max_output_bytes", MAX_OUTPUT_BYTES))
        cap = min(p_int(params, "max_output_bytes", min(DEFAULT_OUTPUT_BYTES, max_cap)), max_cap)
        encoding = p_str(params, "encoding", "utf-8", choices=("utf-8", "bytes"))
        return _Spec(argv, executable, cwd, env, stdin, timeout, cap, encoding)

    def _env(self, call: EffectCall, path: str, scrub: Scrubber) -> dict[str, str]:
        """The child's whole environment (see ``exec_env``). Every name is checked
        before any secret is resolved, so a refused request resolves nothing."""
        grant, params = call.grant, call.params
        try:
            allow = exec_env.EnvAllow.parse(grant.get("allow_env"))
        except ValueError as e:
            raise Fail("bad_grant", f"grant parameter 'allow_env' {e}") from None
        env = exec_env.base_env(os.environ, path)
        inherit = grant.get("inherit_env") or ()
        if not isinstance(inherit, (list, tuple)) or not all(exec_env.valid_name(n) for n in inherit):
            raise Fail("bad_grant", "grant parameter 'inherit_env' must be a list of variable names")
        for name in inherit:
            why = exec_env.denied(name)
            if why is not None:
                raise Fail("bad_grant",
                           f"grant parameter 'inherit_env' names {name!r}, which host.exec never passes: {why}")
            if name in os.environ and not looks_secret(name):
                env[name] = os.environ[name]
        extra = params.get("env") or {}
        if not isinstance(extra, Mapping):
            raise Fail("invalid_params", "'env' must be a map of names to text or {\"secret\": NAME}")
        if len(extra) > exec_env.MAX_ENV_VARS:
            raise Fail("too_large", f"'env' has {len(extra)} variables; the limit is {exec_env.MAX_ENV_VARS}")
        for name in extra:
            if not exec_env.valid_name(name):
                raise Fail("invalid_params", f"bad environment variable name {name!r}: use [A-Za-z_][A-Za-z0-9_]*")
        refusal = exec_env.check_world_env(extra, allow)
        if refusal is not None:
            raise Fail("not_allowed", refusal)
        for name, value in extra.items():
            ref = secret_ref(value)
            if ref is not None:
                value = resolve_secret(call, ref)
                scrub.add(value)
            elif not isinstance(value, str):
                raise Fail("invalid_params", f"env {name!r} must be text or {{\"secret\": NAME}}")
            if "\0" in value:
                raise Fail("invalid_params", f"env {name!r} contains a NUL byte")
            if len(value.encode()) >= MAX_ARG_BYTES:
                raise Fail("too_large", f"env {name!r} is over {MAX_ARG_BYTES} bytes")
            env[name] = value
        return env

    # --- running it ---------------------------------------------------------------------------------
    async def _execute(self, spec: _Spec, emit_frame: FrameSink, scrub: Scrubber) -> Receipt:
        loop = asyncio.get_running_loop()
        out, err = _Capture("stdout", spec, scrub), _Capture("stderr", spec, scrub)
        proto = _Protocol(loop, {1: out, 2: err})
        started = time.monotonic()
        try:
            program, argv, extra = _spawn(spec)
            transport, _ = await loop.subprocess_exec(
                lambda: proto,
                *argv,
                executable=program,
                cwd=spec.cwd,
                env=spec.env,
                stdin=subprocess.PIPE if spec.stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own session, so its own process group (pgid == pid)
                **extra,
            )
        except FileNotFoundError:
            raise Fail("not_found", f"command {spec.argv[0]!r} could not be started: not found") from None
        except PermissionError:
            raise Fail("permission_denied", f"command {spec.argv[0]!r} could not be started: permission denied") from None
        except OSError as e:
            raise Fail("exec_error", f"command {spec.argv[0]!r} could not be started: {e.strerror or e}") from None

        pgid = transport.get_pid()
        record = self._remember(pgid)
        frames = asyncio.ensure_future(_send_frames(proto.frames, emit_frame))
        timed_out = False
        try:
            try:
                if spec.stdin is not None:
                    stdin = transport.get_pipe_transport(0)
                    assert isinstance(stdin, asyncio.WriteTransport)
                    stdin.write(spec.stdin)  # buffered by the transport; a child that exits early just drops it
                    stdin.write_eof()
                try:
                    async with asyncio.timeout(spec.timeout):
                        await asyncio.shield(proto.exited)
                except TimeoutError:
                    timed_out = True
            finally:
                # on exit, timeout or cancellation alike: nothing the command started may outlive it
                _kill_group(pgid)
                try:
                    await asyncio.shield(proto.exited)
                    # the pipes close once every process holding them is gone; one that left the
                    # group (setsid) may keep them open, so wait only a little, then close our ends
                    await asyncio.wait([proto.closed], timeout=self.drain_grace_s)
                finally:
                    transport.close()
                    proto.finish()
                    if record is not None:
                        try:
                            os.unlink(record)
                        except OSError:
                            pass
        except BaseException:  # cancelled: the frames no longer matter
            frames.cancel()
            raise
        await frames  # a failing frame sink is a bug: let it show

        rc = transport.get_returncode()
        payload: dict[str, Any] = {"argv": spec.argv, "exit_code": None if timed_out else rc}
        for cap in (out, err):
            data = scrub.bytes(bytes(cap.raw))[: spec.cap]
            truncated = cap.total > spec.cap
            payload[cap.name] = data if spec.encoding == "bytes" else decode_text(data, truncated)
            payload[f"{cap.name}_bytes"] = cap.total
            payload[f"{cap.name}_truncated"] = truncated
        payload["truncated"] = payload["stdout_truncated"] or payload["stderr_truncated"]
        payload["encoding"] = spec.encoding
        payload["duration_ms"] = int((time.monotonic() - started) * 1000)

        name = spec.argv[0] if spec.argv[:2] != ["/bin/sh", "-c"] else "shell command"
        if timed_out:
            return Receipt(
                "timeout", payload, "timeout", f"{name} timed out after {spec.timeout:g}s; its process group was killed"
            )
        if rc == 0:
            return Receipt.ok(**payload)
        if rc is not None and rc < 0:
            return Receipt.fail("exit_status", f"{name} was killed by signal {-rc}", **payload)
        return Receipt.fail("exit_status", f"{name} exited with status {rc}", **payload)


async def _send_frames(queue: asyncio.Queue[dict[str, Any] | None], emit_frame: FrameSink) -> None:
    while (frame := await queue.get()) is not None:
        await emit_frame(frame)


class _Capture:
    """One output pipe: keeps ``spec.cap`` bytes (plus enough to catch a
    secret that straddles the cap), counts the rest, and turns what it keeps
    into scrubbed frames."""

    def __init__(self, name: str, spec: _Spec, scrub: Scrubber) -> None:
        self.name = name
        self.raw = bytearray()
        self.total = 0
        self._spec = spec
        self._room = spec.cap + max(scrub.longest - 1, 0)
        self._filter = StreamScrubber(scrub)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._emitted = 0
        self.frames: list[dict[str, Any]] = []

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._room - len(self.raw)
        if room > 0:
            piece = chunk[:room]
            self.raw += piece
            self._frame(self._filter.feed(piece))

    def finish(self) -> None:
        self._frame(self._filter.flush())

    def _frame(self, data: bytes) -> None:
        data = data[: max(self._spec.cap - self._emitted, 0)]
        self._emitted += len(data)
        out: str | bytes = data if self._spec.encoding == "bytes" else self._decoder.decode(data)
        if out:
            self.frames.append({"stream": self.name, "data": out})


class _Protocol(asyncio.SubprocessProtocol):
    """Collects output as it arrives; tells process exit and pipe closure apart
    (``Process.wait`` waits for both, which a leftover pipe holder would stall)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, caps: dict[int, _Capture]) -> None:
        self.caps = caps
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.frames: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._open = set(caps)  # stdin (fd 0) closing does not count

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.caps[fd].feed(data)
        self._queue(self.caps[fd])

    def finish(self) -> None:
        """Flush what the scrubbers held back and end the frame stream."""
        for cap in self.caps.values():
            cap.finish()
            self._queue(cap)
        self.frames.put_nowait(None)

    def _queue(self, cap: _Capture) -> None:
        for frame in cap.frames:
            self.frames.put_nowait(frame)
        cap.frames.clear()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        if not self._open and not self.closed.done():
            self.closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

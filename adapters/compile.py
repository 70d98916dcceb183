"""``module.compile``: source files in, a WASM workflow module (or diagnostics) out.

Languages: **C** (Debian ``clang`` for ``--target=wasm32`` with ``wasm-ld``
from ``lld``, no libc, the flags of ``examples/Makefile``) and **WAT**
(``wasmtime.wat2wasm``, in process: a parser of text, it opens no file).
Nothing else yet.

How a C compile is confined. The kernel hands the adapter the files
themselves (read from CAS or a workspace), never paths. They go into a
fresh directory with nothing else but, when asked for, the WASM ABI header
``aos_wf.h`` (``examples/wasm/aos_wf.h``, in its own include directory).
When the kernel runs as root (and ``unshare`` exists) clang runs in new
network, mount and PID namespaces: a tmpfs root holding only ``/usr``
(read-only, for the compiler itself) and the job directory, entered with
``chroot`` as ``nobody`` (uid 65534, no capabilities, no new privileges),
with loopback down and no other network. So ``#include "/etc/passwd"`` or
``/proc`` find nothing, and the compiler can neither reach the network nor
write outside its job directory. ``-nostdinc -nostdlib`` keep system headers
and libraries out of the build. Without root there are no namespaces, and
a C compile is refused (``not_confined``: an ``#include`` could read any
file the kernel's user can) unless the operator sets
``AOS_COMPILE_UNCONFINED=1``; then it runs with the limits only and the
receipt says ``sandbox: "limits only ..."``.

Limits (the ``compile`` grant may lower or raise them): wall time
(``timeout_s``, default 30 s; the whole process group is killed), address
space (``memory_mb``, RLIMIT_AS, default 1024), CPU time, size of any file
written (RLIMIT_FSIZE = ``max_output_bytes``, default 8 MiB), processes,
total source size (``max_source_bytes``, default 1 MiB), the diagnostics
kept (64 KiB), and two compiles at a time per kernel.

The receipt is ``ok`` either way: ``{ok: true, wasm, size, diagnostics}``
or ``{ok: false, diagnostics}`` (the compiler's messages with job paths
shown as the file names given), because a failed compile is an answer, not
an adapter failure. The kernel stores ``wasm`` in CAS and puts its hash in
the world's receipt. A module is also checked as a workflow: it must import
nothing and export ``memory``, ``alloc`` and ``step``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import EffectCall, FrameSink, Receipt

LANGUAGES = ("c", "wat")
DEFAULT_TIMEOUT_S = 30
MAX_TIMEOUT_S = 300
DEFAULT_MEMORY_MB = 1024
DEFAULT_SOURCE_BYTES = 1 << 20
DEFAULT_OUTPUT_BYTES = 8 << 20
MAX_DIAGNOSTICS = 64 * 1024
MAX_FILES = 64
MAX_CONCURRENT = 2  # compiles at once per kernel; more wait their turn (each may take a CPU for timeout_s)
NOBODY = 65534
HEADER = "aos_wf.h"
C_FLAGS = ("--target=wasm32", "-nostdlib", "-nostdinc", "-fno-builtin", "-ffreestanding", "-Wall",
           "-Wno-unused-function", "-fno-color-diagnostics", "-Wl,--no-entry", "-Wl,--strip-all",
           "-Wl,--export-dynamic", "-Wl,-z,stack-size=65536")
OPT_LEVELS = ("-O0", "-O1", "-O2", "-Os", "-Oz")
EXPORTS = ("memory", "alloc", "step")
SANDBOXED = "namespaces (no network; only /usr and the job directory visible; uid nobody)"
LIMITS_ONLY = "limits only (the kernel is not root: no network or filesystem isolation)"

# the sandbox: a tmpfs root with /usr read-only and the job directory, then chroot as nobody
_SANDBOX_SH = r"""
set -e
R="$1"; shift
mount -t tmpfs -o size=16m,mode=755 aos-compile "$R"
mkdir -p "$R/usr" "$R/job" "$R/tmp" "$R/dev"
mount --bind /usr "$R/usr"
mount -o remount,bind,ro "$R/usr"
for d in bin lib lib64 sbin; do [ -e "/$d" ] && ln -s "usr/$d" "$R/$d"; done
mount --bind "$JOB" "$R/job"
chmod 1777 "$R/tmp"
touch "$R/dev/null" && mount --bind /dev/null "$R/dev/null"
cd "$R"
exec chroot --userspec=65534:65534 "$R" /usr/bin/setpriv --no-new-privs --inh-caps=-all "$@"
"""


def header_path() -> Path | None:
    """The WASM ABI header (``$AOS_WASM_ABI_HEADER`` or ``examples/wasm/aos_wf.h`` of this checkout)."""
    env = os.environ.get("AOS_WASM_ABI_HEADER")
    candidate = Path(env) if env else Path(__file__).resolve().parents[1] / "examples" / "wasm" / HEADER
    return candidate if candidate.is_file() else None


class CompileAdapter:
    """Compiles C (clang + wasm-ld) or WAT into a workflow module, confined as the module docstring says."""

    kinds = ("module.compile",)

    def __init__(self, isolate: bool | None = None, clang: str | None = None,
                 allow_unconfined: bool | None = None) -> None:
        self.clang = clang or shutil.which("clang") or "/usr/bin/clang"
        self.isolate = can_isolate() if isolate is None else (isolate and can_isolate())
        self.allow_unconfined = (os.environ.get("AOS_COMPILE_UNCONFINED") == "1" if allow_unconfined is None
                                 else allow_unconfined)
        self._slots: asyncio.Semaphore | None = None

    async def run(self, call: EffectCall, emit_frame: FrameSink) -> Receipt:
        if self._slots is None:
            self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        async with self._slots:
            return await self._run(call)

    async def _run(self, call: EffectCall) -> Receipt:
        p, g = call.params, call.grant
        language = p.get("language")
        if language not in LANGUAGES:
            return Receipt.fail("invalid_params", f"language must be one of {list(LANGUAGES)}, not {language!r}")
        if g.get("languages") is not None and language not in g["languages"]:
            return Receipt.fail("not_allowed", f"the compile grant does not allow {language}")
        files = p.get("files")
        if not isinstance(files, Mapping) or not files:
            return Receipt.fail("invalid_params", "files: the sources to compile, name -> bytes")
        if len(files) > MAX_FILES:
            return Receipt.fail("too_large", f"{len(files)} files; the limit is {MAX_FILES}")
        sources: dict[str, bytes] = {}
        for name, data in files.items():
            if not _plain_name(name):
                return Receipt.fail("invalid_params", f"bad file name {name!r}: letters, digits, ._- and / only")
            sources[name] = data.encode() if isinstance(data, str) else bytes(data)
        limit = _num(g, "max_source_bytes", DEFAULT_SOURCE_BYTES)
        total = sum(len(d) for d in sources.values())
        if total > limit:
            return Receipt.fail("too_large", f"the sources are {total} bytes; the limit is {limit}")
        timeout = min(_num(g, "timeout_s", DEFAULT_TIMEOUT_S), MAX_TIMEOUT_S)
        max_output = _num(g, "max_output_bytes", DEFAULT_OUTPUT_BYTES)
        if language == "wat":
            return await self._wat(sources, p.get("main"), timeout, max_output)
        opt = str(p.get("opt") or "-O2")
        opt = opt if opt.startswith("-") else "-" + opt
        if opt not in OPT_LEVELS:
            return Receipt.fail("invalid_params", f"opt must be one of {[o[1:] for o in OPT_LEVELS]}")
        if not self.isolate and not self.allow_unconfined:
            return Receipt.fail("not_confined", "this kernel cannot confine the C compiler (it is not root, or "
                                "unshare is missing); an operator allows unconfined compiles with "
                                "AOS_COMPILE_UNCONFINED=1 (WAT compiles need no confinement)")
        return await self._c(sources, opt, bool(p.get("header", True)), timeout,
                             _num(g, "memory_mb", DEFAULT_MEMORY_MB), max_output)

    # --- C ------------------------------------------------------------------------------------

    async def _c(self, sources: dict[str, bytes], opt: str, header: bool, timeout: int, memory_mb: int,
                 max_output: int) -> Receipt:
        units = sorted(n for n in sources if n.endswith(".c"))
        if not units:
            return Receipt.ok(ok=False, diagnostics="no .c file among the sources", sandbox=self._mode())
        job = Path(tempfile.mkdtemp(prefix="aos-compile-"))
        try:
            src, inc, out = job / "src", job / "include", job / "out"
            for d in (src, inc, out):
                d.mkdir()
            for name, data in sources.items():
                target = src / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            given = header_path() if header else None
            if given is not None and HEADER not in sources:
                shutil.copyfile(given, inc / HEADER)
            base = "/job" if self.isolate else str(job)
            argv = [self.clang, *C_FLAGS, opt, "-iquote", f"{base}/include", "-o", f"{base}/out/module.wasm",
                    *(f"{base}/src/{u}" for u in units)]
            if self.isolate:
                root = job / "root"
                root.mkdir()
                os.chmod(job, 0o755)
                for path in (src, inc, out, *src.rglob("*"), *inc.rglob("*")):
                    os.chown(path, NOBODY, NOBODY)
                argv = sandboxed(argv, root)
            code, diagnostics, timed_out = await run_limited(argv, job, timeout, memory_mb, max_output)
            diagnostics = diagnostics.replace(f"{base}/src/", "").replace(f"{base}/include/", "")
            if timed_out:
                return Receipt.ok(ok=False, diagnostics=f"{diagnostics}\ncompile stopped after {timeout} s".strip(),
                                  sandbox=self._mode())
            wasm_file = out / "module.wasm"
            if code != 0 or not wasm_file.is_file():
                return Receipt.ok(ok=False, diagnostics=diagnostics or f"the compiler exited with status {code}",
                                  sandbox=self._mode())
            wasm = wasm_file.read_bytes()
        finally:
            shutil.rmtree(job, ignore_errors=True)
        return await self._checked(wasm, diagnostics, max_output)

    def _mode(self) -> str:
        return SANDBOXED if self.isolate else LIMITS_ONLY

    # --- WAT ----------------------------------------------------------------------------------

    async def _wat(self, sources: dict[str, bytes], main: Any, timeout: int, max_output: int) -> Receipt:
        names = sorted(n for n in sources if n.endswith(".wat")) if main is None else [main]
        if len(names) != 1 or names[0] not in sources:
            return Receipt.ok(ok=False, diagnostics="give exactly one .wat file (or name it with main)",
                              sandbox="in process (a text parser; no files, no network)")
        import wasmtime

        try:
            text = sources[names[0]].decode()
            wasm = bytes(await asyncio.wait_for(asyncio.to_thread(wasmtime.wat2wasm, text), timeout))
        except UnicodeDecodeError:
            return Receipt.ok(ok=False, diagnostics=f"{names[0]} is not UTF-8 text", sandbox="in process")
        except asyncio.TimeoutError:
            return Receipt.ok(ok=False, diagnostics=f"wat2wasm stopped after {timeout} s", sandbox="in process")
        except Exception as exc:  # wasmtime's parse errors: the diagnostics
            return Receipt.ok(ok=False, diagnostics=f"{names[0]}: {exc}"[:MAX_DIAGNOSTICS], sandbox="in process")
        return await self._checked(wasm, "", max_output, sandbox="in process (a text parser; no files, no network)")

    # --- the result -----------------------------------------------------------------------------

    async def _checked(self, wasm: bytes, diagnostics: str, max_output: int, sandbox: str | None = None) -> Receipt:
        sandbox = sandbox or self._mode()
        if len(wasm) > max_output:
            return Receipt.ok(ok=False, diagnostics=f"the module is {len(wasm)} bytes; the limit is {max_output}",
                              sandbox=sandbox)
        problem = await asyncio.to_thread(_workflow_problem, wasm)
        if problem:
            return Receipt.ok(ok=False, diagnostics=(diagnostics + "\n" + problem).strip(), sandbox=sandbox)
        return Receipt.ok(ok=True, wasm=wasm, size=len(wasm), diagnostics=diagnostics, sandbox=sandbox)


def can_isolate() -> bool:
    """Whether this process can build the sandbox (root, with unshare and chroot)."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("chroot") is not None


def sandboxed(argv: list[str], root: Path) -> list[str]:
    """``argv`` run in the sandbox: ``root`` is an empty directory for its tmpfs root; the job
    directory (the ``JOB`` variable of ``run_limited``) appears as ``/job``."""
    return ["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
            "sh", "-c", _SANDBOX_SH, "aos-compile", str(root), *argv]


def _workflow_problem(wasm: bytes) -> str:
    """Why ``wasm`` cannot be a workflow module ("" if it can)."""
    import wasmtime

    try:
        module = wasmtime.Module(wasmtime.Engine(), wasm)
    except Exception as exc:  # not valid WASM
        return f"not a valid WASM module: {exc}"[:2000]
    imports = [f"{i.module}.{i.name}" for i in module.imports]
    if imports:
        return f"a workflow module imports nothing; this one imports {', '.join(imports[:10])}"
    missing = [e for e in EXPORTS if e not in {x.name for x in module.exports}]
    if missing:
        return (f"a workflow module exports memory, alloc and step; this one lacks {', '.join(missing)} "
                "(aos_wf.h defines alloc; mark step with __attribute__((export_name(\"step\"))))")
    return ""


def _limits(memory_mb: int, max_output: int, cpu_s: int) -> Any:
    def apply() -> None:
        import ctypes
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_output, max_output))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # die with the kernel (PR_SET_PDEATHSIG)
        except (OSError, AttributeError):
            pass

    return apply


async def run_limited(argv: list[str], job: Path, timeout: int, memory_mb: int,
                      max_output: int) -> tuple[int, str, bool]:
    """Run ``argv`` in ``job`` in its own process group under the limits;
    ``(exit code, output, timed out)``."""
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C", "HOME": "/job", "JOB": str(job)}
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=str(job), env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        preexec_fn=_limits(memory_mb, max_output, timeout + 1))
    chunks: list[bytes] = []
    kept = 0

    async def read() -> None:
        nonlocal kept
        assert proc.stdout is not None
        while data := await proc.stdout.read(65536):
            if kept < MAX_DIAGNOSTICS:
                chunks.append(data[:MAX_DIAGNOSTICS - kept])
                kept += len(chunks[-1])

    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(read(), proc.wait()), timeout)
    except asyncio.TimeoutError:
        timed_out = True
    finally:
        if proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            await proc.wait()
    text = b"".join(chunks).decode("utf-8", "replace")
    return proc.returncode or 0, text.strip(), timed_out


def _plain_name(name: Any) -> bool:
    if not isinstance(name, str) or not name or len(name) > 128 or name.startswith("/"):
        return False
    parts = name.split("/")
    return all(p not in ("", ".", "..") and all(c.isalnum() or c in "._-" for c in p) for p in parts)


def _num(grant: Mapping[str, Any], name: str, default: int) -> int:
    value = grant.get(name)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default

"""``sys/module.compile@1``: C (clang + wasm-ld) and WAT into workflow modules, confined and bounded.

The adapter tests run the real compiler in the real sandbox (network, mount
and PID namespaces, a tmpfs root with only /usr and the job directory,
uid nobody), and check what the sandbox hides and stops, with programs other
than clang run through the same sandbox. The kernel test compiles sources
from CAS as an effect and runs the module in a world created with it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import pytest

from aos.adapters.base import EffectCall
from aos.adapters.compile import CompileAdapter, can_isolate, run_limited, sandboxed
from aos.kernel.client import Connection, run
from demikit import EXAMPLES

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "security"))
from attack import SCRIPT, WORKFLOW, declared, hostile_manifest, wait_until  # noqa: E402

needs_root = pytest.mark.skipif(not can_isolate(), reason="the sandbox needs root, unshare and chroot")
COUNTER_C = (EXAMPLES / "counter" / "counter.c").read_text().replace('"../wasm/aos_wf.h"', '"aos_wf.h"')
GOOD_WAT = ('(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) i32.const 1024)'
            ' (func (export "step") (param i32 i32) (result i64) i64.const 0))')


def compile_(files: dict, language: str = "c", grant: dict | None = None, **kwargs) -> dict:
    adapter = kwargs.pop("adapter", None) or CompileAdapter()
    receipt = asyncio.run(adapter.run(EffectCall("module.compile", {"language": language, "files": files, **kwargs},
                                                 grant or {}, "k"), None))
    return {"status": receipt.status, "error": receipt.error, "message": receipt.message, **receipt.payload}


@needs_root
def test_c_compiles_to_the_same_module_as_the_examples_makefile():
    """counter.c compiles in the sandbox to a workflow module (memory, alloc, step; no imports)."""
    out = compile_({"counter.c": COUNTER_C})
    assert out["ok"] and out["sandbox"].startswith("namespaces")
    assert out["wasm"][:4] == b"\0asm" and out["size"] == len(out["wasm"])


@needs_root
def test_a_compile_error_is_an_ok_receipt_with_the_diagnostics_named_by_file():
    """A syntax error answers ok=false with clang's message, the job paths shown as the given file names."""
    out = compile_({"counter.c": COUNTER_C.replace("count += by;", "count += by")})
    assert out["status"] == "ok" and not out["ok"]
    assert out["diagnostics"].startswith("counter.c:18:16: error: expected ';' after expression")
    assert "/job" not in out["diagnostics"] and "aos-compile" not in out["diagnostics"]


@needs_root
@pytest.mark.parametrize("source,seen", [
    ('#include "/etc/passwd"\n', "'/etc/passwd' file not found"),
    ('#include "/work/main/README.md"\n', "file not found"),
    ("#include <stdio.h>\n", "'stdio.h' file not found"),
    ('#include "../../../../etc/hostname"\n', "file not found"),
])
def test_the_compiler_sees_only_the_files_it_is_given(source, seen):
    """Absolute, relative and system includes outside the job find nothing; no file's bytes reach the diagnostics."""
    out = compile_({"evil.c": source})
    assert not out["ok"] and seen in out["diagnostics"]
    assert "root:x:0:0" not in out["diagnostics"]


def test_without_the_sandbox_a_c_compile_is_refused_unless_the_operator_allows_it():
    """A kernel that cannot confine clang refuses C (``not_confined``); with the opt-in it says it is unconfined."""
    refused = compile_({"counter.c": COUNTER_C}, adapter=CompileAdapter(isolate=False, allow_unconfined=False))
    assert refused["status"] == "error" and refused["error"] == "not_confined"
    allowed = compile_({"counter.c": COUNTER_C}, adapter=CompileAdapter(isolate=False, allow_unconfined=True))
    assert allowed["ok"] and allowed["sandbox"].startswith("limits only")


def test_wat_compiles_in_process_and_a_module_that_is_no_workflow_is_refused():
    """WAT goes through wat2wasm; a module without the step ABI's exports, or with imports, gets diagnostics."""
    assert compile_({"m.wat": GOOD_WAT}, "wat")["ok"]
    lacking = compile_({"m.wat": '(module (memory (export "memory") 1))'}, "wat")
    assert not lacking["ok"] and "lacks alloc, step" in lacking["diagnostics"]
    importing = compile_({"m.wat": '(module (import "env" "f" (func)))'}, "wat")
    assert not importing["ok"] and "imports env.f" in importing["diagnostics"]
    broken = compile_({"m.wat": "(module (func (bogus)))"}, "wat")
    assert not broken["ok"] and broken["diagnostics"].startswith("m.wat:")


@pytest.mark.parametrize("files,grant,error", [
    ({"../x.c": "int x;"}, {}, "invalid_params"),
    ({"a.c": "x" * 2000}, {"max_source_bytes": 1000}, "too_large"),
    ({"a.wat": GOOD_WAT}, {"languages": ["c"]}, "not_allowed"),
])
def test_bad_requests_are_error_receipts(files, grant, error):
    """Bad file names, sources over the grant's size, and a language the grant does not allow are refused."""
    language = "wat" if next(iter(files)).endswith(".wat") else "c"
    assert compile_(files, language, grant)["error"] == error


def _sandboxed(argv: list[str], timeout: int = 20, memory_mb: int = 1024, max_output: int = 8 << 20) -> tuple:
    job = Path(tempfile.mkdtemp(prefix="aos-compile-test-"))
    try:
        (job / "root").mkdir()
        os.chmod(job, 0o755)
        return asyncio.run(run_limited(sandboxed(argv, job / "root"), job, timeout, memory_mb, max_output))
    finally:
        shutil.rmtree(job, ignore_errors=True)


@needs_root
def test_the_sandbox_has_no_network_and_runs_as_nobody_in_an_empty_root():
    """Inside: uid 65534, a root holding only bin, dev, job, lib*, sbin, tmp, usr, and no route to the host's loopback."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        code, out, _ = _sandboxed(["/usr/bin/python3", "-c", (
            "import os, socket\n"
            "print(os.getuid(), sorted(os.listdir('/')))\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')\n"
            "except OSError as e:\n"
            "    print('refused', e.errno)\n")])
    finally:
        server.close()
    assert code == 0, out
    assert out.splitlines()[0] == "65534 ['bin', 'dev', 'job', 'lib', 'lib64', 'sbin', 'tmp', 'usr']"
    assert out.splitlines()[1].startswith("refused") and "CONNECTED" not in out


@needs_root
def test_the_sandbox_stops_time_memory_and_output_at_their_limits():
    """A process past the wall time is killed; past RLIMIT_AS it cannot allocate; past RLIMIT_FSIZE it cannot write."""
    _, _, timed_out = _sandboxed(["/usr/bin/sleep", "30"], timeout=1)
    assert timed_out
    code, out, _ = _sandboxed(["/usr/bin/python3", "-c", "b = bytearray(400 << 20); print('allocated')"],
                              memory_mb=256)
    assert code != 0 and "allocated" not in out and "MemoryError" in out
    code, out, _ = _sandboxed(["/usr/bin/python3", "-c",
                               "open('/tmp/big', 'wb').write(b'x' * (2 << 20)); print('wrote')"], max_output=1 << 20)
    assert code != 0 and "wrote" not in out


def test_the_compile_effect_puts_the_module_in_cas_and_a_world_runs_it(kernel):
    """A workflow compiles WAT from CAS through the kernel effect; the module is in CAS by its hash."""
    async def main() -> tuple:
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            cas = await admin.cas("u")
            source = await cas.put(GOOD_WAT.encode())
            worlds = await admin.worlds("u")
            doc = hostile_manifest({"sys/module.compile@1": declared("compile")},
                                   {"cc": {"cap": "compile", "params": {"languages": ["wat"]}}})
            world, _ = await worlds.create(doc, {}, "builder")
            await world.send(SCRIPT, {"effects": [
                {"effect": "sys/module.compile@1", "params": {"language": "wat", "sources": {"m.wat": source}}},
                {"effect": "sys/module.compile@1", "params": {"language": "c", "sources": {"a.c": source}}}]})

            async def two():
                state = await world.state(WORKFLOW)
                return state["receipts"] if state and len(state["receipts"]) >= 2 else None

            receipts = await wait_until(two)
            ok = next(r for r in receipts if r[1] == "ok")
            return receipts, await cas.get(ok[2]["module"])

    receipts, module = run(main())
    refused = next(r for r in receipts if r[1] == "error")
    assert refused[2]["error"] == "refused" and "language 'c' is not granted" in refused[2]["message"]
    ok = next(r for r in receipts if r[1] == "ok")[2]
    assert ok["ok"] and "wasm" not in ok and ok["module"].startswith("sha256:") and module[:4] == b"\0asm"


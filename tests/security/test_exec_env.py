"""Class 3: a host.exec allow list holds; a world's params cannot change what program runs or what it loads.

Each test plays a hostile world against the real adapter (``HostExecAdapter.run``):
it writes its own programs, libraries and startup files into the grant's
directory (as ``host.fs.write`` would) and then tries to get an allowed
command to run them through its ``env`` map, ``argv[0]`` resolution (the
PATH, a relative path, ``cwd``), or ``shell: true``. Every attack is first
shown to work on a bare ``subprocess`` (so the test could fail), then shown
refused by the adapter with nothing run. One attack goes end to end through
a real kernel world with a ``--grant-host`` directory.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aos.adapters.base import EffectCall, Receipt
from aos.adapters.exec_env import DENIED, denied
from aos.adapters.host_exec import HostExecAdapter, exec_path
from aos.kernel.client import Connection, run
from aos.testing import KernelProcess

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack import SCRIPT, WORKFLOW, declared, hostile_manifest, wait_until  # noqa: E402

EXEC = HostExecAdapter()
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def run_exec(params: dict[str, Any], grant: dict[str, Any], secrets: Any = None) -> Receipt:
    async def sink(frame: Any) -> None:
        pass

    return asyncio.run(EXEC.run(EffectCall("host.exec", params, grant, "k", secrets), sink))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The file a successful attack creates."""
    return tmp_path / "PWNED"


def evil_library(out_dir: Path, marker: Path) -> Path:
    """A shared library whose constructor creates ``marker``: what a world would LD_PRELOAD."""
    if CC is None:
        pytest.skip("no C compiler (cc, gcc or clang) to build the hostile shared library")
    src = out_dir / "evil.c"
    src.write_text(
        "#include <stdio.h>\n"
        "__attribute__((constructor)) static void pwn(void) {\n"
        f'  FILE *f = fopen("{marker}", "w"); if (f) {{ fputs("pwned", f); fclose(f); }}\n'
        "}\n"
    )
    lib = out_dir / "evil.so"
    subprocess.run([CC, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True, capture_output=True)
    return lib


def evil_script(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\ntouch {marker}\necho hijacked\n")
    path.chmod(0o755)
    return path


# --- the dynamic loader -------------------------------------------------------------------------
LOADER_NAMES = ["LD_PRELOAD", "ld_preload", "Ld_PreLoad", "LD_AUDIT", "LD_LIBRARY_PATH", "GCONV_PATH",
                "GLIBC_TUNABLES", "MALLOC_TRACE", "LOCPATH", "DYLD_INSERT_LIBRARIES"]


@pytest.mark.parametrize("name", LOADER_NAMES)
def test_ld_preload_of_a_world_written_library_is_refused(work, marker, name):
    """LD_PRELOAD (in any case) and the other loader/libc variables of a world-written .so are refused, even when the grant allows every name."""
    lib = evil_library(work, marker)
    # the attack is real: the library runs inside a plain /bin/echo
    subprocess.run(["/bin/echo", "x"], env={"LD_PRELOAD": str(lib)}, check=True, capture_output=True)
    assert marker.exists()
    marker.unlink()
    value = str(work) if name in ("LD_LIBRARY_PATH", "GCONV_PATH", "LOCPATH") else str(lib)
    r = run_exec({"argv": ["echo", "hi"], "env": {name: value}}, {"cwd": str(work), "allow": ["echo"], "allow_env": ["*"]})
    assert (r.status, r.error) == ("error", "not_allowed") and name in r.message
    assert not marker.exists()


def test_ld_library_path_with_a_world_written_libc_is_refused(work, marker):
    """A directory of world-written libraries on LD_LIBRARY_PATH is refused, so echo keeps loading the system's libc."""
    lib = evil_library(work, marker)
    libs = work / "libs"
    libs.mkdir()
    shutil.copy(lib, libs / "libc.so.6")
    r = run_exec({"argv": ["echo", "hi"], "env": {"LD_LIBRARY_PATH": str(libs)}},
                 {"cwd": str(work), "allow": ["echo"], "allow_env": ["LD_*"]})
    assert r.error == "not_allowed" and not marker.exists()
    assert run_exec({"argv": ["echo", "hi"]}, {"cwd": str(work), "allow": ["echo"]}).payload["stdout"] == "hi\n"


# --- shells and interpreters --------------------------------------------------------------------
def test_bash_env_runs_a_script_unless_refused(work, marker):
    """BASH_ENV and ENV naming a world-written script are refused for an allowed bash or sh."""
    evil = evil_script(work / "evil.sh", marker)
    subprocess.run(["bash", "-c", "true"], env={"BASH_ENV": str(evil), "PATH": "/usr/bin:/bin"}, check=True)
    assert marker.exists()
    marker.unlink()
    for cmd, name in [("bash", "BASH_ENV"), ("sh", "ENV"), ("bash", "bash_env"), ("sh", "BASH_ENV")]:
        r = run_exec({"argv": [cmd, "-c", "true"], "env": {name: str(evil)}},
                     {"cwd": str(work), "allow": [cmd], "allow_env": ["*"]})
        assert (r.status, r.error) == ("error", "not_allowed"), (cmd, name)
    assert not marker.exists()


def test_exported_bash_function_cannot_replace_a_command(work, marker):
    """A BASH_FUNC_ variable (bash's exported functions) is refused: as a malformed name, or by its prefix."""
    grant = {"cwd": str(work), "allow": ["bash"], "allow_env": ["*"]}
    r = run_exec({"argv": ["bash", "-c", "echo hi"], "env": {"BASH_FUNC_echo%%": f"() {{ touch {marker}; }}"}}, grant)
    assert r.error == "invalid_params" and not marker.exists()
    r = run_exec({"argv": ["bash", "-c", "echo hi"], "env": {"BASH_FUNC_echo": f"() {{ touch {marker}; }}"}}, grant)
    assert r.error == "not_allowed" and not marker.exists()


@pytest.mark.parametrize("name", ["PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONWARNINGS", "PYTHONINSPECT",
                                  "PythonPath", "PYTHONUSERBASE", "PYTHONBREAKPOINT"])
def test_python_startup_hooks_are_refused(work, marker, name):
    """With python allowed, a world-written sitecustomize on PYTHONPATH (and every other PYTHON* hook) is refused."""
    (work / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    py = shutil.which("python3") or sys.executable
    subprocess.run([py, "-c", "pass"], env={"PYTHONPATH": str(work)}, check=True)
    assert marker.exists()
    marker.unlink()
    r = run_exec({"argv": ["python3", "-c", "pass"], "env": {name: str(work)}},
                 {"cwd": str(work), "allow": ["python3"], "allow_env": ["*"]})
    assert (r.status, r.error) == ("error", "not_allowed") and not marker.exists()


@pytest.mark.parametrize("name", [
    "PERL5OPT", "PERL5LIB", "RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "NODE_PATH", "npm_config_script_shell",
    "JAVA_TOOL_OPTIONS", "LUA_INIT", "GIT_EXEC_PATH", "GIT_SSH_COMMAND", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0",
    "GIT_CONFIG_PARAMETERS", "GIT_DIR", "git_pager", "IFS", "PATH", "path", "HOME", "XDG_CONFIG_HOME", "SHELL",
    "EDITOR", "PAGER", "LESSOPEN", "MAKEFLAGS", "MAKEFILES", "OPENSSL_CONF", "TAR_OPTIONS", "GOFLAGS",
    "RUSTC_WRAPPER", "PS4", "PROMPT_COMMAND", "ZDOTDIR", "CDPATH", "TERMINFO",
])
def test_every_denied_variable_is_refused_whatever_the_grant_allows(work, marker, name):
    """Each loader, startup or program-naming variable is refused even under allow_env ['*'], and nothing runs."""
    r = run_exec({"argv": ["sh", "-c", f"touch {marker}"], "env": {name: "x"}},
                 {"cwd": str(work), "allow": ["sh"], "allow_env": ["*", name]})
    assert (r.status, r.error) == ("error", "not_allowed") and repr(name) in r.message
    assert not marker.exists()


def test_deny_list_entries_each_have_a_reason():
    """Every DENIED entry says why, and denied() matches names, prefixes and case variants but not lookalikes."""
    assert all(reason for reason in DENIED.values())
    assert denied("LD_PRELOAD") and denied("ld_bind_now") and denied("Python_Anything") and denied("GIT_SSH")
    assert denied("GIT_AUTHOR_NAME") is None and denied("LANG") is None and denied("MY_APP_MODE") is None
    assert denied("LDX") is None and denied("XPATH") is None and denied("ENVIRONMENT") is None


# --- the grant's allow_env ----------------------------------------------------------------------
def test_only_names_the_grant_allows_reach_the_child(work):
    """A name outside allow_env is refused; exact names and NAME* prefixes in it reach the child."""
    grant = {"cwd": str(work), "allow": ["env"]}
    assert run_exec({"argv": ["env"], "env": {"MY_MODE": "1"}}, grant).error == "not_allowed"
    r = run_exec({"argv": ["env"], "env": {"MY_MODE": "1", "APP_X": "2", "GIT_AUTHOR_NAME": "w"}},
                 {**grant, "allow_env": ["MY_MODE", "APP_*", "GIT_AUTHOR_NAME"]})
    assert r.status == "ok"
    env = dict(line.split("=", 1) for line in r.payload["stdout"].splitlines())
    assert env["MY_MODE"] == "1" and env["APP_X"] == "2" and env["GIT_AUTHOR_NAME"] == "w"
    assert set(env) == {"PATH", "HOME", "LANG", "TERM", "MY_MODE", "APP_X", "GIT_AUTHOR_NAME"}
    assert run_exec({"argv": ["env"], "env": {"APPX": "1"}}, {**grant, "allow_env": ["APP_*"]}).error == "not_allowed"
    assert run_exec({"argv": ["env"], "env": {"my_mode": "1"}}, {**grant, "allow_env": ["MY_MODE"]}).error == "not_allowed"


@pytest.mark.parametrize("allow_env", [["LD_*", 3], "LD_PRELOAD", [""], ["A B"], ["=x"], [{"secret": "x"}]])
def test_malformed_allow_env_is_a_bad_grant(work, allow_env):
    """An allow_env that is not a list of names or NAME* prefixes is bad_grant, and nothing runs."""
    r = run_exec({"argv": ["true"]}, {"cwd": str(work), "allow_env": allow_env})
    assert (r.status, r.error) == ("error", "bad_grant")


def test_inherit_env_of_a_loader_variable_is_a_bad_grant(work, monkeypatch):
    """A grant that would pass the kernel's own LD_LIBRARY_PATH or PYTHONPATH through is refused bad_grant."""
    monkeypatch.setenv("LD_LIBRARY_PATH", str(work))
    for name in ("LD_LIBRARY_PATH", "PYTHONPATH", "path"):
        r = run_exec({"argv": ["true"]}, {"cwd": str(work), "inherit_env": [name]})
        assert (r.status, r.error) == ("error", "bad_grant") and name in r.message


@pytest.mark.parametrize("env,error", [
    ({"A\0B": "1"}, "invalid_params"),
    ({"A": "1\0LD_PRELOAD=/x.so"}, "invalid_params"),
    ({"A=B": "1"}, "invalid_params"),
    ({"": "1"}, "invalid_params"),
    ({"LD_PRELOAD\u200b": "/x.so"}, "invalid_params"),
    ({"1A": "x"}, "invalid_params"),
    ({"A" * 200: "x"}, "invalid_params"),
    ({f"V{i}": "x" for i in range(300)}, "too_large"),
    ({"A": "x" * (200 * 1024)}, "too_large"),
    ({f"V{i}": "x" * 100_000 for i in range(12)}, "too_large"),
])
def test_malformed_or_huge_environments_are_refused(work, marker, env, error):
    """NUL bytes, '=' or odd characters in names, lookalike names, too many or too large variables: refused, nothing runs."""
    r = run_exec({"argv": ["sh", "-c", f"touch {marker}"], "env": env}, {"cwd": str(work), "allow_env": ["*"]})
    assert (r.status, r.error) == ("error", error)
    assert not marker.exists()


def test_refused_env_resolves_no_secret(work):
    """A refused name ends the effect before any secret in the same env is resolved."""
    asked: list[str] = []

    def secrets(name: str) -> str:
        asked.append(name)
        return "value"

    r = run_exec({"argv": ["true"], "env": {"TOKEN_A": {"secret": "a"}, "LD_PRELOAD": "/x.so"}},
                 {"cwd": str(work), "allow_env": ["*"]}, secrets)
    assert r.error == "not_allowed" and asked == []


# --- argv[0]: which program runs ---------------------------------------------------------------
def test_relative_argv0_naming_a_world_written_file_is_refused(work, marker):
    """Under an allow list, './echo' (even listed) and 'bin/echo' are refused: they name whatever the world put there."""
    evil_script(work / "echo", marker)
    evil_script(work / "bin" / "echo", marker)
    for argv0, allow in [("./echo", ["echo", "./echo"]), ("bin/echo", ["bin/echo"]), ("./echo", ["./echo"])]:
        r = run_exec({"argv": [argv0, "hi"]}, {"cwd": str(work), "allow": allow})
        assert (r.status, r.error) == ("error", "not_allowed"), argv0
    assert not marker.exists()


def test_cwd_param_does_not_change_which_echo_runs(work, marker):
    """With cwd set to a directory holding a world-written 'echo', the allowed bare name still runs the system echo."""
    evil_script(work / "sub" / "echo", marker)
    r = run_exec({"argv": ["echo", "real"], "cwd": "sub"}, {"cwd": str(work), "allow": ["echo"]})
    assert r.payload["stdout"] == "real\n" and not marker.exists()


@pytest.mark.parametrize("kernel_path", ["{work}/bin:{path}", ".:{path}", ":{path}", "bin:{path}", "{open}:{path}",
                                         "{link}:{path}"])
def test_kernel_path_entries_the_world_could_write_are_skipped(work, marker, tmp_path, monkeypatch, kernel_path):
    """PATH entries inside the grant's directory (directly or by symlink), relative ones and world-writable ones are not searched."""
    evil_script(work / "bin" / "echo", marker)
    evil_script(work / "echo", marker)
    open_dir = tmp_path / "open"
    evil_script(open_dir / "echo", marker)
    open_dir.chmod(0o777)
    (tmp_path / "link").symlink_to(work / "bin")
    path = kernel_path.format(work=work, path="/usr/bin:/bin", open=open_dir, link=tmp_path / "link")
    monkeypatch.setenv("PATH", path)
    monkeypatch.delenv("AOS_EXEC_PATH", raising=False)
    r = run_exec({"argv": ["echo", "real"]}, {"cwd": str(work), "allow": ["echo"]})
    assert r.payload["stdout"] == "real\n" and not marker.exists()
    assert exec_path(os.path.realpath(work)).split(":") == ["/usr/bin", "/bin"]
    # the child's own lookups use the same PATH
    r = run_exec({"argv": ["sh", "-c", "echo real; echo $PATH"]}, {"cwd": str(work), "allow": ["sh"]})
    assert r.payload["stdout"] == "real\n/usr/bin:/bin\n" and not marker.exists()


def test_unrestricted_grants_keep_the_kernels_path(work, tmp_path, monkeypatch):
    """With a shell grant (which may run anything anyway) the kernel's PATH is kept, so a repository's own tools still run."""
    tools = work / ".venv" / "bin"
    tools.mkdir(parents=True)
    (tools / "repo-tool").write_text("#!/bin/sh\necho repo tool\n")
    (tools / "repo-tool").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:.:/usr/bin:/bin")
    monkeypatch.delenv("AOS_EXEC_PATH", raising=False)
    r = run_exec({"argv": ["repo-tool"], "shell": True}, {"cwd": str(work), "shell": True})
    assert r.payload["stdout"] == "repo tool\n"
    assert exec_path(os.path.realpath(work), strict=False).split(":") == [str(tools), "/usr/bin", "/bin"]
    # the same name under an allow list is refused: it lives where the world can write
    assert run_exec({"argv": ["repo-tool"]}, {"cwd": str(work), "allow": ["repo-tool"]}).error == "not_found"


def test_a_command_that_resolves_into_the_grant_directory_is_refused(work, marker, tmp_path, monkeypatch):
    """A kernel PATH directory holding a symlink into the grant's directory does not make a world-written file runnable."""
    evil_script(work / "tool", marker)
    bindir = tmp_path / "opbin"
    bindir.mkdir()
    (bindir / "tool").symlink_to(work / "tool")
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    r = run_exec({"argv": ["tool"]}, {"cwd": str(work), "allow": ["tool"]})
    assert (r.status, r.error) == ("error", "not_allowed") and not marker.exists()


def test_shell_true_needs_the_grant(work, marker):
    """shell: true is refused when the grant does not allow a shell, however the allow list reads."""
    for allow in (["echo"], ["sh"], ["/bin/sh"], None):
        r = run_exec({"argv": [f"touch {marker}"], "shell": True}, {"cwd": str(work), "allow": allow})
        assert (r.status, r.error) == ("error", "not_allowed")
    assert not marker.exists()


def test_shell_grant_still_refuses_startup_variables(work, marker):
    """Even with shell: true granted, ENV and BASH_ENV from the world are refused."""
    evil = evil_script(work / "evil.sh", marker)
    r = run_exec({"argv": ["true"], "shell": True, "env": {"ENV": str(evil)}},
                 {"cwd": str(work), "shell": True, "allow_env": ["*"]})
    assert r.error == "not_allowed" and not marker.exists()


# --- end to end: a world under a real kernel ----------------------------------------------------
def test_world_cannot_preload_its_own_library_through_a_real_kernel(data_dir, tmp_path, marker):
    """A world writes a .so with host.fs.write, then asks an echo grant to LD_PRELOAD it or run it by relative path: refused, and the kernel serves on."""
    granted = tmp_path / "granted"
    granted.mkdir()
    build = tmp_path / "build"
    build.mkdir()
    lib = evil_library(build, marker).read_bytes()
    doc = hostile_manifest(
        {"sys/host.fs.write@1": declared("host.fs", writes=True), "sys/host.exec@1": declared("host.exec")},
        {"files": {"cap": "host.fs", "params": {"root": str(granted)}},
         "echo": {"cap": "host.exec", "params": {"cwd": str(granted), "commands": ["echo", "./evil.so"],
                                                   "allow_env": ["*"]}}},
    )
    steps = [
        {"effect": "sys/host.fs.write@1", "params": {"path": "evil.so", "content": lib}},
        {"effect": "sys/host.exec@1", "params": {"argv": ["echo", "hi"], "env": {"LD_PRELOAD": str(granted / "evil.so")}}},
        {"effect": "sys/host.exec@1", "params": {"argv": ["./evil.so"]}},
        {"effect": "sys/host.exec@1", "params": {"argv": ["echo", "hi"], "env": {"LANG_X": "1"}}},
    ]
    kernel = KernelProcess(data_dir, extra_args=["--grant-host", str(granted)]).start()
    try:
        async def main():
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                world, _ = await (await admin.worlds("u")).create(doc, world_id="preloader")
                receipts = []
                for step in steps:  # one at a time: the library is written before it is named
                    await world.send(SCRIPT, {"effects": [step]})

                    async def settled(n=len(receipts) + 1):
                        state = await world.state(WORKFLOW)
                        return state["receipts"] if len(state["receipts"]) == n else None

                    receipts = await wait_until(settled)
                return receipts, await admin.status()

        receipts, status = run(main())
    finally:
        kernel.kill()
    (_, w_status, _), (_, pre_status, pre), (_, rel_status, rel), (_, ok_status, ok) = receipts
    assert w_status == "ok" and (granted / "evil.so").read_bytes() == lib
    assert pre_status == "error" and pre["error"] == "not_allowed" and "LD_PRELOAD" in pre["message"]
    assert rel_status == "error" and rel["error"] == "not_allowed"
    assert ok_status == "ok" and ok["stdout"] == "hi\n"
    assert not marker.exists() and status["connections"] >= 1

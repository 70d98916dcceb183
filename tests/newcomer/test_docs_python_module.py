"""Hosting one's own Python workflow, the ways docs/worlds.md says an operator makes a module available.

The module is a file in a directory of the user's, outside the repository
and outside the venv. The kernel must be able to import it (``PYTHONPATH``)
and must allow it (``--python-module``, covered by tests/newcomer/
test_docs_tutorial.py, or ``AOS_PYTHON_MODULES``), also when aos-shell
starts the kernel itself. Every kernel here is a real subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aos.testing import KernelProcess

REPO = Path(__file__).resolve().parents[2]

WORKFLOW = '''"""A greeter: counts greetings per name."""


def step(inp):
    state = inp["state"] or {"greeted": 0}
    if inp["event"]["value"]["name"] == "":
        raise ValueError("greet whom?")
    return {"state": {"greeted": state["greeted"] + 1}}
'''

MANIFEST = {
    "version": 1,
    "name": "mine/greeter",
    "schemas": {"mine/Greet@1": {"record": {"name": "text"}}, "mine/Count@1": {"record": {"greeted": "nat"}}},
    "modules": {"mine/greeter_py@1": {"runtime": "python", "python_module": "my_greeter"}},
    "workflows": {"mine/greeter@1": {"module": "mine/greeter_py@1", "state": "mine/Count@1",
                                     "event": "mine/Greet@1"}},
    "routing": [{"event": "mine/Greet@1", "workflow": "mine/greeter@1"}],
}


@pytest.fixture
def user_files(tmp_path: Path) -> tuple[Path, Path]:
    """(the directory holding my_greeter.py, a bundle whose manifest names it)."""
    code, bundle = tmp_path / "code", tmp_path / "bundle"
    code.mkdir()
    bundle.mkdir()
    (code / "my_greeter.py").write_text(WORKFLOW)
    (bundle / "manifest.json").write_text(json.dumps(MANIFEST))
    return code, bundle


def clean_env() -> dict[str, str]:
    """The user's environment: none of the allow list the test suite sets for its own kernels."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AOS_") and k != "PYTHONPATH"}


def aos(kernel: KernelProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(clean_env(), AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path)
    return subprocess.run([sys.executable, "-m", "aos.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_aos_python_modules_and_pythonpath_let_a_kernel_host_the_module(user_files, data_dir):
    """With PYTHONPATH and AOS_PYTHON_MODULES in its environment the kernel hosts the module; without, it says how."""
    code, bundle = user_files
    refusing = KernelProcess(data_dir, env=clean_env()).start()
    try:
        refused = aos(refusing, "world", "create", str(bundle), "--id", "g1")
        assert refused.returncode == 1
        assert refused.stderr.strip().endswith("an operator adds it with aos-kernel --python-module my_greeter")
    finally:
        assert refusing.stop() == 0
    kernel = KernelProcess(data_dir, env=dict(clean_env(), PYTHONPATH=str(code), AOS_PYTHON_MODULES="my_greeter"))
    kernel.start()
    try:
        assert aos(kernel, "world", "create", str(bundle), "--id", "g1").returncode == 0
        assert aos(kernel, "world", "send", "g1", "mine/Greet@1", '{"name": "ada"}').returncode == 0
        trapped = aos(kernel, "world", "send", "g1", "mine/Greet@1", '{"name": ""}')
        assert trapped.returncode == 3
        assert "aos: trap in mine/greeter@1: WorkflowTrap: ValueError: greet whom?" in trapped.stderr
        state = json.loads(aos(kernel, "--json", "world", "state", "g1").stdout)
        assert state == {"state": {"mine/greeter@1": {"greeted": 1}}}
    finally:
        kernel.stop()


def test_a_kernel_that_aos_shell_starts_inherits_the_allow_list(user_files, data_dir, tmp_path):
    """aos-shell with no kernel running starts one that sees the shell's PYTHONPATH and AOS_PYTHON_MODULES."""
    code, bundle = user_files
    env = dict(clean_env(), AOS_DATA=data_dir, PYTHONPATH=str(code), AOS_PYTHON_MODULES="my_greeter",
               XDG_DATA_HOME=str(tmp_path / "xdg"), NO_COLOR="1")
    try:
        done = subprocess.run([sys.executable, "-m", "aos.shell", "-c",
                               f'create {bundle} --id g2; world g2; send mine/Greet@1 {{"name": "bo"}}; state'],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stderr.startswith("no kernel was running: started aos-kernel")
        assert done.stdout.endswith('mine/greeter@1: {\n  "greeted": 1\n}\n')
    finally:
        with contextlib.suppress(OSError, ValueError):
            log = Path(data_dir, "kernel.log").read_text()
            os.kill(int(re.search(r"\bpid=(\d+)", log).group(1)), signal.SIGKILL)  # started detached: ours to end

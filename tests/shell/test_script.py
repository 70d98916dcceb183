"""``aos-shell -c ...`` and commands from a pipe: for scripts, exit 1 at the first error."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_dash_c_runs_commands_in_order_and_exits_0(shell_script):
    """`-c "A; B; C"` runs each command, prints plain text (no colour off a terminal) and exits 0."""
    done = shell_script('create examples/counter --id s1; world s1; send demo/CounterEvent@1 {"by": 3}; '
                        "state demo/counter@1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("created world s1 (demo/counter), journal height 1\nenter it with: world s1\n"
                           'event journaled at seq 1\ndemo/counter@1: {\n  "count": 3\n}\n')
    assert done.stderr == "" and "\x1b" not in done.stdout


def test_dash_c_stops_at_the_first_error_with_status_1(shell_script):
    """The first failing command prints one error line and exit status 1; the commands after it never run."""
    done = shell_script("worlds; world nope; create examples/counter --id never")
    assert done.returncode == 1
    assert done.stderr == "error: UnknownWorld: no world 'nope' in universe default\n"
    assert "(no worlds" in done.stdout
    after = shell_script("worlds")
    assert after.returncode == 0 and "never" not in after.stdout


def test_commands_from_a_pipe_run_like_a_script(shell_script):
    """Lines piped on stdin (comments and blanks allowed) run in order; an error anywhere gives status 1."""
    script = ("# make a world\ncreate examples/counter --id p1\n\n"
              'world p1\nsend demo/CounterEvent@1 {"by": 9}\nstate demo/counter@1\n')
    done = shell_script(stdin=script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith('demo/counter@1: {\n  "count": 9\n}\n')
    bad = shell_script(stdin="world p1\nsend demo/CounterEvent@1 {\"by\": oops}\nstate\n")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: InvalidArgument: the event value is not valid JSON") and bad.stdout == ""


def test_a_missing_token_file_is_one_line_and_status_1(kernel, shell_env, tmp_path):
    """A token file that does not exist is refused in one line, with status 1 and no traceback."""
    done = subprocess.run([sys.executable, "-m", "aos.shell", "--connect", kernel.address, "--token-file",
                           str(tmp_path / "missing.token"), "-c", "worlds"],
                          check=False, cwd=REPO, env=shell_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("error: InvalidArgument: cannot read token file ") and done.stderr.count("\n") == 1


def test_without_connect_the_local_kernel_is_started_once_and_reused(data_dir, shell_env):
    """With no --connect the shell starts a kernel on the local data dir, says so, and the next run reuses it."""
    env = dict(shell_env, AOS_DATA=data_dir)
    try:
        first = subprocess.run([sys.executable, "-m", "aos.shell", "-c", "status"], check=False, cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        assert first.stderr.startswith("no kernel was running: started aos-kernel (pid ")
        rows = [line.split() for line in first.stdout.splitlines()]
        assert ["data", data_dir] in rows and ["you", "are", "in", "local:default"] in rows
        second = subprocess.run([sys.executable, "-m", "aos.shell", "-c", "universe"], check=False, cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=60)
        assert (second.returncode, second.stdout, second.stderr) == (0, "universe default\n", "")
        os.kill(_kernel_pid(data_dir), 0)  # still running after the shells left: it was started detached
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(_kernel_pid(data_dir), signal.SIGKILL)


def _kernel_pid(data_dir: str) -> int:
    """The pid the started kernel wrote to its log (``... pid=N``)."""
    with open(os.path.join(data_dir, "kernel.log")) as f:
        match = re.search(r"\bpid=(\d+)", f.read())
    if match is None:
        raise ValueError("no pid in kernel.log")
    return int(match.group(1))

"""The smaller things a newcomer tripped over, each done again the way they did it.

Options that were silently ignored or meant different things in the CLI and
the shell, error messages that pointed the wrong way or named nothing to
pick from, tokens the CLI could not use, hints and docs that named what is
not there, and a world list that took a snapshot for activity.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from aos.kernel.client import Connection, run

REPO = Path(__file__).resolve().parents[2]


def _env(kernel, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    env.update(AOS_CONNECT=kernel.address, AOS_TOKEN_FILE=kernel.token_path, **extra)
    return env


def _aos(kernel, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aos.cli", *args], cwd=REPO, env=_env(kernel, **extra),
                          capture_output=True, text=True, timeout=60)


def _shell(kernel, commands: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = _env(kernel, AOS_SHELL_HISTORY=str(tmp_path / "history"))
    return subprocess.run([sys.executable, "-m", "aos.shell", "--connect", kernel.address, "-c", commands], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60)


def _counter(kernel, events: int = 0) -> None:
    assert _aos(kernel, "world", "create", "examples/counter", "--id", "c1").returncode == 0
    for n in range(events):
        assert _aos(kernel, "world", "send", "c1", "demo/CounterEvent@1", json.dumps({"by": n + 1})).returncode == 0


def test_key_without_a_keyed_workflow_is_refused(kernel):
    """`--key` with no WORKFLOW, or with a workflow that is not keyed, is an error instead of being ignored."""
    _counter(kernel)
    alone = _aos(kernel, "world", "state", "c1", "--key", '"x"')
    assert alone.returncode == 1 and alone.stderr.startswith("aos: InvalidArgument: --key picks a cell of a keyed "
                                                             "workflow: name the WORKFLOW too")
    flat = _aos(kernel, "world", "state", "c1", "demo/counter@1", "--key", '"x"')
    assert flat.returncode == 1
    assert flat.stderr == "aos: InvalidArgument: demo/counter@1 is not keyed (it has one state, no cells): drop --key\n"
    keyed = _aos(kernel, "--json", "world", "state", "c1", "demo/cells@1", "--key", '"x"')
    assert keyed.returncode == 0 and json.loads(keyed.stdout) == {"state": {"demo/cells@1": None}}


def test_limit_means_the_same_in_the_cli_and_the_shell(kernel, tmp_path):
    """`--limit N` is the last N records in both `aos world journal` and the shell's `journal`, and the first N
    from `--from SEQ` in both; both helps say so."""
    _counter(kernel, events=4)  # 1 snapshot + 4 x (event, state) = 9 records

    def seqs(lines: list[str]) -> list[int]:
        return [int(line.split()[0]) for line in lines if line.split() and line.split()[0].isdigit()]

    cli_last = seqs(_aos(kernel, "world", "journal", "c1", "--limit", "3").stdout.splitlines())
    shell_last = seqs(_shell(kernel, "world c1; journal --limit 3", tmp_path).stdout.splitlines())
    assert cli_last == shell_last == [6, 7, 8]
    cli_from = seqs(_aos(kernel, "world", "journal", "c1", "--from", "2", "--limit", "3").stdout.splitlines())
    shell_from = seqs(_shell(kernel, "world c1; journal --from 2 --limit 3", tmp_path).stdout.splitlines())
    assert cli_from == shell_from == [2, 3, 4]
    cli_help = " ".join(_aos(kernel, "world", "journal", "--help").stdout.split())
    assert "the last N, or the first N from --from SEQ" in cli_help
    shell_help = " ".join(_shell(kernel, "help journal", tmp_path).stdout.split())
    assert "the last N" in shell_help and "the first N from --from SEQ" in shell_help


def test_a_missing_token_file_does_not_blame_the_kernel(kernel, tmp_path):
    """`--token-file /nonexistent` says the file cannot be read, not that the kernel may be down."""
    done = _aos(kernel, "--token-file", str(tmp_path / "nonexistent"), "status")
    assert done.stderr == (f"aos: InvalidArgument: cannot read token file {tmp_path / 'nonexistent'}: "
                           "No such file or directory\n")


def test_attenuated_tokens_work_in_the_cli(kernel, tmp_path):
    """A saved read-only journal token reads its journal; a world token reads its world; each refuses the rest
    in one line that says what it holds."""
    _counter(kernel, events=1)

    async def tokens() -> tuple[str, str]:
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            journal = await admin.journal("default")
            await journal.append("j1", 0, 1, [b"first"])
            reader = await journal.restrict("j1", read_only=True)
            world = await (await admin.worlds("default")).open("c1")
            return await reader.save(), await world.save()

    journal_token, world_token = run(tokens())
    (tmp_path / "journal.token").write_text(journal_token + "\n")
    (tmp_path / "world.token").write_text(world_token + "\n")
    reads = _aos(kernel, "--token-file", str(tmp_path / "journal.token"), "journal", "read", "j1")
    assert reads.returncode == 0 and reads.stdout.splitlines()[0] == "       0  first", reads.stderr
    status = _aos(kernel, "--token-file", str(tmp_path / "journal.token"), "status")
    assert status.returncode == 1
    assert status.stderr.startswith("aos: PermissionDenied: this token holds a journal capability")
    assert "`aos status` needs the admin token" in status.stderr
    state = _aos(kernel, "--json", "--token-file", str(tmp_path / "world.token"), "world", "state", "c1",
                 "demo/counter@1")
    assert state.returncode == 0 and json.loads(state.stdout) == {"state": {"demo/counter@1": {"count": 1}}}
    other = _aos(kernel, "--token-file", str(tmp_path / "world.token"), "world", "state", "c2")
    assert other.stderr == "aos: PermissionDenied: this token is for world 'c1', not 'c2'\n"
    listing = _aos(kernel, "--token-file", str(tmp_path / "world.token"), "world", "ls")
    assert listing.stderr == ("aos: PermissionDenied: this token is for world 'c1' only: it cannot list, create or "
                              "fork worlds\n")
    elsewhere = _aos(kernel, "-u", "other", "--token-file", str(tmp_path / "journal.token"), "journal", "read", "j1")
    assert elsewhere.stderr == ("aos: PermissionDenied: this token's journal capability is for universe 'default', "
                                "not 'other'\n")


def test_run_help_prints_only_the_help():
    """`./run` with no command prints its usage lines, not the shell code after them."""
    done = subprocess.run([str(REPO / "run")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout.splitlines()[0].startswith("One entry point for people and CI.")
    assert "./run test" in done.stdout and "set -euo" not in done.stdout and "cd " not in done.stdout


def test_the_demo_hint_names_a_command_that_runs(tmp_path):
    """`aos demo`'s closing hint names aos-kernel as it can be run from here (its path when it is not on PATH)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    venv_bin = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not os.path.exists(os.path.join(p, "aos-kernel")))
    done = subprocess.run([sys.executable, "-m", "aos.cli", "demo"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    hint = done.stdout.splitlines()[-1]
    command = re.fullmatch(r"kernel stopped \(exit 0\)\. Run your own with: (\S+) --data DIR", hint)
    assert command, hint
    assert shutil.which(command.group(1), path=env["PATH"]) or os.access(command.group(1), os.X_OK)
    assert command.group(1) == os.path.join(venv_bin, "aos-kernel")  # not on PATH here, so its path


def test_readme_names_every_schema_and_worlds_doc_says_values_have_no_floats(kernel):
    """The README's schema list holds every schemas/*.capnp; docs/worlds.md says world values refuse floats,
    as `aos world send` does."""
    readme = (REPO / "README.md").read_text()
    for schema in sorted(p.name for p in (REPO / "schemas").glob("*.capnp")):
        assert f"`{schema}`" in readme, schema
    worlds = (REPO / "docs" / "worlds.md").read_text()
    model = next(line for line in worlds.splitlines() if line.startswith("The value model"))
    assert "float" not in model.split(";")[0]
    assert "World values have no floats" in worlds
    _counter(kernel)
    refused = _aos(kernel, "world", "send", "c1", "demo/CounterEvent@1", '{"by": 1.5}')
    assert refused.returncode == 1 and "no floats" in refused.stderr


def _bundle(tmp_path: Path, key_field: str, event_ref: str = "demo/E@1") -> Path:
    bundle = tmp_path / f"bundle-{key_field}-{event_ref.replace('/', '_')}"
    bundle.mkdir()
    manifest = {
        "version": 1, "name": "demo/typo",
        "schemas": {"demo/S@1": {"record": {"n": "int"}}, "demo/E@1": {"record": {"id": "text", "by": "int"}},
                    "demo/K@1": "text"},
        "modules": {"m": {"runtime": "python", "python_module": "aos.kernel.world.examples.counter"}},
        "workflows": {"demo/w@1": {"module": "m", "entry": "step", "state": "demo/S@1", "event": event_ref,
                                   "key": "demo/K@1"}},
        "routing": [{"event": event_ref, "workflow": "demo/w@1", "key_field": key_field}],
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def test_manifest_mistakes_name_what_there_is(kernel, tmp_path):
    """A key_field typo is refused at create, naming the event's fields; an unknown schema lists the known ones,
    at create and at send."""
    typo = _aos(kernel, "world", "create", str(_bundle(tmp_path, "idd")))
    assert typo.returncode == 1
    assert typo.stderr == ("aos: ManifestError: $.routing[0].key_field: demo/E@1 has no field 'idd' (known fields: by, "
                           "id)\n")
    unknown = _aos(kernel, "world", "create", str(_bundle(tmp_path, "id", "demo/Nope@1")))
    assert unknown.returncode == 1
    assert "unknown schema 'demo/Nope@1' (known schemas: demo/E@1, demo/K@1, demo/S@1)" in unknown.stderr
    _counter(kernel)
    send = _aos(kernel, "world", "send", "c1", "demo/Nope@1", "{}")
    assert send.stderr == ("aos: SchemaViolation: $.schema: unknown schema 'demo/Nope@1' (this world takes "
                           "demo/CellEvent@1, demo/CounterEvent@1)\n")


def test_world_ls_does_not_take_a_snapshot_for_an_event(kernel):
    """After `world snapshot` (what hibernation does), `world ls` still shows the last event's time, not the
    snapshot's."""
    _counter(kernel, events=1)

    def last_event_ms() -> int:
        listed = json.loads(_aos(kernel, "--json", "world", "ls").stdout)["worlds"]
        return next(w["lastEventMs"] for w in listed if w["worldId"] == "c1")

    before = last_event_ms()
    assert before > 0
    while time.time_ns() // 1_000_000 <= before + 5:  # the clock has moved on since the event
        time.sleep(0.001)
    assert _aos(kernel, "world", "snapshot", "c1").returncode == 0
    assert last_event_ms() == before


def test_switching_to_an_empty_universe_says_so(kernel, tmp_path):
    """`universe <typo>` in aos-shell warns that the universe has no worlds, and how to go back."""
    _counter(kernel)
    done = _shell(kernel, "universe defualt; worlds", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == [
        "now in universe defualt",
        "universe defualt has no worlds yet (universes need no creation: if that is a typo, `universe default` goes "
        "back)"]
    assert "warn" not in _shell(kernel, "universe default; worlds", tmp_path).stdout

"""`grants`, `revoke` and `grant` in the real shell, on a world whose workflow emits the effects it is sent."""

from __future__ import annotations

import json
import time

import pexpect

from aos.kernel.world.testing import SCRIPTED_MODULE, SCRIPTED_SCHEMAS

SCRIPT = "test/Script@1"
WORKFLOW = "test/scripted@1"
PUT = 'send test/Script@1 {"effects": [{"effect": "sys/blob.put@1", "params": {"data": {"$bytes": "eA=="}}}]}'


def scripted_bundle(directory, grants: dict) -> str:
    """A bundle directory around the scripted workflow (as in tests/host/test_effects.py), with the given grants."""
    directory.mkdir()
    (directory / "manifest.json").write_text(json.dumps({
        "version": 1,
        "name": "test/scripted",
        "schemas": {**SCRIPTED_SCHEMAS, "sys/BlobPut@1": {"record": {"data": "bytes"}},
                    "sys/BlobPutReceipt@1": {"record": {"hash": "text", "size": "nat"}}},
        "modules": {WORKFLOW: {"runtime": "python", "python_module": SCRIPTED_MODULE}},
        "workflows": {WORKFLOW: {"module": WORKFLOW, "entry": "scripted", "state": "test/ScriptState@1",
                                 "event": SCRIPT, "effects": ["sys/blob.put@1"]}},
        "effects": {"sys/blob.put@1": {"params": "sys/BlobPut@1", "receipt": "sys/BlobPutReceipt@1", "cap": "blob"}},
        "grants": grants,
        "routing": [{"event": SCRIPT, "workflow": WORKFLOW}],
    }))
    return str(directory)


def receipts(shell_script, world: str, count: int, timeout: float = 10.0) -> list:
    """The scripted workflow's receipts, read with `aos-shell -c` until there are `count` (effects settle async)."""
    deadline = time.monotonic() + timeout
    while True:
        done = shell_script(f"world {world}; state {WORKFLOW}")
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout.split(": ", 1)[1])["receipts"] if done.stdout.strip() else []
        if len(found) >= count or time.monotonic() > deadline:
            return found


def test_grants_list_revoke_and_grant_switch_a_worlds_effects(kernel, spawn_shell, where, shell_script, tmp_path):
    """`grants` shows blob active; after `revoke blob` the next blob.put settles as revoked; `grant blob` restores it."""
    bundle = scripted_bundle(tmp_path / "scripted", {"blob": {"cap": "blob"}})
    sh = spawn_shell()
    sh.expect(where("default"))
    sh.sendline("grants")
    sh.expect(r"error: InvalidArgument: enter a world first")
    sh.expect(where("default"))
    sh.sendline(f"create {bundle} --id g1; world g1")
    sh.expect(where("default/g1"))
    sh.sendline("grants")
    sh.expect(r"NAME\s+CAP\s+ACTIVE\s+PARAMS")
    sh.expect(r"blob(\x1b\[[0-9;]*m)*\s+blob\s+(\x1b\[[0-9;]*m)*yes(\x1b\[[0-9;]*m)*\s+(\x1b\[[0-9;]*m)*\{\}")
    sh.expect(where("default/g1"))

    sh.sendline(PUT)
    sh.expect("event journaled at seq")
    sh.expect(where("default/g1"))
    assert [r[1] for r in receipts(shell_script, "g1", 1)] == ["ok"]

    sh.sendline("revoke blob")
    sh.expect("grant blob revoked in g1")
    sh.expect(where("default/g1"))
    sh.sendline("grants")
    sh.expect(r"blob(\x1b\[[0-9;]*m)*\s+blob\s+(\x1b\[[0-9;]*m)*no \(revoked\)")
    sh.expect(where("default/g1"))
    sh.sendline(PUT)
    sh.expect("event journaled at seq")
    sh.expect(where("default/g1"))
    second = receipts(shell_script, "g1", 2)[1]
    assert second[1] == "error" and second[2]["error"] == "revoked"
    sh.sendline(f"state {WORKFLOW}")  # the person at the prompt sees it too
    sh.expect(r'"revoked"')
    sh.expect(where("default/g1"))

    sh.sendline("grant blob")
    sh.expect("grant blob is active again in g1")
    sh.expect(where("default/g1"))
    sh.sendline(PUT)
    sh.expect("event journaled at seq")
    assert [r[1] for r in receipts(shell_script, "g1", 3)] == ["ok", "error", "ok"]
    sh.sendline("revoke nope")
    sh.expect(r"error: InvalidArgument: .*nope")
    sh.expect(where("default/g1"))
    sh.sendline("exit")
    sh.expect(pexpect.EOF)

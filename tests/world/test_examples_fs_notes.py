"""examples/fs-notes: notes written and listed through a host.fs grant."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aos.kernel.world import EffectRejectedRecord, World, load_bundle, replay
from aos.kernel.world.testing import Harness

BUNDLE = Path(__file__).resolve().parents[2] / "examples" / "fs-notes"
WF = "demo/fs-notes@1"
ROOT = "/home/me/notes-root"
MakeWorld = Callable[..., World]


def _doc(root: str = ROOT) -> dict[str, Any]:
    """The bundle's manifest with the grant root substituted, as `aos world create --grant-root` will."""
    doc = json.loads((BUNDLE / "manifest.json").read_text())
    assert doc["grants"]["notes"]["params"]["root"] == "${AOS_GRANT_ROOT}"
    doc["grants"]["notes"]["params"]["root"] = root
    return doc


def _check_replay(h: Harness, make_world: MakeWorld) -> None:
    """Genesis replay and snapshot + tail replay both end byte-identical to the live world."""
    genesis = make_world(_doc())
    assert replay(genesis, h.journal) == ()
    assert genesis.state_hash() == h.world.state_hash()
    mark, snap = h.snapshots[-1]
    restored = World.restore(genesis.manifest, genesis.runtimes, h.world.world_id, snap)
    assert replay(restored, h.journal[mark:]) == ()
    assert restored.snapshot() == h.world.snapshot()


def _write_ok(path: str, text: str, created: bool = True) -> dict[str, Any]:
    return {"path": path, "size": len(text.encode()), "created": created, "appended": False}


def _entry(name: str, size: int) -> dict[str, Any]:
    return {"name": name, "type": "file", "size": size}


def test_add_writes_under_notes_and_list_records_the_listing(make_world: MakeWorld) -> None:
    """Adds write notes/<name>.txt with parents, names join state on ok receipts, and a list replaces the listing."""
    h = Harness(make_world(_doc()))
    (w1,) = h.send("demo/NoteOp@1", {"op": "add", "name": "todo", "text": "buy milk"}).intents
    assert (w1.effect, w1.grant) == ("sys/host.fs.write@1", "notes")
    assert w1.params == {"path": "notes/todo.txt", "content": "buy milk", "parents": True}
    (w2,) = h.send("demo/NoteOp@1", {"op": "add", "name": "ideas", "text": "aos"}).intents
    h.receipt(w2, "ok", _write_ok("notes/ideas.txt", "aos"))
    assert h.world.state(WF)["notes"] == ["ideas"]
    h.snapshot()
    h.receipt(w1, "ok", _write_ok("notes/todo.txt", "buy milk"))
    (ls,) = h.send("demo/NoteOp@1", {"op": "list"}).intents
    assert (ls.effect, ls.params) == ("sys/host.fs.list@1", {"path": "notes"})
    h.receipt(ls, "ok", {"path": "notes", "entries": [_entry("ideas.txt", 3), _entry("todo.txt", 8)],
                         "truncated": False})
    st = h.world.state(WF)
    assert st["notes"] == ["ideas", "todo"]
    assert st["last_listing"] == ["ideas.txt", "todo.txt"]
    assert (st["writes"], st["lists"], st["errors"], st["pending"]) == (2, 1, 0, {})
    _check_replay(h, make_world)


def test_bad_names_make_no_effect_and_errors_are_recorded(make_world: MakeWorld) -> None:
    """A name with a slash or a leading dot emits nothing; a failed write or list counts an error with its code."""
    h = Harness(make_world(_doc()))
    for bad in ("../escape", "a/b", ".hidden", ""):
        assert h.send("demo/NoteOp@1", {"op": "add", "name": bad, "text": "x"}).intents == ()
    assert h.send("demo/NoteOp@1", {"op": "add", "name": "nontext"}).intents == ()
    assert h.world.state(WF)["last_error"] == "add refused: no text"
    (ls,) = h.send("demo/NoteOp@1", {"op": "list"}).intents
    h.snapshot()
    h.receipt(ls, "error", {"error": "not_found", "message": "'notes' does not exist"})
    (w,) = h.send("demo/NoteOp@1", {"op": "add", "name": "n1", "text": "t"}).intents
    h.receipt(w, "error", {"error": "read_only", "message": "refused"})
    st = h.world.state(WF)
    assert (st["notes"], st["errors"], st["last_error"], st["pending"]) == (
        [], 2, "sys/host.fs.write@1: read_only", {})
    _check_replay(h, make_world)


def test_read_only_grant_rejects_writes_but_allows_lists(make_world: MakeWorld) -> None:
    """Under a read-only grant the kernel refuses the write at admission; the list is still admitted."""
    doc = _doc()
    doc["grants"]["notes"]["params"]["read_only"] = True
    h = Harness(make_world(doc))
    res = h.send("demo/NoteOp@1", {"op": "add", "name": "x", "text": "y"})
    (rej,) = [r for r in res.records if isinstance(r, EffectRejectedRecord)]
    assert rej.reason.endswith("grant is read-only")
    assert len(h.send("demo/NoteOp@1", {"op": "list"}).intents) == 1


def test_the_placeholder_bundle_loads_as_is() -> None:
    """The committed manifest, with the literal ${AOS_GRANT_ROOT} as root, parses as it is."""
    m, wasm = load_bundle(BUNDLE)
    assert m.grants["notes"].params["root"] == "${AOS_GRANT_ROOT}" and wasm == {}

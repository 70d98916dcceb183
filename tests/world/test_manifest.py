"""Manifests: parsing, canonical hashes, and errors that name the bad field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from aos.kernel.world import ManifestError, load_bundle, load_manifest_json, parse_manifest
from aos.kernel.world.manifest import def_hash


def test_example_bundles_parse(built_examples: Any) -> None:
    """Both example bundles load, with artifact hashes filled from the wasm files."""
    m, wasm = load_bundle(built_examples / "hello-timer")
    assert m.modules["demo/timer_wasm@1"].artifact_hash in wasm
    assert m.workflows["demo/hello-timer@1"].effects == ("sys/timer.set@1",)
    m2, _ = load_bundle(built_examples / "counter")
    assert m2.workflows["demo/cells@1"].key == "demo/CellId@1"


def test_manifest_hash_ignores_json_order_and_module_path(scripted_doc: Callable[..., dict[str, Any]]) -> None:
    """Reordering JSON keys keeps the hash; a module's path hint is not identity."""
    doc = scripted_doc()
    reordered = json.loads(json.dumps(doc, sort_keys=True))
    reordered["schemas"] = dict(reversed(list(reordered["schemas"].items())))
    assert parse_manifest(reordered).hash == parse_manifest(doc).hash
    a = {"version": 1, "modules": {"m": {"runtime": "wasm", "hash": "sha256:" + "0" * 64, "path": "a.wasm"}}}
    b = copy.deepcopy(a)
    b["modules"]["m"]["path"] = "elsewhere/b.wasm"
    assert parse_manifest(a).hash == parse_manifest(b).hash


def test_changing_a_definition_changes_its_hash_and_the_manifest_hash(
        scripted_doc: Callable[..., dict[str, Any]]) -> None:
    """Definitions are content-addressed: one changed field changes both hashes."""
    doc = scripted_doc()
    m1 = parse_manifest(doc)
    doc["grants"]["web"]["params"]["hosts"].append("api.example.com")
    m2 = parse_manifest(doc)
    assert def_hash(m1.grants["web"]) != def_hash(m2.grants["web"])
    assert def_hash(m1.grants["sh"]) == def_hash(m2.grants["sh"])
    assert m1.hash != m2.hash
    assert m1.hash.startswith("sha256:") and len(m1.hash) == 71


def _break(doc: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    edit(doc)
    return doc


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("unknown top field", lambda d: d.update(extra=1), "$.extra"),
    ("bad version", lambda d: d.update(version=2), "$.version"),
    ("workflow module unknown", lambda d: d["workflows"]["test/scripted@1"].update(module="nope"),
     "$.workflows.test/scripted@1.module"),
    ("undeclared effect in workflow", lambda d: d["workflows"]["test/scripted@1"]["effects"].append("sys/x@1"),
     "$.workflows.test/scripted@1.effects[6]"),
    ("unknown state schema", lambda d: d["workflows"]["test/scripted@1"].update(state="nope"),
     "$.workflows.test/scripted@1.state"),
    ("bad type", lambda d: d["schemas"].update({"x": {"record": {"a": "float"}}}), "$.schemas.x.record.a"),
    ("dangling ref", lambda d: d["schemas"].update({"x": {"list": {"ref": "nope"}}}), "$.schemas.x.list.ref"),
    ("recursive schema", lambda d: d["schemas"].update({"x": {"list": {"ref": "y"}}, "y": {"ref": "x"}}),
     "$.schemas.x"),
    ("grant missing root", lambda d: d["grants"].update(fs={"cap": "host.fs", "params": {}}),
     "$.grants.fs.params.root"),
    ("grant wrong param type", lambda d: d["grants"]["web"]["params"].update(hosts="example.com"),
     "$.grants.web.params.hosts"),
    ("unknown cap kind", lambda d: d["grants"].update(x={"cap": "root"}), "$.grants.x.cap"),
    ("effect cap unknown", lambda d: d["effects"]["sys/host.exec@1"].update(cap="shell"), "$.effects.sys/host.exec@1.cap"),
    ("wasm without hash", lambda d: d["modules"].update(w={"runtime": "wasm"}), "$.modules.w.hash"),
    ("route to wrong event", lambda d: d["routing"].append({"event": "test/Id@1", "workflow": "test/scripted@1"}),
     "$.routing[2].event"),
    ("key_field on unkeyed", lambda d: d["routing"][0].update(key_field="id"), "$.routing[0].key_field"),
    ("duplicate route", lambda d: d["routing"].append(dict(d["routing"][0])), "$.routing[2]"),
    ("secrets not text", lambda d: d.update(secrets=["OK", 3]), "$.secrets[1]"),
]


@pytest.mark.parametrize(("what", "edit", "path"), CASES, ids=[c[0] for c in CASES])
def test_invalid_manifest_error_names_the_field(
        scripted_doc: Callable[..., dict[str, Any]], what: str, edit: Callable[[dict[str, Any]], None],
        path: str) -> None:
    """Each malformed manifest raises ManifestError whose path points at the bad field."""
    with pytest.raises(ManifestError) as info:
        parse_manifest(_break(scripted_doc(), edit))
    assert info.value.path == path, str(info.value)
    assert info.value.code == "Manifest"


def test_keyed_workflow_needs_key_field(scripted_doc: Callable[..., dict[str, Any]]) -> None:
    """A keyed workflow routed without key_field is refused."""
    doc = scripted_doc(keyed=True)
    del doc["routing"][0]["key_field"]
    with pytest.raises(ManifestError, match="key_field"):
        parse_manifest(doc)


def test_load_manifest_json_reports_syntax_errors() -> None:
    """Text that is not JSON fails with a ManifestError at $."""
    with pytest.raises(ManifestError) as info:
        load_manifest_json("{not json")
    assert info.value.path == "$"

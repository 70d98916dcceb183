"""Fixtures for the world tests: example bundles, a shared module cache, worlds."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aos.kernel.world import WasmModuleCache, World, load_bundle, load_runtimes, parse_manifest
from aos.kernel.world.testing import SCRIPTED_MODULE, SCRIPTED_SCHEMAS, TEST_PYTHON

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def have_toolchain() -> bool:
    return shutil.which("clang") is not None and shutil.which("wasm-ld") is not None and shutil.which("make") is not None


@pytest.fixture(scope="session")
def built_examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples directory, rebuilt from source when clang + lld exist,
    else the committed artifacts."""
    if not have_toolchain():
        return EXAMPLES
    out = tmp_path_factory.mktemp("examples")
    shutil.copytree(EXAMPLES, out, dirs_exist_ok=True)
    subprocess.run(["make", "-s", "-C", str(out), "clean", "all"], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def cache() -> WasmModuleCache:
    return WasmModuleCache()


@pytest.fixture
def make_world(cache: WasmModuleCache) -> Callable[..., World]:
    """Build a world from a manifest dict (or a bundle directory) and wasm bytes."""

    def make(doc: Any, wasm: dict[str, bytes] | None = None, world_id: str = "world-1") -> World:
        if isinstance(doc, Path):
            manifest, wasm = load_bundle(doc)
        else:
            manifest = parse_manifest(doc)
        return World(manifest, load_runtimes(manifest, wasm or {}, cache, python=TEST_PYTHON), world_id)

    return make


def scripted_manifest(grants: dict[str, Any] | None = None, keyed: bool = False,
                      effects: list[str] | None = None) -> dict[str, Any]:
    """A manifest around the scripted Python workflow with a catalog of effects."""
    wf: dict[str, Any] = {
        "module": "test/scripted@1", "entry": "scripted", "state": "test/ScriptState@1",
        "event": "test/Script@1",
        "effects": effects if effects is not None else
        ["sys/http.request@1", "sys/host.fs.read@1", "sys/host.fs.write@1", "sys/host.exec@1", "sys/llm.generate@1",
         "sys/timer.set@1"],
    }
    route: dict[str, Any] = {"event": "test/Script@1", "workflow": "test/scripted@1"}
    if keyed:
        wf["key"] = "test/Id@1"
        route["key_field"] = "id"
    return {
        "version": 1,
        "schemas": {
            **SCRIPTED_SCHEMAS,
            "test/Id@1": "text",
            "test/Http@1": {"record": {"method": {"enum": ["GET", "POST"]}, "url": "text"}},
            "test/HttpReceipt@1": {"record": {"status": "nat", "body": {"option": "bytes"}}},
            "test/FsPath@1": {"record": {"path": "text"}},
            "test/FsWrite@1": {"record": {"path": "text", "data": "bytes"}},
            "test/Exec@1": {"record": {"argv": {"list": "text"}, "cwd": {"option": "text"}}},
            "test/Llm@1": {"record": {"provider": "text", "max_tokens": {"option": "nat"},
                                      "api_key": {"option": "secret"}}},
            "test/Timer@1": {"record": {"deliver_at_ns": "nat"}},
            "test/Any@1": "any",
            "demo/CounterEvent@1": {"record": {"by": "int", "id": {"option": "text"}}},
            "demo/CounterState@1": {"record": {"count": "int"}},
        },
        "modules": {
            "test/scripted@1": {"runtime": "python", "python_module": SCRIPTED_MODULE},
            "demo/counter_py@1": {"runtime": "python", "python_module": "aos.kernel.world.examples.counter"},
        },
        "workflows": {
            "test/scripted@1": wf,
            "demo/counter_py@1": {"module": "demo/counter_py@1", "state": "demo/CounterState@1",
                                  "event": "demo/CounterEvent@1"},
        },
        "effects": {
            "sys/http.request@1": {"params": "test/Http@1", "receipt": "test/HttpReceipt@1", "cap": "http"},
            "sys/host.fs.read@1": {"params": "test/FsPath@1", "receipt": "test/Any@1", "cap": "host.fs"},
            "sys/host.fs.write@1": {"params": "test/FsWrite@1", "receipt": "test/Any@1", "cap": "host.fs",
                               "writes": True},
            "sys/host.exec@1": {"params": "test/Exec@1", "receipt": "test/Any@1", "cap": "host.exec"},
            "sys/llm.generate@1": {"params": "test/Llm@1", "receipt": "test/Any@1", "cap": "llm"},
            "sys/timer.set@1": {"params": "test/Timer@1", "receipt": "test/Any@1", "cap": "timer"},
        },
        "grants": grants if grants is not None else {
            "web": {"cap": "http", "params": {"hosts": ["example.com"]}},
            "repo": {"cap": "host.fs", "params": {"root": "/work/repo", "read_only": True}},
            "sh": {"cap": "host.exec", "params": {"cwd": "/work/repo", "commands": ["ls", "git"]}},
            "model": {"cap": "llm", "params": {"providers": ["anthropic"], "budget": {"max_tokens": 1000}}},
            "clock": {"cap": "timer"},
        },
        "secrets": ["ANTHROPIC_API_KEY"],
        "routing": [route, {"event": "demo/CounterEvent@1", "workflow": "demo/counter_py@1"}],
    }


@pytest.fixture
def scripted_doc() -> Callable[..., dict[str, Any]]:
    """``scripted_manifest`` as a fixture (test modules cannot import conftest)."""
    return scripted_manifest

"""Build runtimes for a manifest's modules, and load a world bundle from disk.

``load_runtimes`` is pure apart from compiling: the caller hands it the WASM
bytes by artifact hash (from CAS, or from files). ``load_bundle`` is the one
helper here that reads files: a directory with ``manifest.json`` whose wasm
modules name a ``path`` relative to it. A bundle's manifest may leave a wasm
module's ``hash`` as ``"auto"`` for authoring; the loader fills it in from the
file, as AOS fills omitted artifact hashes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aos.kernel.world.errors import ManifestError, ModuleLoadError
from aos.kernel.world.manifest import Manifest, parse_manifest
from aos.kernel.world.python_runtime import DEFAULT_STEP_SECONDS, PythonAllowList, PythonRuntime
from aos.kernel.world.runtime import (
    DEFAULT_LIMITS,
    WasmLimits,
    WasmModuleCache,
    WasmRuntime,
    WorkflowRuntime,
)


def load_runtimes(manifest: Manifest, wasm: Mapping[str, bytes], cache: WasmModuleCache | None = None,
                  limits: WasmLimits = DEFAULT_LIMITS,
                  python: PythonAllowList | None = None,
                  python_step_seconds: float = DEFAULT_STEP_SECONDS) -> dict[str, WorkflowRuntime]:
    """One runtime per module. ``wasm`` maps artifact hash to module bytes;
    Python modules must be on ``python`` (the project's own by default), and
    every Python workflow's entry a public function of its module.
    Raises ``ModuleLoadError``."""
    cache = cache or WasmModuleCache()
    out: dict[str, WorkflowRuntime] = {}
    for name, m in manifest.modules.items():
        if m.runtime == "wasm":
            assert m.artifact_hash is not None
            compiled = cache.module(m.artifact_hash, wasm.get(m.artifact_hash))
            out[name] = WasmRuntime(cache.engine, compiled, limits)
        else:
            assert m.python_module is not None
            out[name] = PythonRuntime(m.python_module, python, python_step_seconds)
    for wf in manifest.workflows.values():
        runtime = out.get(wf.module)
        if isinstance(runtime, PythonRuntime):
            runtime.entry(wf.entry)
    return out


def read_bundle(directory: str | Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Read ``manifest.json`` and its wasm files: the manifest document (module
    ``"auto"`` hashes filled in) and the wasm bytes by hash. Raises
    ``ManifestError``/``ModuleLoadError``."""
    root = Path(directory)
    try:
        doc = json.loads((root / "manifest.json").read_text())
    except OSError as exc:
        raise ManifestError("$", f"cannot read {root / 'manifest.json'}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ManifestError("$", f"{root / 'manifest.json'} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ManifestError("$", f"{root / 'manifest.json'} is not JSON: {exc}") from None
    except RecursionError:
        raise ManifestError("$", f"{root / 'manifest.json'} nests too deeply") from None
    if not isinstance(doc, dict):
        raise ManifestError("$", "a manifest is a JSON object")
    wasm: dict[str, bytes] = {}
    for name, mod in (doc.get("modules") or {}).items():
        if isinstance(mod, dict) and mod.get("runtime") == "wasm":
            if "path" not in mod:
                raise ManifestError(f"$.modules.{name}.path", "a bundle's wasm module needs a path")
            try:
                data = (root / mod["path"]).read_bytes()
            except OSError as exc:
                raise ModuleLoadError(f"{name}: cannot read {mod['path']}: {exc}") from exc
            h = "sha256:" + hashlib.sha256(data).hexdigest()
            if mod.get("hash", "auto") == "auto":
                mod["hash"] = h
            elif mod["hash"] != h:
                raise ModuleLoadError(f"{name}: {mod['path']} hashes to {h}, the manifest says {mod['hash']}")
            wasm[h] = data
    return doc, wasm


def load_bundle(directory: str | Path) -> tuple[Manifest, dict[str, bytes]]:
    """``read_bundle`` and parse: the manifest and the wasm bytes by hash."""
    doc, wasm = read_bundle(directory)
    return parse_manifest(doc), wasm

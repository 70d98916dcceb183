"""Workflow runtimes: the C and Python counters agree; traps, fuel and memory limits."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from aos.kernel.world import (
    ModuleLoadError,
    PythonRuntime,
    WasmLimits,
    WasmModuleCache,
    WasmRuntime,
    World,
    load_bundle,
    load_runtimes,
    parse_manifest,
)
from aos.kernel.world.testing import Clock, runaway_wasm


def _hash(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _step_input(value: Any, state: Any = None) -> dict[str, Any]:
    return {"version": 1, "state": state, "event": {"schema": "demo/CounterEvent@1", "value": value}, "ctx": {}}


def test_wasm_and_python_counters_agree_byte_for_byte(built_examples: Path, make_world: Callable[..., World]) -> None:
    """The C counter and the Python counter store identical state bytes after every event."""
    w = make_world(built_examples / "counter")
    clock = Clock()
    for by in [1, 5, -2, 40, -44]:
        res = w.apply(clock.event("demo/CounterEvent@1", {"by": by}))
        assert res.status == "ok" and not res.traps
        assert w.state_bytes("demo/counter@1") == w.state_bytes("demo/counter_py@1")
    assert w.state("demo/counter@1") is None  # back to zero: no state
    w.apply(clock.event("demo/CounterEvent@1", {"by": 7}))
    assert w.state("demo/counter@1") == {"count": 7} == w.state("demo/counter_py@1")


def test_wasm_trap_is_a_result_and_the_instance_recovers(built_examples: Path, cache: WasmModuleCache) -> None:
    """A trapping step returns a Trap, and the next step on the same runtime works."""
    m, wasm = load_bundle(built_examples / "counter")
    rt = load_runtimes(m, wasm, cache)["demo/counter_wasm@1"]
    trap = rt.call("step", _step_input({"no_by": 1}))
    assert getattr(trap, "code", None) == "WorkflowTrap"
    assert rt.call("step", _step_input({"by": 2}, {"count": 1})) == {"state": {"count": 3}}
    missing = rt.call("nope", _step_input({"by": 2}))
    assert getattr(missing, "code", None) == "WorkflowTrap"


def _runaway_manifest(wasm: bytes) -> dict[str, Any]:
    return {
        "version": 1,
        "schemas": {"t/Spin@1": {"record": {}}, "t/S@1": "any",
                    "demo/CounterEvent@1": {"record": {"by": "int", "id": {"option": "text"}}},
                    "demo/CounterState@1": {"record": {"count": "int"}}},
        "modules": {"t/runaway@1": {"runtime": "wasm", "hash": _hash(wasm)},
                    "demo/counter_py@1": {"runtime": "python",
                                          "python_module": "aos.kernel.world.examples.counter"}},
        "workflows": {"t/runaway@1": {"module": "t/runaway@1", "state": "t/S@1", "event": "t/Spin@1"},
                      "demo/counter_py@1": {"module": "demo/counter_py@1", "state": "demo/CounterState@1",
                                            "event": "demo/CounterEvent@1"}},
        "routing": [{"event": "t/Spin@1", "workflow": "t/runaway@1"},
                    {"event": "demo/CounterEvent@1", "workflow": "demo/counter_py@1"}],
    }


@pytest.mark.timeout(30)
def test_runaway_loop_is_stopped_by_fuel_and_the_world_keeps_working(cache: WasmModuleCache) -> None:
    """An infinite loop ends as a FuelExhausted trap record; later events still apply."""
    wasm = runaway_wasm()
    m = parse_manifest(_runaway_manifest(wasm))
    w = World(m, load_runtimes(m, {_hash(wasm): wasm}, cache, WasmLimits(fuel=200_000)), "w")
    clock = Clock()
    for _ in range(2):  # the second spin proves a fresh instance replaced the trapped one
        res = w.apply(clock.event("t/Spin@1", {}))
        assert res.status == "ok"
        assert [t.code for t in res.traps] == ["FuelExhausted"]
        assert w.state("t/runaway@1") is None
    res = w.apply(clock.event("demo/CounterEvent@1", {"by": 3}))
    assert res.status == "ok" and not res.traps
    assert w.state("demo/counter_py@1") == {"count": 3}


GROW_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "step") (param i32 i32) (result i64)
    (if (i32.eq (memory.grow (i32.const 2000)) (i32.const -1)) (then unreachable))
    (i64.const 0)))
"""


def test_memory_limit_refuses_growth(cache: WasmModuleCache) -> None:
    """Growing memory past the store limit fails inside the module (here: a trap)."""
    wasm = bytes(wasmtime.wat2wasm(GROW_WAT))
    module = cache.module(_hash(wasm), wasm)
    limited = WasmRuntime(cache.engine, module, WasmLimits(memory_bytes=16 << 20))
    res = limited.call("step", _step_input({"by": 1}))
    assert getattr(res, "code", None) == "WorkflowTrap"
    roomy = WasmRuntime(cache.engine, module, WasmLimits(memory_bytes=256 << 20))
    assert getattr(roomy.call("step", _step_input({"by": 1})), "code", None) == "WorkflowTrap"  # empty output
    assert "not CBOR" in roomy.call("step", _step_input({"by": 1})).message  # type: ignore[union-attr]


def test_module_bytes_must_match_the_manifest_hash(cache: WasmModuleCache) -> None:
    """Bytes that do not hash to the declared artifact hash are refused."""
    wasm = runaway_wasm()
    with pytest.raises(ModuleLoadError, match="hash"):
        cache.module("sha256:" + "0" * 64, wasm)


def test_modules_with_imports_are_refused(cache: WasmModuleCache) -> None:
    """A module importing anything (a clock, WASI) cannot be a workflow."""
    wasm = bytes(wasmtime.wat2wasm(
        '(module (import "wasi" "clock" (func)) (memory (export "memory") 1)'
        ' (func (export "alloc") (param i32) (result i32) (i32.const 0)))'))
    with pytest.raises(ModuleLoadError, match="import"):
        cache.module(_hash(wasm), wasm)


def test_serialized_cache_loads_without_the_wasm_bytes(built_examples: Path) -> None:
    """A second cache sharing the serialized store runs the module without recompiling it."""
    m, wasm = load_bundle(built_examples / "counter")
    store: dict[str, bytes] = {}
    h = m.modules["demo/counter_wasm@1"].artifact_hash
    assert h is not None
    first = WasmModuleCache(serialized=store)
    first.module(h, wasm[h])
    assert len(store) == 1
    second = WasmModuleCache(engine=first.engine, serialized=store)
    rt = WasmRuntime(second.engine, second.module(h, None))
    assert rt.call("step", _step_input({"by": 4})) == {"state": {"count": 4}}


def test_python_runtime_turns_exceptions_into_traps() -> None:
    """A raising Python workflow yields a Trap; an unknown module is a load error."""
    rt = PythonRuntime("aos.kernel.world.examples.counter")
    res = rt.call("step", _step_input({}))
    assert getattr(res, "code", None) == "WorkflowTrap" and "KeyError" in res.message  # type: ignore[union-attr]
    with pytest.raises(ModuleLoadError):
        PythonRuntime("aos.kernel.world.no_such_module")


def test_state_given_as_cell_bytes_is_the_same_step_and_a_fresh_copy(built_examples: Path,
                                                                      cache: WasmModuleCache) -> None:
    """The stepper hands a runtime the cell's bytes instead of the decoded state: the same output
    for both runtimes, and a Python step that mutates its input cannot touch the caller's value."""
    from aos.kernel.world import cbor

    m, wasm = load_bundle(built_examples / "counter")
    runtimes = load_runtimes(m, wasm, cache)
    state = {"count": 1}
    for name in ("demo/counter_wasm@1", "demo/counter_py@1"):
        rt = runtimes[name]
        inp = _step_input({"by": 2})
        assert rt.call("step", inp, cbor.encode(state)) == rt.call("step", _step_input({"by": 2}, state))
        assert inp["state"] is None and state == {"count": 1}
    seen: list[Any] = []
    rt = PythonRuntime("aos.kernel.world.examples.counter")
    rt.entry = lambda _name: lambda fresh: seen.append(fresh) or {"state": None}  # type: ignore[method-assign]
    value = {"by": [1]}
    rt.call("step", _step_input(value, state))
    rt.call("step", _step_input(value), cbor.encode(state))
    assert seen[0] == seen[1] and list(seen[0]) == list(seen[1]) == ["ctx", "event", "state", "version"]
    assert seen[1]["event"]["value"] is not value


# step traps on its second call in the same instance: it keeps a count in a global
STATEFUL_WAT = """
(module
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 16) "\\a1\\65state\\f6")
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "step") (param i32 i32) (result i64)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (if (i32.gt_u (global.get $calls) (i32.const 1)) (then unreachable))
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 8))))
"""


def test_fresh_instance_per_step_removes_hidden_global_state(cache: WasmModuleCache) -> None:
    """With fresh_instance a module cannot see its previous steps' globals; by default it can."""
    wasm = bytes(wasmtime.wat2wasm(STATEFUL_WAT))
    module = cache.module(_hash(wasm), wasm)
    fresh = WasmRuntime(cache.engine, module, WasmLimits(fresh_instance=True))
    assert [fresh.call("step", _step_input({"by": 1})) for _ in range(3)] == [{"state": None}] * 3
    reused = WasmRuntime(cache.engine, module)
    assert reused.call("step", _step_input({"by": 1})) == {"state": None}
    assert getattr(reused.call("step", _step_input({"by": 1})), "code", None) == "WorkflowTrap"

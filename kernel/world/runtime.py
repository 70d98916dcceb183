"""Workflow runtimes: WASM (wasmtime, fuel + memory limits); trusted Python is in
``python_runtime``.

Both take the decoded step input (a dict) and return the decoded output or a
``Trap``; neither raises for anything a workflow does. A runtime is built once
per module and reused for every step.

WASM contract: the module imports nothing and exports ``memory``,
``alloc(len: i32) -> i32`` and ``step(ptr: i32, len: i32) -> i64`` whose
result packs the output buffer as ``ptr << 32 | len``. The host calls
``alloc`` once per step (so a bump allocator may reset there), writes the
canonical CBOR input, calls ``step`` and reads the output. Fuel is refilled
before each step; running out is a ``FuelExhausted`` trap. After any trap the
instance is thrown away and a fresh one is made for the next step, because a
trapped instance's memory may be half-written.

Modules must not carry state between steps in globals; the state is what the
host passes in. By default an instance is reused (speed) and replay checks
catch a module that cheats; ``WasmLimits(fresh_instance=True)`` enforces it.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import importlib.metadata
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

import wasmtime
from aos.kernel.world import cbor
from aos.kernel.world.abi import Trap
from aos.kernel.world.errors import CborError, ModuleLoadError
from wasmtime import _bindings as _ffi  # private; wasmtime is pinned >=50,<60 in pyproject

# compiled code is only valid for the wasmtime that produced it
_WASMTIME_VERSION = importlib.metadata.version("wasmtime")
DEFAULT_FUEL = 50_000_000
DEFAULT_MEMORY_BYTES = 64 << 20


class WorkflowRuntime(Protocol):
    def call(self, entry: str, step_input: dict[str, Any], state_bytes: bytes | None = None) -> Any | Trap:
        """Run one step; return the decoded output value or a ``Trap``. ``state_bytes``, when given,
        is the state (its tagged canonical CBOR, as the cell holds it) and ``step_input["state"]``
        is not read."""
        ...


@dataclass(frozen=True)
class WasmLimits:
    """Per-step limits. ``fresh_instance`` re-instantiates the module for every
    step (~20 µs more), which makes hidden state in globals impossible rather
    than merely detectable by replay."""

    fuel: int = DEFAULT_FUEL
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    fresh_instance: bool = False


DEFAULT_LIMITS = WasmLimits()


def make_engine() -> wasmtime.Engine:
    """An engine configured for deterministic, metered execution."""
    cfg = wasmtime.Config()
    cfg.consume_fuel = True
    cfg.cranelift_nan_canonicalization = True
    cfg.wasm_threads = False
    cfg.wasm_relaxed_simd_deterministic = True
    return wasmtime.Engine(cfg)


class WasmModuleCache:
    """Compiled modules keyed by artifact hash.

    ``serialized`` is an optional byte store the caller owns (a dict, or a
    disk/CAS-backed mapping); compiled code is put there and loaded back with
    ``Module.deserialize``, which trusts its input, so that store must hold
    only bytes this engine produced."""

    def __init__(self, engine: wasmtime.Engine | None = None,
                 serialized: MutableMapping[str, bytes] | None = None) -> None:
        self.engine = engine or make_engine()
        self.serialized = serialized
        self._modules: dict[str, wasmtime.Module] = {}

    def module(self, artifact_hash: str, wasm: bytes | None) -> wasmtime.Module:
        """Return the compiled module; raises ``ModuleLoadError`` if the bytes
        do not hash to ``artifact_hash`` or do not compile, or import anything."""
        m = self._modules.get(artifact_hash)
        if m is not None:
            return m
        key = f"wasmtime-{_WASMTIME_VERSION}:{artifact_hash}"
        if self.serialized is not None and key in self.serialized:
            m = wasmtime.Module.deserialize(self.engine, self.serialized[key])
        else:
            if wasm is None:
                raise ModuleLoadError(f"no bytes for module {artifact_hash}")
            got = "sha256:" + hashlib.sha256(wasm).hexdigest()
            if got != artifact_hash:
                raise ModuleLoadError(f"module bytes hash to {got}, manifest says {artifact_hash}")
            try:
                m = wasmtime.Module(self.engine, wasm)
            except wasmtime.WasmtimeError as exc:
                raise ModuleLoadError(f"module does not compile: {exc}") from exc
            if self.serialized is not None:
                self.serialized[key] = bytes(m.serialize())
        if m.imports:
            names = [f"{i.module}.{i.name}" for i in m.imports]
            raise ModuleLoadError(f"workflow modules may not import anything, got {names}")
        exports = {e.name for e in m.exports}
        missing = {"memory", "alloc"} - exports
        if missing:
            raise ModuleLoadError(f"module lacks exports {sorted(missing)}")
        self._modules[artifact_hash] = m
        return m


class WasmRuntime:
    """One instance of a WASM workflow module, with cached export handles."""

    def __init__(self, engine: wasmtime.Engine, module: wasmtime.Module,
                 limits: WasmLimits = DEFAULT_LIMITS) -> None:
        self._engine = engine
        self._module = module
        self._limits = limits
        self._live: _Live | None = None

    def _instance(self) -> _Live:
        if self._live is None:
            store = wasmtime.Store(self._engine)
            store.set_limits(memory_size=self._limits.memory_bytes)
            store.set_fuel(self._limits.fuel)
            inst = wasmtime.Instance(store, self._module, [])
            ex = inst.exports(store)
            mem = ex["memory"]
            assert isinstance(mem, wasmtime.Memory)
            funcs: dict[str, _RawFunc] = {}
            for e in self._module.exports:
                f = ex[e.name]
                if isinstance(f, wasmtime.Func):
                    sig = _signature(store, f)
                    if sig in (_ALLOC_SIG, _STEP_SIG):
                        funcs[e.name] = _RawFunc(store, f, sig)
            self._live = _Live(store, mem, funcs)
        return self._live

    def call(self, entry: str, step_input: dict[str, Any], state_bytes: bytes | None = None) -> Any | Trap:
        if state_bytes is not None:
            step_input = {**step_input, "state": cbor.decode_trusted(state_bytes)}
        try:
            data = cbor.encode(step_input)
        except CborError as exc:
            return Trap("WorkflowTrap", f"input not encodable: {exc}")
        try:
            live = self._instance()
            store, mem = live.store, live.memory
            fn, alloc = live.funcs.get(entry), live.funcs.get("alloc")
            if fn is None or fn.sig != _STEP_SIG:
                return Trap("WorkflowTrap", f"module has no export {entry!r} of type (i32, i32) -> i64")
            if alloc is None or alloc.sig != _ALLOC_SIG:
                return Trap("WorkflowTrap", "module has no export alloc of type (i32) -> i32")
            store.set_fuel(self._limits.fuel)
            ptr = alloc(len(data)) & 0xFFFFFFFF
            mem.write(store, data, ptr)
            packed = fn(ptr, len(data))
            out_ptr, out_len = (packed >> 32) & 0xFFFFFFFF, packed & 0xFFFFFFFF
            out = bytes(mem.read(store, out_ptr, out_ptr + out_len))
            if self._limits.fresh_instance:
                self._live = None
        except wasmtime.Trap as exc:
            code = "FuelExhausted" if exc.trap_code == wasmtime.TrapCode.OUT_OF_FUEL else "WorkflowTrap"
            what = exc.trap_code.name.lower() if exc.trap_code is not None else "trap"
            return self._trap(code, f"wasm trap: {what}")
        except (wasmtime.WasmtimeError, IndexError, ValueError, TypeError) as exc:
            return self._trap("WorkflowTrap", f"{type(exc).__name__}: {exc}".splitlines()[0])
        try:
            return cbor.decode_lenient(out)
        except CborError as exc:
            return Trap("WorkflowTrap", f"output is not CBOR: {exc}")

    def _trap(self, code: str, message: str) -> Trap:
        self._live = None  # a trapped instance may be inconsistent; start fresh
        return Trap(code, message)


@dataclass
class _Live:
    store: wasmtime.Store
    memory: wasmtime.Memory
    funcs: dict[str, _RawFunc]


_ALLOC_SIG = (("i32",), ("i32",))
_STEP_SIG = (("i32", "i32"), ("i64",))


def _signature(store: wasmtime.Store, f: wasmtime.Func) -> tuple[tuple[str, ...], tuple[str, ...]]:
    ty = f.type(store)
    return tuple(str(p) for p in ty.params), tuple(str(r) for r in ty.results)


class _RawFunc:
    """An export called through ``wasmtime_func_call_unchecked``.

    ``Func.__call__`` re-reads the type and converts every value on each call
    (~20 µs); we check the signature once, when the instance is made (only the
    two ABI signatures are accepted), and then pass raw values."""

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func,
                 sig: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
        self.sig = sig
        self._func = func  # keeps the handle alive
        self._ctx = store._context()
        self._ref = ctypes.byref(func._func)
        self._buf = (_ffi.wasmtime_val_raw * 2)()
        self._i64 = sig[1] == ("i64",)

    def __call__(self, *args: int) -> int:
        buf = self._buf
        for i, a in enumerate(args):
            buf[i].i64 = 0
            buf[i].i32 = ctypes.c_int32(a).value
        trap = ctypes.POINTER(_ffi.wasm_trap_t)()
        err = _ffi.wasmtime_func_call_unchecked(self._ctx, self._ref, buf, 2, ctypes.byref(trap))
        if err:
            raise wasmtime.WasmtimeError._from_ptr(err)
        if trap:
            raise wasmtime.Trap._from_ptr(trap)
        return buf[0].i64 & 0xFFFFFFFFFFFFFFFF if self._i64 else buf[0].i32 & 0xFFFFFFFF

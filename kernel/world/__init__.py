"""The sans-IO core of AOS worlds: canonical CBOR, manifests, the step ABI,
workflow runtimes (WASM and trusted Python), journal records, the stepper,
snapshots and replay. Nothing here does I/O except ``loader.load_bundle``;
the kernel's driver journals records and feeds them to ``World.apply``.
"""

from aos.kernel.world.abi import ABI_VERSION, StepOutput, Trap
from aos.kernel.world.cbor import decode, encode, hash_value, sha256_text
from aos.kernel.world.errors import (
    CborError,
    EffectDenied,
    FuelExhausted,
    ManifestError,
    ModuleLoadError,
    NondeterminismError,
    RecordError,
    SchemaViolation,
    SnapshotError,
    WorkflowTrap,
    WorldError,
)
from aos.kernel.world.loader import load_bundle, load_runtimes
from aos.kernel.world.manifest import Manifest, load_manifest_json, parse_manifest
from aos.kernel.world.records import (
    DomainEventRecord,
    EffectIntentRecord,
    EffectRejectedRecord,
    EventRecord,
    Origin,
    ReceiptRecord,
    Record,
    SnapshotRecord,
    Stamp,
    StateRecord,
    TrapRecord,
    decode_record,
)
from aos.kernel.world.replay import Replayer, replay
from aos.kernel.world.python_runtime import PythonAllowList, PythonRuntime
from aos.kernel.world.runtime import WasmLimits, WasmModuleCache, WasmRuntime, WorkflowRuntime
from aos.kernel.world.stepper import RECEIPT_SCHEMA, StepResult, World

__all__ = [
    # encoding
    "encode", "decode", "hash_value", "sha256_text",
    # manifests and loading
    "Manifest", "parse_manifest", "load_manifest_json", "load_bundle", "load_runtimes",
    # runtimes and the ABI
    "ABI_VERSION", "StepOutput", "Trap", "WorkflowRuntime", "WasmRuntime", "PythonRuntime", "PythonAllowList",
    "WasmLimits", "WasmModuleCache",
    # records
    "Record", "Stamp", "Origin", "EventRecord", "ReceiptRecord", "SnapshotRecord", "DomainEventRecord",
    "EffectIntentRecord", "EffectRejectedRecord", "TrapRecord", "StateRecord", "decode_record",
    # the stepper and replay
    "World", "StepResult", "RECEIPT_SCHEMA", "Replayer", "replay",
    # errors
    "WorldError", "CborError", "ManifestError", "SchemaViolation", "EffectDenied", "WorkflowTrap",
    "FuelExhausted", "ModuleLoadError", "RecordError", "NondeterminismError", "SnapshotError",
]

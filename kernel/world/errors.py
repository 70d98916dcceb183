"""World errors: the ``World`` family of ``AosError``.

The stepper itself never raises (a trap or a refusal is a ``StepResult``);
these are raised by the loaders (manifest, CBOR, records) and by replay
checks, and are also used as the typed ``code`` inside results.
"""

from __future__ import annotations

from aos.errors import AosError


class WorldError(AosError):
    code = "World"


class CborError(WorldError):
    """Bytes are not (canonical) CBOR, or a value cannot be encoded."""

    code = "Cbor"


class WorldQuarantined(WorldError):
    """The kernel stopped waking this world after it failed to wake (its
    modules, snapshot or journal no longer load or replay); its mail waits.
    An operator releases it (``aos world unquarantine``)."""

    code = "WorldQuarantined"


class ManifestError(WorldError):
    """The manifest is malformed; the message names the path of the bad field."""

    code = "Manifest"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class SchemaViolation(WorldError):
    """A value does not match its schema; ``path`` locates the bad part."""

    code = "SchemaViolation"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class EffectDenied(WorldError):
    """Effect admission refused an intent (not declared, no grant, bad params)."""

    code = "EffectDenied"


class WorkflowTrap(WorldError):
    """A workflow trapped, returned malformed output, or broke an ABI limit."""

    code = "WorkflowTrap"


class FuelExhausted(WorkflowTrap):
    """A WASM workflow ran out of fuel (a runaway loop was stopped)."""

    code = "FuelExhausted"


class ModuleLoadError(WorldError):
    """A workflow module could not be compiled, loaded or linked."""

    code = "ModuleLoad"


class RecordError(WorldError):
    """A journal record is malformed or of an unknown kind."""

    code = "Record"


class NondeterminismError(WorldError):
    """Replay produced a different outcome than the journal recorded."""

    code = "Nondeterminism"


class SnapshotError(WorldError):
    """A snapshot does not belong to this manifest or is malformed."""

    code = "Snapshot"

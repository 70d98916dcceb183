"""The public surface of aos.kernel.world."""

from __future__ import annotations

from aos.kernel import world

from aos.errors import AosError


def test_every_public_name_is_exported_once_and_exists() -> None:
    """__all__ has no duplicates and every name in it resolves."""
    assert len(world.__all__) == len(set(world.__all__))
    for name in world.__all__:
        assert hasattr(world, name), name


def test_world_errors_are_aos_errors_with_distinct_codes() -> None:
    """Every world error subclasses AosError and has its own wire code."""
    errors = [getattr(world, n) for n in world.__all__ if n.endswith("Error") or n in (
        "SchemaViolation", "EffectDenied", "WorkflowTrap", "FuelExhausted")]
    assert all(issubclass(e, AosError) for e in errors)
    codes = [e.code for e in errors]
    assert len(codes) == len(set(codes)) and "World" in codes

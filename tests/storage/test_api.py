"""The public surface of aos.kernel.storage and its errors on the wire."""

from __future__ import annotations

import pytest

from aos.errors import AosError, KernelError, StaleEpoch, error_from_remote
from aos.kernel import storage


def test_every_public_name_is_exported_once_and_exists() -> None:
    """__all__ has no duplicates and every name in it resolves."""
    assert len(storage.__all__) == len(set(storage.__all__))
    for name in storage.__all__:
        assert hasattr(storage, name), name


@pytest.mark.parametrize(
    ("error", "family"),
    [(storage.Fenced, StaleEpoch), (storage.OwnershipLost, StaleEpoch), (storage.StorageUnavailable, KernelError),
     (storage.StorageError, KernelError)],
)
def test_storage_errors_cross_the_wire_as_themselves(error: type[AosError], family: type[AosError]) -> None:
    """Each storage error has its own code, sits in its family, and comes back from its wire form as the same class."""
    assert issubclass(error, family)
    back = error_from_remote(error("log host-a: generation 3 is fenced").wire())
    assert type(back) is error and str(back) == "log host-a: generation 3 is fenced"


def test_internal_storage_errors_have_no_wire_code_of_their_own() -> None:
    """PreconditionFailed and CorruptObject stay inside the storage layer: on the wire they are plain aos.Storage."""
    assert storage.PreconditionFailed.code == storage.CorruptObject.code == storage.StorageError.code == "Storage"

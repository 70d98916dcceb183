"""The kernel's Cap'n Proto schemas, loaded once.

Every other module gets the wire types from here (``from aos.schemas import
journal_capnp``), so the schema files are parsed once per process and the
import path that pycapnp needs for ``/capnp/c++.capnp`` is set in one place.
"""

from __future__ import annotations

import os

import capnp

SCHEMA_DIR = os.path.dirname(os.path.abspath(__file__))
# pycapnp ships /capnp/*.capnp inside its package: its parent dir is the
# import root for "/capnp/c++.capnp" (and "/capnp/stream.capnp", whose
# absence aborts the process instead of raising).
_IMPORTS = [os.path.dirname(capnp.__path__[0])]


def _load(name: str):  # type: ignore[no-untyped-def]
    return capnp.load(os.path.join(SCHEMA_DIR, name), imports=_IMPORTS)


caps_capnp = _load("caps.capnp")
cas_capnp = _load("cas.capnp")
journal_capnp = _load("journal.capnp")
timers_capnp = _load("timers.capnp")
mailbox_capnp = _load("mailbox.capnp")
world_capnp = _load("world.capnp")
kernel_capnp = _load("kernel.capnp")
scheduler_capnp = _load("scheduler.capnp")

__all__ = [
    "SCHEMA_DIR",
    "caps_capnp",
    "cas_capnp",
    "journal_capnp",
    "timers_capnp",
    "mailbox_capnp",
    "world_capnp",
    "kernel_capnp",
    "scheduler_capnp",
]

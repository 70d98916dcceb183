"""The worlds of one universe through the scheduler, shaped like ``WorldsClient``.

A client that holds a scheduler (or universe) token, not a kernel's, still
wants ``create``, ``list`` and ``open`` as it has them on one kernel:
``aos-shell`` and ``aos world`` use this so their commands work the same on a
cluster. ``open`` hands out a ``FollowingWorld``, so a world that moves (by
command, a drain, a failover) is found again on its new host without the
caller noticing. Operations that only one kernel can do (``fork``,
``unquarantine``, hand-over) are refused with the reason.
"""

from __future__ import annotations

from typing import Any

from aos.errors import InvalidArgument
from aos.kernel.scheduler.client import FollowingWorld, SchedulerSession
from aos.kernel.scheduler.layout import split_world_key


class UniverseWorlds:
    """``create`` / ``list`` / ``open`` for one universe, each on the leading scheduler."""

    def __init__(self, session: SchedulerSession, universe: str) -> None:
        self.session = session
        self.universe = universe

    async def create(self, manifest: dict[str, Any] | str, modules: dict[str, bytes] | None = None,
                     world_id: str = "", name: str = "") -> tuple[FollowingWorld, dict[str, Any]]:
        async def create(s: SchedulerSession) -> tuple[dict[str, Any], dict[str, Any]]:
            return await (await s.universe(self.universe)).create_world(manifest, modules, world_id, name)

        placement, info = await self.session.on_leader(create)
        info = {**info, "hostId": placement["hostId"]}
        return self.session.follow(self.universe, placement["worldId"]), info

    async def list(self) -> list[dict[str, Any]]:
        """Every world of the universe with where it runs: ``worldId``, ``name``, ``hostId``, ``state``
        (running, moving, waiting) and ``reason`` (why it waits)."""
        placements = await (await self.session.universe(self.universe)).list_worlds()
        return [{"worldId": p["worldId"], "name": p["name"], "hostId": p["hostId"], "state": p["state"],
                 "reason": p["reason"]} for p in placements]

    async def open(self, world_id: str) -> FollowingWorld:
        """The world wherever it runs (``W``, or ``U/W`` for another universe's); ``UnknownWorld`` now,
        not at its first call, when there is none."""
        universe, world = split_world_key(world_id, self.universe)
        await (await self.session.universe(universe)).where(world)
        return self.session.follow(universe, world)

    async def fork(self, world_id: str, new_id: str = "", name: str = "") -> Any:
        raise _one_kernel("fork")

    async def unquarantine(self, world_id: str) -> Any:
        raise _one_kernel("unquarantine")


def _one_kernel(action: str) -> InvalidArgument:
    return InvalidArgument(f"{action} talks to one kernel: connect to the world's host "
                           "(`aos world where` names it)")

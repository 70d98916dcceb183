"""demo/counter@1 as a Python workflow: the same behaviour as examples/counter/counter.c.

state ``{count: int}`` or null (zero is no state, so a keyed cell is deleted
when its count returns to zero); event ``{by: int, id?: text}``.
"""

from __future__ import annotations

from typing import Any


def step(inp: dict[str, Any]) -> dict[str, Any]:
    state = inp["state"]
    count = (state["count"] if state else 0) + inp["event"]["value"]["by"]
    return {"state": {"count": count} if count else None}

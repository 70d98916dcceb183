"""factory governor: the job's budgets and policy; it stops work that runs past them.

Every LLM call of the job is reported here (``usage {model, input_tokens, output_tokens}``
from the planner, the judge and each worker's session); workers say when they ``start`` and
``finish`` a task. The governor keeps the totals and stops the job when:

- the tokens pass ``budget.tokens``;
- the cost passes ``budget.cost_microusd`` (prices per million tokens are in its
  configuration, fixed when the job starts, so replay computes the same cost);
- more workers run at once than ``budget.parallel_workers``;
- the wall time passes ``budget.wall_time_s`` (a kernel timer set at ``init``).

Policy: with ``policy.approve`` the planner asks here (``approval``) once the final check
passes, and a person's ``approve``/``reject`` (``aos factory approve JOB``, carrying the
approval code of this world's configuration, which no other world sees) is passed on as
``decision``.

Stopping is ``stop {reason}`` to the planner and ``abort`` to every worker (so a runaway
worker stops even if the planner were stuck), journaled as ``budget_exceeded``. The
planner's ``done`` ends the governor's watch.
"""

from __future__ import annotations

from typing import Any

from aos.agents.factory.protocol import MSG, RECEIPT, TIMER, Step


def step(inp: dict[str, Any]) -> dict[str, Any]:
    s = _Governor(inp, "governor")
    ev = inp["event"]
    if ev["schema"] == RECEIPT:
        got = s.receipt()
        if got is not None and got[0] == "wall":
            s.over(f"wall time: the job ran past its budget of {s.cfg['budget']['wall_time_s']} s")
    elif ev["schema"] == MSG:
        s.on_message(ev["value"])
    return s.output()


def cost_microusd(prices: dict[str, Any], model: str, input_tokens: int, output_tokens: int) -> int:
    """Millionths of a dollar; ``prices[model] = [input, output]`` in micro-USD per million tokens."""
    p = prices.get(model) or [0, 0]
    return (input_tokens * int(p[0]) + output_tokens * int(p[1])) // 1_000_000


class _Governor(Step):
    @property
    def cfg(self) -> dict[str, Any]:
        assert self.st is not None
        return self.st["config"]

    def on_message(self, m: dict[str, Any]) -> None:
        kind, body = m["kind"], m["body"] if isinstance(m["body"], dict) else {}
        if kind == "init":
            if self.st is None:
                self.st = {"config": body["config"], "tokens": 0, "cost_microusd": 0, "calls": 0, "running": {},
                           "peak": 0, "state": "watching", "reason": "", "pending": {}}
                b = self.cfg["budget"]
                self.audit("budget", **b)
                self.effect(TIMER, {"deliver_at_ns": self.now_ns + b["wall_time_s"] * 1_000_000_000}, "wall")
            return
        if self.st is None:
            return
        st = self.st
        if kind == "usage":
            i, o = int(body.get("input_tokens") or 0), int(body.get("output_tokens") or 0)
            st["tokens"] += i + o
            st["calls"] += 1
            st["cost_microusd"] += cost_microusd(self.cfg["prices"], str(body.get("model") or ""), i, o)
            b = self.cfg["budget"]
            if st["tokens"] > b["tokens"]:
                self.over(f"tokens: {st['tokens']} used, the budget is {b['tokens']}")
            elif st["cost_microusd"] > b["cost_microusd"]:
                self.over(f"cost: ${st['cost_microusd'] / 1e6:.4f} spent, the budget is "
                          f"${b['cost_microusd'] / 1e6:.4f}")
        elif kind == "started":
            st["running"][m["from"]] = str(body.get("task", ""))
            st["peak"] = max(st["peak"], len(st["running"]))
            limit = self.cfg["budget"]["parallel_workers"]
            if len(st["running"]) > limit:
                self.over(f"parallel workers: {len(st['running'])} running, the limit is {limit}")
        elif kind == "finished":
            st["running"].pop(m["from"], None)
        elif kind == "approval" and m["from"] == self.cfg["planner"]:
            st["approval"] = {"accepted": body.get("accepted", []), "refs": body.get("refs", [])}
            self.audit("approval_requested", accepted=st["approval"]["accepted"])
        elif kind in ("approve", "reject") and st.get("approval"):
            # the code is in this world's configuration only: a worker's portal mail cannot forge a decision
            if body.get("code") != self.cfg.get("approval_code"):
                self.audit("approval_refused", by=str(body.get("by", "")), reason="wrong approval code")
                return
            st["approval"] = None
            by, note = str(body.get("by") or "a person")[:100], str(body.get("note") or "")[:1000]
            self.audit("decision", approved=kind == "approve", by=by, note=note)
            self.send(self.cfg["planner"], "decision", approved=kind == "approve", by=by, note=note)
        elif kind == "done" and st["state"] == "watching":
            st["state"] = "done"
            self.audit("totals", tokens=st["tokens"], cost_microusd=st["cost_microusd"], calls=st["calls"],
                       peak_workers=st["peak"], status=str(body.get("status", "")))

    def over(self, reason: str) -> None:
        st = self.st
        assert st is not None
        if st["state"] != "watching":
            return
        st["state"], st["reason"] = "stopped", reason
        self.audit("budget_exceeded", reason=reason, tokens=st["tokens"], cost_microusd=st["cost_microusd"])
        self.send(self.cfg["planner"], "stop", reason=f"budget exceeded: {reason}")
        for w in self.cfg["workers"]:
            self.send(w, "abort", reason=f"budget exceeded: {reason}")

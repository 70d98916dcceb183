"""What happened in a job, rebuilt from its worlds' journals alone.

``collect(journals)`` takes each world's decoded journal records and returns the
job's audit events (``factory/Audit@1``) in the order they happened (logical time,
then journal order); ``explain_lines(events)`` turns them into the account ``aos
factory explain`` prints: the plan, each attempt (who did it, its change in CAS, its
transcript), each judgement with its evidence, re-plans, budget stops, and the end.
Nothing here talks to a kernel: journals from a data directory (``aos.kernel.host.offline``)
or from a connection are the same records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aos.agents.factory.protocol import AUDIT
from aos.kernel.world.records import DomainEventRecord, EventRecord, ReceiptRecord, Record, TrapRecord


def collect(journals: Mapping[str, Iterable[Record]]) -> list[dict[str, Any]]:
    """The audit events of every world, and their traps (at the time of the input that trapped)."""
    found: list[tuple[int, int, int, dict[str, Any]]] = []
    for w, (world, records) in enumerate(sorted(journals.items())):
        now = 0
        for i, r in enumerate(records):
            if isinstance(r, (EventRecord, ReceiptRecord)):
                now = r.stamp.logical_now_ns
            if isinstance(r, DomainEventRecord) and r.schema == AUDIT:
                v = dict(r.value)
                found.append((int(v["at_ns"]), w, i, v))
            elif isinstance(r, TrapRecord):
                found.append((now, w, i, {"job": "", "role": "", "world": world, "kind": "trap", "at_ns": now,
                                          "data": {"workflow": r.origin.workflow, "code": r.code,
                                                   "message": r.message[:500]}}))
    return [v for *_, v in sorted(found, key=lambda x: x[:3])]


def summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The job's end as its planner journaled it (``status`` ``running`` while it has none)."""
    end = next((e for e in reversed(events) if e["role"] == "planner" and e["kind"] == "job_end"), None)
    totals = next((e["data"] for e in reversed(events) if e["kind"] in ("totals", "budget_exceeded")), {})
    plan = [t for e in events if e["kind"] == "plan" for t in e["data"]["tasks"]]
    return {"status": end["data"]["status"] if end else "running", "reason": end["data"]["reason"] if end else "",
            "tasks": [t["id"] for t in plan], "accepted": end["data"]["accepted"] if end else [],
            "tokens": totals.get("tokens", 0), "cost_microusd": totals.get("cost_microusd", 0)}


def explain_lines(job: str, events: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    s = summary(events)
    out.append(f"job {job}: {s['status']}" + (f" ({s['reason']})" if s["reason"] else ""))
    for e in events:
        d, k = e["data"], e["kind"]
        if k == "job_start":
            out.append(f"  started: {d['intent']!r} with {len(d['workers'])} worker(s)")
        elif k == "budget":
            out.append(f"  budget: {d['tokens']} tokens, ${d['cost_microusd'] / 1e6:.2f}, {d['wall_time_s']} s, "
                       f"{d['parallel_workers']} parallel worker(s), {d['max_attempts']} attempt(s) per task")
        elif k == "plan":
            for t in d["tasks"]:
                after = f" (after {', '.join(t['after'])})" if t.get("after") else ""
                out.append(f"  plan: {t['id']} {t['title']!r}{after}")
        elif k == "task_dispatched":
            out.append(f"  {d['task']} attempt {d['attempt']}: to {d['worker']}")
        elif k == "change":
            out.append(f"  {d['task']} attempt {d['attempt']}: change {d['ref']} ({d['bytes']} bytes) by {e['world']}, "
                       f"transcript: session {d['transcript']['session']} in {d['transcript']['world']}, "
                       f"{d['usage']['input_tokens'] + d['usage']['output_tokens']} tokens")
        elif k == "task_failed":
            out.append(f"  {d['task']} attempt {d['attempt']}: failed in {e['world']}: {d['error']}")
        elif k == "baseline":
            passing = ", ".join(d["passing"]) or "nothing"
            out.append(f"  judge: integration {d['integration']} baseline passes {passing}")
        elif k == "judgment":
            what = "final check" if d["final"] else f"{d['task']} attempt {d['attempt']}"
            passed = sum(1 for x in d["evidence"] if x["passed"])
            sat = "" if d["satisfaction"] is None else f", satisfaction {d['satisfaction']}%"
            out.append(f"  judge: {what} {'ACCEPTED' if d['accepted'] else 'REJECTED'} "
                       f"({passed}/{len(d['evidence'])} scenarios pass{sat})")
            for x in d["evidence"]:
                mark = "pass" if x["passed"] else "FAIL"
                b = x.get("browser")
                if not b:
                    out.append(f"    {mark} {x['name']}{' (hold-out)' if x['holdout'] else ''}: exit {x['exit_code']}")
                    continue
                out.append(f"    {mark} {x['name']}{' (hold-out)' if x['holdout'] else ''}: browser at {b['url']} "
                           f"({sum(1 for st in b['steps'] if st['ok'])}/{len(b['steps'])} steps), "
                           f"screenshot {b['screenshot']}")
                out.extend(f"      step {st['index']} {st['kind']}: {st['detail']}" for st in b["steps"] if not st["ok"])
                page = " | ".join(line.strip() for line in b["snapshot"].splitlines()[:8])
                out.append(f"      page: {page[:300]}")
            if not d["accepted"] and d["feedback"]:
                out.extend("    feedback: " + line for line in d["feedback"].splitlines()[:6])
        elif k == "replan":
            out.append(f"  re-plan {d['task']}: {d['title']!r}" + ("" if d["revised"] else " (kept, with feedback)"))
        elif k == "accepted":
            out.append(f"  {d['task']} attempt {d['attempt']}: accepted into the integration ({d['ref']})")
        elif k == "budget_exceeded":
            out.append(f"  governor: STOP, budget exceeded: {d['reason']}")
        elif k == "aborted":
            out.append(f"  {d['task']} attempt {d['attempt']}: aborted in {e['world']}")
        elif k == "totals":
            out.append(f"  spent: {d['tokens']} tokens in {d['calls']} LLM call(s), ${d['cost_microusd'] / 1e6:.4f}, "
                       f"at most {d['peak_workers']} worker(s) at once")
        elif k == "approval_requested" and e["role"] == "governor":
            out.append(f"  waiting for a person to approve the change (aos factory approve {e['job']})")
        elif k == "approval_refused":
            out.append(f"  governor: refused a decision from {d['by'] or 'someone'}: {d['reason']}")
        elif k == "decision":
            out.append(f"  {'APPROVED' if d['approved'] else 'REJECTED'} by {d['by']}"
                       + (f": {d['note']}" if d["note"] else ""))
        elif k == "trap":
            out.append(f"  TRAP in {e['world']} ({d['workflow']}): {d['code']}: {d['message']}")
        elif k == "job_end":
            out.append(f"  end: {d['status']}: {d['reason']}")
    return out

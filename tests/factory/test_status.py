"""A job's state and report from its audit events (sans-IO: the events are what ``explain.collect`` returns)."""

from aos.agents.factory.status import job_ids, job_report, job_state, job_world_ids


def ev(role: str, kind: str, at: int, **data):
    world = {"worker": "j.worker-1"}.get(role, f"j.{role}")
    return {"job": "j", "role": role, "world": world, "kind": kind, "at_ns": at * 10**9, "data": data}


START = [ev("planner", "job_start", 1, intent="do it", workers=["j.worker-1"]),
         ev("governor", "budget", 1, tokens=1000, cost_microusd=5_000_000, wall_time_s=60, parallel_workers=1,
            max_attempts=2),
         ev("planner", "plan", 2, tasks=[{"id": "t1", "title": "one", "description": "d", "after": []}]),
         ev("planner", "task_dispatched", 3, task="t1", attempt=1, worker="j.worker-1", title="one"),
         ev("worker", "task_started", 3, task="t1", attempt=1, session="t1-a1")]
EVIDENCE = [{"name": "s", "passed": False, "exit_code": 1, "holdout": True, "output": "boom"}]


def test_a_job_is_found_by_its_planner_and_owns_its_worlds_only():
    ids = ["j.planner", "j.judge", "j.worker-1", "factory-memory", "jj.planner", "other"]
    assert job_ids(ids) == ["j", "jj"]
    assert job_world_ids("j", ids) == ["j.judge", "j.planner", "j.worker-1"]


def test_states_from_running_through_a_rejection_to_approval_and_a_budget_stop():
    events = list(START)
    r = job_report("j", events, now_ns=13 * 10**9)
    assert r["state"] == "running" and r["wall_s"] == 12.0 and r["tasks"][0]["state"] == "running"
    assert r["workers"] == [{"world": "j.worker-1", "tasks": [{"task": "t1", "attempt": 1}], "sessions": ["t1-a1"]}]
    events += [ev("judge", "judgment", 4, task="t1", attempt=1, final=False, ref="r", accepted=False,
                  satisfaction=None, reason="", feedback="the hold-out fails", evidence=EVIDENCE),
               ev("planner", "rejected", 4, task="t1", attempt=1, feedback="the hold-out fails")]
    r = job_report("j", events)
    assert r["tasks"][0]["state"] == "rejected" and r["tasks"][0]["verdicts"][0]["passed"] == 0
    assert r["verdicts"][0]["evidence"][0] == EVIDENCE[0]
    waiting = events + [ev("governor", "approval_requested", 5, accepted=["t1"])]
    assert job_state(waiting) == "waiting for approval"
    assert job_state(waiting + [ev("governor", "decision", 6, approved=True, by="a", note="")]) == "running"
    stopped = events + [ev("governor", "budget_exceeded", 7, reason="tokens: 2000 used", tokens=2000,
                           cost_microusd=10),
                        ev("planner", "job_end", 8, status="stopped", reason="budget exceeded", accepted=[],
                           tasks={"t1": {"status": "replanning", "attempts": 1}})]
    r = job_report("j", stopped)
    assert r["state"] == "stopped by budget" and r["wall_s"] == 7.0
    assert r["stops"][0]["kind"] == "budget_exceeded" and r["spent"] == {"tokens": 2000, "cost_microusd": 10,
                                                                        "final": False}
    assert r["tasks"][0]["state"] == "replanning"
    assert r["explain"][-1] == "  end: stopped: budget exceeded"
    assert job_state(events + [ev("planner", "job_end", 8, status="stopped", reason="interrupted", accepted=[],
                                  tasks={})]) == "stopped"

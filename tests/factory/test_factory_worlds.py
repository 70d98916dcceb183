"""The governor, memory and planner workflows in the sans-IO harness: budgets, parallelism, wall time, recall,
re-planning; and their journals replay byte for byte. (The whole factory runs through a kernel in
test_factory_run.py.)"""

import pytest

from aos.agents.factory import worlds as W
from aos.agents.factory.protocol import MSG, PORTAL, TIMER
from aos.kernel.world import World, load_runtimes, parse_manifest, replay
from aos.kernel.world.records import EffectIntentRecord
from aos.kernel.world.testing import Harness

PEERS = ["j.planner", "j.worker-1", "j.worker-2", "j.judge", "j.governor", "factory-memory"]
BUDGET = {"tokens": 100, "cost_microusd": 1000, "wall_time_s": 60, "parallel_workers": 1, "max_attempts": 2}


def harness(doc, wid):
    m = parse_manifest(doc)
    return Harness(World(m, load_runtimes(m, {}), wid)), m


def msg(kind, frm="x", /, **body):
    return {"kind": kind, "from": frm, "body": body}


def sent(h, since=0):
    """(destination, kind, body) of every portal message journaled after index ``since``."""
    return [(r.params["dest_world"], r.params["value"]["kind"], r.params["value"]["body"]) for r in h.journal[since:]
            if isinstance(r, EffectIntentRecord) and r.effect == PORTAL]


def audits(h):
    return [r.value["kind"] for r in h.journal if getattr(r, "schema", "") == "factory/Audit@1"]


def check_replays(h, m, wid):
    fresh = World(m, load_runtimes(m, {}), wid)
    assert replay(fresh, h.journal) == ()
    assert fresh.snapshot() == h.world.snapshot()


def governor(budget=None, prices=None):
    h, m = harness(W.governor_manifest("j", PEERS), "j.governor")
    h.send(MSG, msg("init", config={"world": "j.governor", "job": "j", "planner": "j.planner",
                                    "workers": ["j.worker-1", "j.worker-2"], "budget": {**BUDGET, **(budget or {})},
                                    "prices": prices or {"m": [1_000_000, 2_000_000]}}))
    return h, m


@pytest.mark.parametrize("reports, reason", [
    ([(60, 30), (10, 5)], "tokens: 105 used, the budget is 100"),
    ([(200, 400)], None),  # 600 tokens: the token budget goes first
])
def test_the_governor_stops_past_the_token_budget(reports, reason):
    h, m = governor()
    for i, o in reports:
        h.send(MSG, msg("usage", "j.worker-1", model="m", input_tokens=i, output_tokens=o))
    stop = [s for s in sent(h) if s[1] == "stop"]
    assert len(stop) == 1 and stop[0][0] == "j.planner"
    assert "tokens" in stop[0][2]["reason"] and (reason is None or reason in stop[0][2]["reason"])
    assert sorted(d for d, k, _ in sent(h) if k == "abort") == ["j.worker-1", "j.worker-2"]
    h.send(MSG, msg("usage", "j.worker-1", model="m", input_tokens=500, output_tokens=0))
    assert len([s for s in sent(h) if s[1] == "stop"]) == 1  # stopped once
    check_replays(h, m, "j.governor")


def test_the_governor_prices_tokens_and_stops_past_the_cost_budget():
    h, m = governor({"tokens": 10_000})
    h.send(MSG, msg("usage", "j.planner", model="m", input_tokens=500, output_tokens=200))  # 500 + 400 micro-USD
    assert not [s for s in sent(h) if s[1] == "stop"]
    h.send(MSG, msg("usage", "j.judge", model="m", input_tokens=100, output_tokens=1))  # +102: 1002 > 1000
    (stop,) = [s for s in sent(h) if s[1] == "stop"]
    assert "cost: $0.0010 spent, the budget is $0.0010" in stop[2]["reason"]


def test_the_governor_stops_more_workers_than_allowed_and_at_the_wall_time():
    h, m = governor()
    h.send(MSG, msg("started", "j.worker-1", task="t1"))
    h.send(MSG, msg("finished", "j.worker-1", task="t1"))
    h.send(MSG, msg("started", "j.worker-2", task="t2"))
    assert not [s for s in sent(h) if s[1] == "stop"]
    h.send(MSG, msg("started", "j.worker-1", task="t3"))
    (stop,) = [s for s in sent(h) if s[1] == "stop"]
    assert "parallel workers: 2 running, the limit is 1" in stop[2]["reason"]

    h2, m2 = governor()
    (timer,) = [r for r in h2.journal if isinstance(r, EffectIntentRecord) and r.effect == TIMER]
    h2.receipt(timer, "ok", {"delivered_at_ns": timer.params["deliver_at_ns"], "key": None})
    (stop,) = [s for s in sent(h2) if s[1] == "stop"]
    assert "wall time: the job ran past its budget of 60 s" in stop[2]["reason"]
    check_replays(h2, m2, "j.governor")


def test_memory_keeps_records_in_cas_and_recalls_them_by_task_and_across_jobs():
    h, m = harness(W.memory_manifest(), "factory-memory")
    h.send(MSG, msg("init", config={"world": "factory-memory", "job": ""}))
    for job, task, title, kind, summary in [("j1", "t1", "add mul", "failure", "t1: tests fail"),
                                            ("j1", "t2", "add sub", "result", "t2 done"),
                                            ("j2", "t1", "other", "judgment", "t1 attempt 1 rejected: x")]:
        h.send(MSG, msg("record", "w", kind=kind, job=job, task=task, attempt=1, title=title, summary=summary, data={}))
        put = [r for r in h.world.open_intents() if r.effect == "sys/blob.put@1"][-1]
        h.receipt(put, "ok", {"hash": "sha256:" + "ab" * 32, "size": 1})
    h.send(MSG, msg("recall", "j3.worker-1", reply_to="j3.worker-1", tag="s1", job="j3", task="t9", title="add mul"))
    ((dest, kind, body),) = [s for s in sent(h) if s[1] == "recalled"]
    assert dest == "j3.worker-1" and [i["summary"] for i in body["items"]] == ["t1: tests fail"]
    h.send(MSG, msg("recall", "j3.planner", reply_to="j3.planner", tag="plan", job="j3"))
    planner = [s for s in sent(h) if s[1] == "recalled"][-1][2]["items"]
    assert [i["summary"] for i in planner] == ["t1: tests fail", "t1 attempt 1 rejected: x"]
    assert audits(h).count("remembered") == 3
    check_replays(h, m, "factory-memory")


def test_the_planner_replans_a_rejected_task_and_fails_it_after_max_attempts():
    h, m = harness(W.planner_manifest("j", "anthropic", PEERS), "j.planner")
    cfg = {"world": "j.planner", "job": "j", "provider": "anthropic", "model": "m", "planner": "j.planner",
           "judge": "j.judge", "governor": "j.governor", "memory": "factory-memory", "workers": ["j.worker-1"],
           "intent": "do it", "constraints": [], "scenarios": [], "budget": BUDGET}
    h.send(MSG, msg("init", config=cfg))
    h.send(MSG, msg("recalled", "factory-memory", tag="plan", items=[]))

    def answer(text):
        (llm,) = [r for r in h.world.open_intents() if r.effect == "sys/llm.generate@1"]
        h.receipt(llm, "ok", {"response": {"text": text, "usage": {"input_tokens": 1, "output_tokens": 1}}})

    answer('Here: {"tasks": [{"id": "t1", "title": "one", "description": "do one"}]}')
    assert [(d, k) for d, k, _ in sent(h) if k == "task"] == [("j.worker-1", "task")]
    h.send(MSG, msg("result", "j.worker-1", task="t1", attempt=1, ok=True, diff="d1", ref="r1"))
    h.send(MSG, msg("verdict", "j.judge", task="t1", attempt=1, accepted=False, feedback="scenario x fails"))
    answer('{"tasks": [{"id": "t1", "title": "one again", "description": "do one, mind x"}]}')
    task2 = [b for _, k, b in sent(h) if k == "task"][-1]
    assert task2["attempt"] == 2 and task2["description"] == "do one, mind x"
    assert task2["feedback"] == ["scenario x fails"]
    h.send(MSG, msg("result", "j.worker-1", task="t1", attempt=2, ok=False, error="session ended"))
    end = [r.value["data"] for r in h.journal if getattr(r, "schema", "") == "factory/Audit@1"
           and r.value["kind"] == "job_end"]
    assert end and end[0]["status"] == "failed" and "t1 failed 2 time(s)" in end[0]["reason"]
    assert ("j.governor", "done") in [(d, k) for d, k, _ in sent(h)]
    check_replays(h, m, "j.planner")


def test_a_trap_is_part_of_the_story():
    """A step that raises is discarded and journaled as a trap; explain shows it where it happened."""
    from aos.agents.factory.explain import collect, explain_lines
    from aos.agents.factory.runner import trap_of

    h, m = harness(W.planner_manifest("j", "anthropic", PEERS), "j.planner")
    res = h.send(MSG, msg("init", config={"world": "j.planner"}))  # no workers, no intent: a KeyError
    assert res.traps and h.world.state("factory/planner@1") is None
    lines = explain_lines("j", collect({"j.planner": h.journal}))
    assert any(line.startswith("  TRAP in j.planner (factory/planner@1): WorkflowTrap: KeyError") for line in lines)
    (trap,) = [r for r in h.journal if r.kind == "trap"]
    ev = trap_of("j", "j.planner", trap.to_value())
    assert ev["role"] == "planner" and ev["kind"] == "trap" and "KeyError" in ev["data"]["message"]
    assert trap_of("j", "j.worker-2", trap.to_value())["role"] == "worker"



def test_the_governor_passes_on_a_persons_decision_only_with_the_approval_code():
    h, m = harness(W.governor_manifest("j", PEERS), "j.governor")
    h.send(MSG, msg("init", config={"world": "j.governor", "job": "j", "planner": "j.planner", "workers": [],
                                    "budget": BUDGET, "prices": {}, "approval_code": "c0de"}))
    h.send(MSG, msg("approve", "j.worker-1", code="c0de", by="early"))  # nothing is waiting yet
    h.send(MSG, msg("approval", "j.planner", accepted=["t1"], refs=["r1"]))
    h.send(MSG, msg("approve", "j.worker-1", code="guess", by="a worker"))  # forged portal mail
    assert not [s for s in sent(h) if s[1] == "decision"] and "approval_refused" in audits(h)
    h.send(MSG, msg("reject", "person", code="c0de", by="alice", note="not like this"))
    ((dest, _, body),) = [s for s in sent(h) if s[1] == "decision"]
    assert dest == "j.planner" and body == {"approved": False, "by": "alice", "note": "not like this"}
    h.send(MSG, msg("approve", "person", code="c0de", by="bob"))  # decided already
    assert len([s for s in sent(h) if s[1] == "decision"]) == 1
    check_replays(h, m, "j.governor")


def test_the_judge_rejects_a_regression_and_says_which_check_broke():
    h, m = harness(W.judge_manifest("j", "anthropic", "/clones/judge", PEERS), "j.judge")
    scenarios = [{"name": "vis", "run": "check-vis", "expect_exit": 0, "expect_stdout": "ok", "holdout": False,
                  "description": "", "timeout_s": 5},
                 {"name": "hid", "run": "check-hid", "expect_exit": 0, "expect_stdout": "", "holdout": True,
                  "description": "hidden must hold", "timeout_s": 5}]
    h.send(MSG, msg("init", config={"world": "j.judge", "job": "j", "provider": "anthropic", "model": "m",
                                    "planner": "j.planner", "governor": "j.governor", "memory": "factory-memory",
                                    "root": "/clones/judge", "base_commit": "abc", "intent": "x",
                                    "scenarios": scenarios}))
    h.send(MSG, msg("judge", "j.planner", task="t1", attempt=1, title="t", description="d", diff="D", ref="r",
                    base=[], final=False))

    def settle(argv0, code, stdout=""):
        (i,) = [r for r in h.world.open_intents() if r.effect == "sys/host.exec@1" and r.params["argv"][0] == argv0
                or (argv0 == "prepare" and r.params["argv"][0].startswith("git reset"))
                or (argv0 == "apply" and r.params["argv"][0].startswith("python3 -c"))]
        payload = {"exit_code": code, "stdout": stdout, "stderr": ""}
        h.receipt(i, "ok" if code == 0 else "error", payload if code == 0 else {"error": "exit_status", **payload})

    settle("prepare", 0)
    settle("check-vis", 0, "ok\n")  # the baseline, made at init: both pass
    settle("check-hid", 0)
    settle("prepare", 0)  # the change: on the same integration, so the baseline stands
    settle("apply", 0)
    settle("check-hid", 1)  # the change breaks both
    settle("check-vis", 1, "boom")
    (llm,) = [r for r in h.world.open_intents() if r.effect == "sys/llm.generate@1"]
    h.receipt(llm, "ok", {"response": {"text": '{"satisfaction": 90}', "usage": {}}})
    ((_, _, verdict),) = [s for s in sent(h) if s[1] == "verdict"]
    assert verdict["accepted"] is False and verdict["satisfaction"] == 90
    fb = verdict["feedback"]
    assert "2 scenario(s) that passed before now fail" in fb
    assert "- 'vis': `check-vis` exited 1 (expected 0, stdout with 'ok'):\nboom" in fb
    assert "hold-out scenario 'hid' fails: hidden must hold" in fb and "check-hid" not in fb
    check_replays(h, m, "j.judge")

"""factory planner: breaks a job into tasks with an LLM, hands them to workers, re-plans on failure.

A keyless workflow, one per job. Messages (``factory/Msg@1``):

- ``init {config}``: asks memory what earlier jobs learned, then the LLM for a plan;
- ``recalled {tag, items}`` (memory): the notes go into the planning prompt;
- ``result {task, attempt, ok, diff, ref, ...}`` (a worker): a change goes to the judge,
  a failed attempt is re-planned;
- ``verdict {task, attempt, accepted, feedback, final}`` (judge): an accepted change joins the
  integration (the ordered list of accepted diffs every later task starts from); a rejected one
  is re-planned with the judge's feedback; once every task is accepted the judge checks the
  whole integration (``final``) and the job is done or gets a fix-up task;
- ``stop {reason}`` (governor): the job is stopped; its running workers are aborted;
- ``decision {approved, by, note}`` (governor): with ``policy.approve`` the job waits after its
  final check until a person approves or rejects the change (``aos factory approve``).

Re-planning asks the LLM to revise the failed task given the feedback; an answer it cannot read
keeps the task as it was, with the feedback attached. A task gets ``budget.max_attempts``
attempts; past them the job fails.
"""

from __future__ import annotations

import json
from typing import Any

from aos.agents.factory.protocol import MSG, RECEIPT, Step, extract_json, text_of, usage_of

PLAN_SYSTEM = ("You are the planner of a software factory. Break the job into a few small, independent coding "
               "tasks a coding agent can do one at a time in the repository. Answer with JSON only: "
               '{"tasks": [{"id": "t1", "title": "...", "description": "...", "after": []}]} '
               "(after: ids of tasks that must be done first).")
REPLAN_SYSTEM = ("You are the planner of a software factory. A task failed or was rejected. Revise it so the "
                 'next attempt succeeds. Answer with JSON only: {"tasks": [{"id": "<same id>", "title": "...", '
                 '"description": "..."}]}')
MAX_TASKS = 12
OPEN = ("pending", "running", "judging")


def step(inp: dict[str, Any]) -> dict[str, Any]:
    s = _Planner(inp, "planner")
    ev = inp["event"]
    if ev["schema"] == RECEIPT:
        got = s.receipt()
        if got is not None:
            s.on_receipt(*got)
    elif ev["schema"] == MSG:
        s.on_message(ev["value"])
    return s.output()


class _Planner(Step):
    def on_message(self, m: dict[str, Any]) -> None:
        kind, body = m["kind"], m["body"] if isinstance(m["body"], dict) else {}
        if kind == "init":
            if self.st is not None:
                return
            self.st = {"config": body["config"], "phase": "recall", "tasks": [], "accepted": [], "idle":
                       list(body["config"]["workers"]), "final_rounds": 0, "reason": "", "pending": {}}
            self.audit("job_start", intent=self.cfg["intent"], workers=self.cfg["workers"])
            self.send(self.cfg["memory"], "recall", reply_to=self.me, tag="plan", job=self.cfg["job"],
                      intent=self.cfg["intent"])
            return
        if self.st is None or self.st["phase"] in ("done", "failed", "stopped"):
            return  # late mail after the end: journaled, nothing more happens
        if kind == "recalled" and body.get("tag") == "plan" and self.st["phase"] == "recall":
            self.st["phase"] = "planning"
            self.llm(PLAN_SYSTEM, self.plan_prompt(body.get("items") or []), "plan")
        elif kind == "result":
            self.on_result(m["from"], body)
        elif kind == "verdict":
            self.on_verdict(body)
        elif kind == "stop":
            self.stop(str(body.get("reason") or "stopped by the governor"))
        elif kind == "decision" and self.st["phase"] == "approval" and m["from"] == self.cfg["governor"]:
            who = f"{body.get('by') or 'a person'}" + (f": {body['note']}" if body.get("note") else "")
            if body.get("approved"):
                self.end("done", f"every scenario passes on the integrated change; approved by {who}")
            else:
                self.end("failed", f"the integrated change was rejected by {who}")

    @property
    def cfg(self) -> dict[str, Any]:
        assert self.st is not None
        return self.st["config"]

    # --- planning ---------------------------------------------------------------------------------

    def plan_prompt(self, notes: list[Any]) -> str:
        c = self.cfg
        lines = [f"Job: {c['intent']}"]
        if c["constraints"]:
            lines.append("Constraints:\n" + "\n".join(f"- {x}" for x in c["constraints"]))
        lines.append("Scenarios that must pass:\n" + "\n".join(
            f"- {s['name']}: `{s['run']}`" for s in c["scenarios"]))
        if notes:
            lines.append("Lessons from earlier work:\n" + "\n".join(f"- {n.get('summary', '')}" for n in notes))
        return "\n\n".join(lines)

    def on_receipt(self, purpose: Any, r: dict[str, Any]) -> None:
        assert self.st is not None
        if self.st["phase"] in ("done", "failed", "stopped"):
            return
        self.report_usage(r)
        kind = purpose if isinstance(purpose, str) else purpose[0]
        if r["status"] != "ok":
            return self.end("failed", f"the planner's LLM call failed: {_error(r)}")
        answer = extract_json(text_of(r["payload"]))
        if kind == "plan":
            tasks = _tasks(answer)
            if not tasks:
                return self.end("failed", "the plan had no tasks the planner could read")
            for t in tasks:
                t.update(status="pending", attempts=0, feedback=[], worker="")
            self.st["tasks"] = tasks
            self.st["phase"] = "running"
            self.audit("plan", tasks=[{k: t[k] for k in ("id", "title", "description", "after")} for t in tasks])
            self.dispatch()
        elif kind == "replan":
            task = self.task(purpose[1])
            revised = next((t for t in _tasks(answer) if t["id"] == task["id"]), None) if answer else None
            if revised is not None:
                task.update(title=revised["title"], description=revised["description"])
            self.audit("replan", task=task["id"], title=task["title"], description=task["description"],
                       revised=revised is not None)
            task["status"] = "pending"
            self.dispatch()

    def report_usage(self, r: dict[str, Any]) -> None:
        u = usage_of(r.get("payload"))
        if u["input_tokens"] or u["output_tokens"]:
            self.send(self.cfg["governor"], "usage", model=self.cfg["model"], **u)

    def task(self, task_id: str) -> dict[str, Any]:
        assert self.st is not None
        return next(t for t in self.st["tasks"] if t["id"] == task_id)

    # --- handing out work -------------------------------------------------------------------------

    def dispatch(self) -> None:
        st = self.st
        assert st is not None
        done = {t["id"] for t in st["tasks"] if t["status"] == "accepted"}
        for t in st["tasks"]:
            if not st["idle"]:
                break
            if t["status"] != "pending" or not all(a in done for a in t["after"]):
                continue
            if t["attempts"] >= self.cfg["budget"]["max_attempts"]:
                return self.end("failed", f"task {t['id']} failed {t['attempts']} time(s): "
                                          f"{(t['feedback'] or ['no feedback'])[-1][:300]}")
            worker = st["idle"].pop(0)
            t.update(status="running", worker=worker, attempts=t["attempts"] + 1)
            self.audit("task_dispatched", task=t["id"], attempt=t["attempts"], worker=worker, title=t["title"])
            self.send(worker, "task", task=t["id"], attempt=t["attempts"], title=t["title"],
                      description=t["description"], intent=self.cfg["intent"],
                      constraints=self.cfg["constraints"], scenarios=self.cfg["scenarios"],
                      feedback=t["feedback"], base=[a["diff"] for a in st["accepted"]])
        busy = [t for t in st["tasks"] if t["status"] in ("running", "judging", "replanning")]
        waiting = [t for t in st["tasks"] if t["status"] == "pending"]
        if st["phase"] == "running" and waiting and not busy:
            return self.end("failed", "the remaining tasks wait on each other: "
                                      + ", ".join(f"{t['id']} after {t['after']}" for t in waiting))
        if all(t["status"] == "accepted" for t in st["tasks"]) and st["phase"] == "running":
            st["phase"] = "final"
            self.audit("final_check", accepted=[a["task"] for a in st["accepted"]])
            self.send(self.cfg["judge"], "judge", task="", attempt=0, title="the whole job", description="",
                      diff="", ref="", base=[a["diff"] for a in st["accepted"]], final=True)

    def on_result(self, worker: str, b: dict[str, Any]) -> None:
        st = self.st
        assert st is not None
        t = next((x for x in st["tasks"] if x["id"] == b.get("task")), None)
        if worker not in st["idle"] and worker in self.cfg["workers"]:
            st["idle"].append(worker)
        if t is None or t["status"] != "running" or t["attempts"] != b.get("attempt"):
            return self.dispatch()  # an answer to an attempt this planner no longer waits for
        self.audit("result", task=t["id"], attempt=t["attempts"], worker=worker, ok=bool(b.get("ok")),
                   ref=b.get("ref", ""), transcript=b.get("transcript"), summary=str(b.get("summary", ""))[:500])
        if not b.get("ok"):
            return self.reject(t, f"the worker did not finish: {b.get('error') or 'no reason given'}")
        if not b.get("diff"):
            return self.reject(t, "the worker changed nothing")
        t["status"] = "judging"
        t["candidate"] = {"diff": b["diff"], "ref": b.get("ref", "")}
        st.setdefault("to_judge", []).append(t["id"])
        self.judge_next()
        self.dispatch()

    def judge_next(self) -> None:
        """One change at the judge at a time, on the integration as it is when it is judged (so a change
        is checked against every change accepted before it, not against the base it was made on)."""
        st = self.st
        assert st is not None
        if st.get("at_judge") or not st.get("to_judge") or st["phase"] != "running":
            return
        t = self.task(st["to_judge"].pop(0))
        st["at_judge"] = t["id"]
        self.audit("judging", task=t["id"], attempt=t["attempts"], integration=len(st["accepted"]))
        self.send(self.cfg["judge"], "judge", task=t["id"], attempt=t["attempts"], title=t["title"],
                  description=t["description"], diff=t["candidate"]["diff"], ref=t["candidate"]["ref"],
                  base=[a["diff"] for a in st["accepted"]], final=False)

    def on_verdict(self, b: dict[str, Any]) -> None:
        st = self.st
        assert st is not None
        feedback = str(b.get("feedback") or "")
        if b.get("final"):
            if st["phase"] != "final":
                return
            if b.get("accepted"):
                if (self.cfg.get("policy") or {}).get("approve"):
                    st["phase"] = "approval"
                    self.audit("approval_requested", accepted=[a["task"] for a in st["accepted"]])
                    self.send(self.cfg["governor"], "approval", accepted=[a["task"] for a in st["accepted"]],
                              refs=[a["ref"] for a in st["accepted"]])
                    return None
                return self.end("done", "every scenario passes on the integrated change")
            st["final_rounds"] += 1
            if st["final_rounds"] >= self.cfg["budget"]["max_attempts"]:
                return self.end("failed", f"the integrated change still fails: {feedback[:300]}")
            fix = {"id": f"fix{st['final_rounds']}", "title": "make the remaining scenarios pass",
                   "description": f"{self.cfg['intent']}\nThe integrated change still fails:\n{feedback}",
                   "after": [], "status": "pending", "attempts": 0, "feedback": [feedback], "worker": ""}
            st["tasks"].append(fix)
            st["phase"] = "running"
            self.audit("plan", tasks=[{k: fix[k] for k in ("id", "title", "description", "after")}])
            return self.dispatch()
        t = next((x for x in st["tasks"] if x["id"] == b.get("task")), None)
        if t is None or t["status"] != "judging" or t["attempts"] != b.get("attempt"):
            return
        st["at_judge"] = ""
        cand = t.pop("candidate", {})
        if b.get("accepted"):
            t["status"] = "accepted"
            st["accepted"].append({"task": t["id"], "attempt": t["attempts"], "diff": cand.get("diff", ""),
                                   "ref": cand.get("ref", "")})
            self.audit("accepted", task=t["id"], attempt=t["attempts"], ref=cand.get("ref", ""))
            self.judge_next()
            return self.dispatch()
        self.reject(t, feedback or "rejected by the judge")
        self.judge_next()

    def reject(self, t: dict[str, Any], feedback: str) -> None:
        t["feedback"].append(feedback)
        t.pop("candidate", None)
        t["status"] = "replanning"
        self.audit("rejected", task=t["id"], attempt=t["attempts"], feedback=feedback[:2000])
        if t["attempts"] >= self.cfg["budget"]["max_attempts"]:
            return self.end("failed", f"task {t['id']} failed {t['attempts']} time(s): {feedback[:300]}")
        prompt = (f"Job: {self.cfg['intent']}\nTask {t['id']}: {t['title']}\n{t['description']}\n\n"
                  f"Attempt {t['attempts']} was rejected:\n{feedback}")
        self.llm(REPLAN_SYSTEM, prompt, ["replan", t["id"]])
        self.dispatch()

    # --- the end ----------------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        assert self.st is not None
        for t in self.st["tasks"]:
            if t["status"] == "running" and t["worker"]:
                self.send(t["worker"], "abort", reason=reason)
        self.end("stopped", reason)

    def end(self, status: str, reason: str) -> None:
        st = self.st
        assert st is not None
        st["phase"], st["reason"] = status, reason
        self.audit("job_end", status=status, reason=reason,
                   accepted=[{"task": a["task"], "attempt": a["attempt"], "ref": a["ref"]} for a in st["accepted"]],
                   tasks={t["id"]: {"status": t["status"], "attempts": t["attempts"]} for t in st["tasks"]})
        self.send(self.cfg["governor"], "done", status=status)


def _tasks(answer: Any) -> list[dict[str, Any]]:
    """The tasks of a plan answer, cleaned to text fields (world values hold no floats)."""
    raw = answer.get("tasks") if isinstance(answer, dict) else None
    out: list[dict[str, Any]] = []
    for i, t in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(t, dict) or not str(t.get("description") or t.get("title") or "").strip():
            continue
        tid = str(t.get("id") or f"t{i + 1}")[:32]
        if any(x["id"] == tid for x in out):
            continue
        after = [str(a) for a in t.get("after") or [] if isinstance(a, (str, int))]
        out.append({"id": tid, "title": str(t.get("title") or tid)[:200],
                    "description": str(t.get("description") or t.get("title"))[:4000], "after": after})
    known = {t["id"] for t in out}
    for t in out:
        t["after"] = [a for a in t["after"] if a in known and a != t["id"]]
    return out[:MAX_TASKS]


def _error(r: dict[str, Any]) -> str:
    p = r.get("payload") if isinstance(r.get("payload"), dict) else {}
    err = p.get("error")
    if isinstance(err, dict):
        return f"{err.get('code')}: {err.get('message')}"
    return json.dumps(p, sort_keys=True, default=str)[:300]

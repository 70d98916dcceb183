"""factory judge: runs every scenario, hold-outs included, against a change, and says whether it is good.

One ``judge`` request at a time (others queue), on the judge's own clone:

0. at ``init``, the baseline of the base commit, while the workers work;
1. reset to the job's base commit and apply the integration so far (``prepare``);
2. if it has not yet seen this integration: run every scenario on it (the *baseline*; the
   scenarios of one run go out together, so they must not depend on each other);
3. apply the candidate diff (a diff that no longer applies is rejected: redo it on the
   new integration);
4. run every scenario again (``check``);
5. ask the LLM how satisfied a user would be (percent of scenarios; its answer is advice
   with a floor, the checks decide);
6. the verdict: for a task, *accepted* when no scenario that passed on the baseline fails
   now and the LLM's satisfaction is at least ``MIN_SATISFACTION``; for the ``final``
   check of the whole integration, when every scenario passes. Feedback names each
   failing scenario; a hold-out shows only its name and description, never its command
   or expectation, so workers cannot be fitted to it.

Each scenario run is a ``host.exec`` intent and receipt in this world's journal, and the
verdict an ``Audit`` event with the evidence: the journal alone explains the judgement.
A browser scenario (``judge_browser``) is a run of ``host.exec`` (its app) and ``browser.*``
effects instead; browser scenarios go one after another (they share the judge's one
browser context), beside the shell ones, and their evidence (steps, final snapshot,
screenshot address) goes into the verdict.
"""

from __future__ import annotations

from typing import Any

from aos.agents.factory.judge_browser import BrowserRun
from aos.agents.factory.protocol import EXEC, MSG, RECEIPT, Step, exec_result, extract_json, tail, text_of, usage_of
from aos.agents.factory.worker import APPLY, prepare_script

MIN_SATISFACTION = 50
JUDGE_SYSTEM = ("You judge the work of a software factory. Given the task, the change and the results of the "
                "checks, estimate the percentage of the job's scenarios a user would be satisfied with. Answer "
                'with JSON only: {"satisfaction": <0-100>, "reason": "..."}')


def step(inp: dict[str, Any]) -> dict[str, Any]:
    s = _Judge(inp, "judge")
    ev = inp["event"]
    if ev["schema"] == RECEIPT:
        got = s.receipt()
        if got is not None:
            s.on_receipt(*got)
    elif ev["schema"] == MSG:
        s.on_message(ev["value"])
    return s.output()


def passed(scenario: dict[str, Any], res: dict[str, Any]) -> bool:
    return res["exit_code"] == scenario["expect_exit"] and scenario["expect_stdout"] in res["stdout"]


class _Judge(Step):
    @property
    def cfg(self) -> dict[str, Any]:
        assert self.st is not None
        return self.st["config"]

    def on_message(self, m: dict[str, Any]) -> None:
        kind, body = m["kind"], m["body"] if isinstance(m["body"], dict) else {}
        if kind == "init":
            if self.st is None:
                self.st = {"config": body["config"], "queue": [], "cur": None, "baseline": None,
                           "baseline_version": -1, "pending": {}, "judged": 0}
                self.audit("ready", scenarios=len(self.cfg["scenarios"]),
                           holdouts=sum(1 for s in self.cfg["scenarios"] if s["holdout"]))
                # the base's baseline while the workers work, so the first change waits only for its own checks
                self.st["queue"].append({"baseline_only": True, "task": "", "attempt": 0, "title": "", "base": [],
                                         "description": "", "reply_to": ""})
                self.next()
            return
        if self.st is None:
            return
        if kind == "judge":
            self.st["queue"].append({**body, "reply_to": m["from"]})
            self.next()

    def next(self) -> None:
        st = self.st
        assert st is not None
        if st["cur"] is not None or not st["queue"]:
            return
        cur = st["queue"].pop(0)
        cur.update(phase="prepare", results=[], llm=None)
        st["cur"] = cur
        self.effect(EXEC, {"argv": [prepare_script(self.cfg["base_commit"])], "shell": True,
                           "stdin": _json(cur["base"]), "timeout_s": 120}, "prepare")

    def run_scenarios(self, phase: str) -> None:
        """Every scenario at once (one step, one intent each: the kernel runs them concurrently)."""
        cur = self.st["cur"]  # type: ignore[index]
        cur["phase"], cur["results"] = phase, [None] * len(self.cfg["scenarios"])
        cur["bqueue"], cur["browser"] = [], None
        for i, s in enumerate(self.cfg["scenarios"]):
            if s.get("kind") == "browser":
                cur["bqueue"].append(i)
                continue
            self.effect(EXEC, {"argv": [s["run"]], "shell": True, "timeout_s": s["timeout_s"],
                               "max_output_bytes": 256 << 10}, [phase, i])
        self.next_browser()

    def browser_run(self) -> BrowserRun:
        cur = self.st["cur"]  # type: ignore[index]
        b = cur["browser"]

        def emit(effect: str, params: Any, what: str | None) -> int:
            index = len(self.effects)
            self.effect(effect, params, None if what is None else ["browser", b["token"], what])
            return index

        return BrowserRun(b, self.cfg["scenarios"][b["i"]], emit, int(self.ctx["seq"]))

    def next_browser(self) -> None:
        """Start the next browser scenario of this run, one at a time."""
        st = self.st
        assert st is not None
        cur = st["cur"]
        if cur["browser"] is not None or not cur["bqueue"]:
            return
        st["bruns"] = st.get("bruns", 0) + 1
        cur["browser"] = BrowserRun.new(cur["bqueue"].pop(0), st["bruns"])
        self.browser_run().start()

    def on_receipt(self, purpose: Any, r: dict[str, Any]) -> None:
        st = self.st
        assert st is not None
        cur = st["cur"]
        if cur is None:
            return
        scenarios = self.cfg["scenarios"]
        phase = purpose if isinstance(purpose, str) else purpose[0]
        if phase == "browser":
            b = cur.get("browser")
            if b is None or b["token"] != purpose[1]:
                return None  # a late receipt of a run that is over
            run = self.browser_run()
            if not run.on_receipt(purpose[2], r):
                return None
            cur["results"][b["i"]], cur["browser"] = run.result(), None
            self.next_browser()
            return self.scenarios_done(cur["phase"])
        if phase == "prepare":
            res = exec_result(r)
            if res["exit_code"] != 0 and cur.get("baseline_only"):
                self.audit("baseline_failed", error=tail(res["error"] + " " + res["stderr"], 500))
                st["cur"] = None
                return self.next()
            if res["exit_code"] != 0:
                return self.verdict(False, f"the integration does not apply on the base: {tail(res['stderr'], 500)}",
                                    [], None)
            if st["baseline_version"] == len(cur["base"]) and st["baseline"] is not None:
                return self.apply_candidate()
            return self.run_scenarios("baseline")
        if phase in ("baseline", "check"):
            i = purpose[1]
            res = exec_result(r)
            cur["results"][i] = {"name": scenarios[i]["name"], "passed": passed(scenarios[i], res),
                                 "exit_code": res["exit_code"], "holdout": scenarios[i]["holdout"],
                                 "output": tail(res["stdout"] + res["stderr"], 800)}
            return self.scenarios_done(phase)
        if phase == "apply":
            res = exec_result(r)
            if res["exit_code"] != 0:
                return self.verdict(False, "the change does not apply to the current integration (another task "
                                           f"changed the same lines); redo it on top: {tail(res['stderr'], 500)}",
                                    [], None)
            return self.run_scenarios("check")
        if phase == "llm":
            u = usage_of(r.get("payload"))
            if u["input_tokens"] or u["output_tokens"]:
                self.send(self.cfg["governor"], "usage", model=self.cfg["model"], **u)
            answer = extract_json(text_of(r["payload"])) if r["status"] == "ok" else None
            sat = answer.get("satisfaction") if isinstance(answer, dict) else None
            satisfaction = max(0, min(100, int(sat))) if isinstance(sat, (int, float)) and not isinstance(sat, bool) \
                else None
            reason = str(answer.get("reason", ""))[:1000] if isinstance(answer, dict) else ""
            self.decide(satisfaction, reason)

    def scenarios_done(self, phase: str) -> None:
        """Once every scenario of the run has its result: on to the candidate (baseline) or the LLM (check)."""
        st = self.st
        assert st is not None
        cur = st["cur"]
        if any(x is None for x in cur["results"]):
            return None
        if phase == "baseline":
            st["baseline"], st["baseline_version"] = cur["results"], len(cur["base"])
            self.audit("baseline", integration=len(cur["base"]),
                       passing=[x["name"] for x in cur["results"] if x["passed"]])
            if cur.get("baseline_only"):
                st["cur"] = None
                return self.next()
            return self.apply_candidate()
        return self.ask_llm()

    def apply_candidate(self) -> None:
        cur = self.st["cur"]  # type: ignore[index]
        if cur.get("final"):
            return self.run_scenarios("check")
        cur["phase"] = "apply"
        self.effect(EXEC, {"argv": [APPLY], "shell": True, "stdin": _json([cur["diff"]]),
                           "timeout_s": 60}, "apply")

    def ask_llm(self) -> None:
        cur = self.st["cur"]  # type: ignore[index]
        cur["phase"] = "llm"
        lines = [f"Job: {self.cfg['intent']}", f"Task: {cur['title']}\n{cur['description']}",
                 "Change:\n" + tail(cur.get("diff") or "(the integration of every accepted change)", 6000),
                 "Checks:\n" + "\n".join(f"- {x['name']}: {'pass' if x['passed'] else 'FAIL'}" for x in cur["results"])]
        self.llm(JUDGE_SYSTEM, "\n\n".join(lines), "llm")

    def decide(self, satisfaction: int | None, reason: str) -> None:
        st = self.st
        assert st is not None
        cur = st["cur"]
        results = cur["results"]
        if cur.get("final"):
            failing = [x for x in results if not x["passed"]]
            why = "scenario(s) failing"
        else:
            before = {x["name"]: x["passed"] for x in st["baseline"] or []}
            failing = [x for x in results if not x["passed"] and before.get(x["name"])]
            why = "scenario(s) that passed before now fail"
        feedback = []
        if failing:
            feedback.append(f"{len(failing)} {why}:")
            for x in failing:
                s = next(s for s in self.cfg["scenarios"] if s["name"] == x["name"])
                if s["holdout"]:
                    feedback.append(f"- hold-out scenario {s['name']!r} fails: {s['description'] or 'no description'}")
                elif s.get("kind") == "browser":
                    feedback.append(f"- {s['name']!r} (in a browser: {s['run']}): {x['output']}")
                else:
                    wanted = f", stdout with {s['expect_stdout']!r}" if s["expect_stdout"] else ""
                    feedback.append(f"- {s['name']!r}: `{s['run']}` exited {x['exit_code']} (expected "
                                    f"{s['expect_exit']}{wanted}):\n{x['output']}")
        low = satisfaction is not None and satisfaction < MIN_SATISFACTION
        if low:
            feedback.append(f"the judgement: satisfaction {satisfaction}% ({reason})")
        self.verdict(not failing and not low, "\n".join(feedback), results, satisfaction, reason)

    def verdict(self, accepted: bool, feedback: str, results: list[Any], satisfaction: int | None,
                reason: str = "") -> None:
        st = self.st
        assert st is not None
        cur = st["cur"]
        if accepted and not cur.get("final"):
            st["baseline"], st["baseline_version"] = results, len(cur["base"]) + 1
        st["judged"] += 1
        evidence = [{k: x[k] for k in ("name", "passed", "exit_code", "holdout", "output", "browser") if k in x}
                    for x in results]
        self.audit("judgment", task=cur["task"], attempt=cur["attempt"], final=bool(cur.get("final")),
                   ref=cur.get("ref", ""), accepted=accepted, satisfaction=satisfaction, reason=reason,
                   feedback=feedback, evidence=evidence)
        self.send(cur["reply_to"], "verdict", task=cur["task"], attempt=cur["attempt"], final=bool(cur.get("final")),
                  accepted=accepted, feedback=feedback, satisfaction=satisfaction,
                  passed=sum(1 for x in results if x["passed"]), total=len(results))
        self.send(self.cfg["memory"], "record", kind="judgment", job=self.cfg["job"], task=cur["task"],
                  attempt=cur["attempt"], title=cur["title"],
                  summary=(f"{cur['task'] or 'job'} attempt {cur['attempt']} "
                           f"{'accepted' if accepted else 'rejected'}: {feedback[:300]}"),
                  data={"accepted": accepted, "evidence": evidence, "satisfaction": satisfaction,
                        "ref": cur.get("ref", "")})
        st["cur"] = None
        self.next()


def _json(v: Any) -> str:
    import json

    return json.dumps(v)

"""factory worker: the SDK's coding agent on its own clone, one task at a time.

The worker's world holds three workflows: the SDK's session (``agent/session@1``,
unchanged), ``watch`` (reads the session's ``agent/Event@1`` and tells the worker
about usage and the end of an input, as ``factory/Msg@1`` domain events) and
``step`` (this worker). For a ``task`` message it:

1. asks memory for notes on the task (``recall``) and tells the governor it started;
2. resets its clone to the job's base commit, applies the integration so far (the
   accepted diffs, in order) and commits it, so its own diff is only its change;
3. starts a session (``agent/Command@1 start``) with the task, the visible scenarios,
   the feedback of earlier attempts and memory's notes as its first input;
4. when the session's input ends: ``git diff`` of everything it changed, the diff
   into CAS (``blob.put``), and a ``result`` to the planner naming the diff's hash and
   the transcript (this world's journal, session id); memory gets the result too.

``abort`` (governor or planner) aborts the session: the kernel kills what it runs.
"""

from __future__ import annotations

from typing import Any

from aos.agents.factory.protocol import BLOB_PUT, EXEC, MSG, RECEIPT, Step, exec_result, tail
from aos.agents.session import COMMAND, EVENT

# applies each accepted diff in order (a single `git apply` of several patches to one file is not reliable)
APPLY = ("python3 -c 'import json, subprocess, sys\n"
         "for p in json.load(sys.stdin):\n"
         "    subprocess.run([\"git\", \"apply\", \"--whitespace=nowarn\", \"-\"], input=p.encode(), check=True)'")
GIT_ID = "git -c user.name=aos-factory -c user.email=factory@aos.invalid"


def prepare_script(base_commit: str) -> str:
    """Reset the clone to the base commit, apply the integration (JSON list of diffs on stdin), commit it."""
    return (f"git reset -q --hard {base_commit} && git clean -qfdx && {APPLY} && git add -A && "
            f"{GIT_ID} commit -q --allow-empty --no-verify -m 'factory: integration' ")


DIFF_SCRIPT = "git add -A && git diff --cached --binary HEAD"


def step(inp: dict[str, Any]) -> dict[str, Any]:
    s = _Worker(inp, "worker")
    ev = inp["event"]
    if ev["schema"] == RECEIPT:
        got = s.receipt()
        if got is not None:
            s.on_receipt(*got)
    elif ev["schema"] == MSG:
        s.on_message(ev["value"])
    return s.output()


def watch(inp: dict[str, Any]) -> dict[str, Any]:
    """The session's events, as the few messages the worker needs (stateless)."""
    v = inp["event"]["value"]
    out: list[dict[str, Any]] = []
    if inp["event"]["schema"] == EVENT and "/" not in v["session"]:  # subagents are the session's business
        d = v["data"] if isinstance(v["data"], dict) else {}
        if v["kind"] == "assistant_text_end":
            u = d.get("usage") or {}
            out.append({"kind": "session_usage", "from": "", "body": {
                "session": v["session"], "text": str(d.get("text") or "")[:2000],
                "input_tokens": int(u.get("input_tokens") or 0), "output_tokens": int(u.get("output_tokens") or 0)}})
        elif v["kind"] in ("processing_end", "session_end"):
            out.append({"kind": "session_end", "from": "", "body": {
                "session": v["session"], "event": v["kind"], "reason": str(d.get("reason") or "")}})
    return {"state": None, "domain_events": [{"schema": MSG, "value": m} for m in out]}


class _Worker(Step):
    @property
    def cfg(self) -> dict[str, Any]:
        assert self.st is not None
        return self.st["config"]

    def on_message(self, m: dict[str, Any]) -> None:
        kind, body = m["kind"], m["body"] if isinstance(m["body"], dict) else {}
        if kind == "init":
            if self.st is None:
                self.st = {"config": body["config"], "task": None, "pending": {}, "done": 0}
                self.audit("ready", root=self.cfg["root"])
            return
        if self.st is None:
            return
        t = self.st["task"]
        if kind == "task":
            if t is not None:  # a second task while busy: say so rather than drop it silently
                self.send(m["from"], "result", task=body.get("task"), attempt=body.get("attempt"), ok=False,
                          error=f"worker {self.me} is busy with {t['task']}")
                return
            session = f"{body['task']}-a{body['attempt']}"
            self.st["task"] = {**body, "session": session, "phase": "recall", "notes": [], "text": "",
                               "usage": {"input_tokens": 0, "output_tokens": 0}}
            self.audit("task_started", task=body["task"], attempt=body["attempt"], session=session)
            self.send(self.cfg["governor"], "started", task=body["task"], attempt=body["attempt"])
            self.send(self.cfg["memory"], "recall", reply_to=self.me, tag=session, job=self.cfg["job"],
                      task=body["task"], title=body.get("title", ""))
        elif t is None:
            return
        elif kind == "recalled" and body.get("tag") == t["session"] and t["phase"] == "recall":
            t["notes"] = [str(i.get("summary", "")) for i in body.get("items") or []][-8:]
            t["phase"] = "prepare"
            self.effect(EXEC, {"argv": [prepare_script(self.cfg["base_commit"])], "shell": True,
                               "stdin": _json(t["base"]), "timeout_s": 120}, "prepare")
        elif kind == "session_usage" and body.get("session") == t["session"]:
            t["text"] = body.get("text") or t["text"]
            u = {k: int(body.get(k) or 0) for k in ("input_tokens", "output_tokens")}
            t["usage"] = {k: t["usage"][k] + u[k] for k in u}
            self.send(self.cfg["governor"], "usage", model=self.cfg["model"], task=t["task"], **u)
        elif kind == "session_end" and body.get("session") == t["session"] and t["phase"] == "session":
            if body.get("event") == "processing_end" and body.get("reason") == "completed":
                t["phase"] = "diff"
                self.effect(EXEC, {"argv": [DIFF_SCRIPT], "shell": True,
                                   "timeout_s": 60, "max_output_bytes": 4 << 20}, "diff")
            else:
                self.fail(f"the session ended with {body.get('event')} ({body.get('reason')})")
        elif kind == "abort":
            if t["phase"] == "session":
                self.events.append({"schema": COMMAND, "value": {"session": t["session"], "kind": "abort"}})
            self.audit("aborted", task=t["task"], attempt=t["attempt"], reason=str(body.get("reason", "")))
            self.finish()

    def on_receipt(self, purpose: Any, r: dict[str, Any]) -> None:
        t = self.st["task"] if self.st else None
        if t is None or purpose != t["phase"]:
            return  # the task was aborted meanwhile
        if purpose == "prepare":
            res = exec_result(r)
            if res["exit_code"] != 0:
                return self.fail(f"could not prepare the clone: {res['error']} {tail(res['stderr'], 500)}")
            t["phase"] = "session"
            config = {**self.cfg["session_config"]}
            self.events.append({"schema": COMMAND, "value": {
                "session": t["session"], "kind": "start", "config": config, "text": self.prompt(t)}})
        elif purpose == "diff":
            res = exec_result(r)
            if res["exit_code"] != 0:
                return self.fail(f"git diff failed: {res['error']}")
            t["diff"], t["phase"] = res["stdout"], "store"
            self.effect(BLOB_PUT, {"data": res["stdout"].encode("utf-8")}, "store")
        elif purpose == "store":
            if r["status"] != "ok":
                return self.fail(f"could not store the diff in CAS: {r['payload']}")
            ref = str(r["payload"]["hash"])
            transcript = {"world": self.me, "session": t["session"]}
            self.audit("change", task=t["task"], attempt=t["attempt"], ref=ref, bytes=len(t["diff"]),
                       transcript=transcript, usage=t["usage"])
            self.send(self.cfg["planner"], "result", task=t["task"], attempt=t["attempt"], ok=True, diff=t["diff"],
                      ref=ref, transcript=transcript, summary=t["text"], usage=t["usage"])
            self.send(self.cfg["memory"], "record", kind="result", job=self.cfg["job"], task=t["task"],
                      attempt=t["attempt"], title=t.get("title", ""),
                      summary=f"{t['task']} attempt {t['attempt']}: {t['text'][:300]}",
                      data={"ref": ref, "transcript": transcript, "text": t["text"]})
            self.finish()

    def prompt(self, t: dict[str, Any]) -> str:
        parts = [f"You are one worker of a software factory. The job: {t['intent']}",
                 f"Your task ({t['task']}): {t['title']}\n{t['description']}"]
        if t.get("constraints"):
            parts.append("Constraints:\n" + "\n".join(f"- {c}" for c in t["constraints"]))
        if t.get("scenarios"):
            parts.append("Checks the result must pass:\n" + "\n".join(
                f"- {s['name']}: `{s['run']}`" for s in t["scenarios"]))
        if t.get("feedback"):
            parts.append("Earlier attempts were rejected:\n" + "\n".join(f"- {f}" for f in t["feedback"]))
        if t["notes"]:
            parts.append("Notes from memory:\n" + "\n".join(f"- {n}" for n in t["notes"]))
        parts.append("Change the files in the working directory; do not commit. Say briefly what you did when done.")
        return "\n\n".join(parts)

    def fail(self, error: str) -> None:
        t = self.st["task"] if self.st else None
        assert t is not None
        self.audit("task_failed", task=t["task"], attempt=t["attempt"], error=error[:1000])
        self.send(self.cfg["planner"], "result", task=t["task"], attempt=t["attempt"], ok=False, error=error[:2000])
        self.send(self.cfg["memory"], "record", kind="failure", job=self.cfg["job"], task=t["task"],
                  attempt=t["attempt"], title=t.get("title", ""), summary=f"{t['task']}: {error[:300]}",
                  data={"error": error[:2000]})
        self.finish()

    def finish(self) -> None:
        assert self.st is not None
        t = self.st["task"]
        self.send(self.cfg["governor"], "finished", task=t["task"], attempt=t["attempt"])
        self.st["task"] = None
        self.st["done"] += 1


def _json(v: Any) -> str:
    import json

    return json.dumps(v)

"""The judge's browser scenarios, as a workflow drives them: one journaled effect at a time.

A browser scenario (``kind = "browser"`` in the job file) runs in the judge world itself:

1. ``serve`` (if the scenario has it): one long ``host.exec`` in the judge's clone, the
   command with ``{port}`` replaced by the port the runner picked (and the judge's
   ``browser`` grant names); beside it a second ``host.exec`` that waits until the port
   listens;
2. each of ``web_judge``'s steps as a ``browser.*`` effect (an ``expect`` is a
   ``browser.snapshot``, plus ``browser.logs`` for ``no_console_errors``), compared by
   ``web_judge.compare``; the first failing step ends the run;
3. the evidence: a final ``browser.snapshot``, a ``browser.screenshot`` (its CAS address)
   and ``browser.logs``;
4. ``effect.cancel`` of the server (host.exec kills its process group); the scenario is
   done when the server's receipt is in, so the port is free for the next check.

Every receipt is in the judge's journal, so the verdict replays without a browser or a
server. ``BrowserRun`` is sans-IO: it says which effects to emit and reads receipts.
"""

from __future__ import annotations

from typing import Any

from aos.agents.factory.protocol import BROWSER, CANCEL, EXEC, exec_result, tail
from aos.agents.web_judge import ScenarioError, compare, step_effect

READY_S = 20  # how long a served app may take to listen
SNAPSHOT_CHARS = 2000  # of the final snapshot, in the verdict's evidence
MAX_LOGS = 40

_WAIT = ("python3 -B -c 'import socket, sys, time\n"
         "end = time.monotonic() + {s}\n"
         "while time.monotonic() < end:\n"
         "    try:\n"
         "        socket.create_connection((\"127.0.0.1\", {port}), 0.5).close(); sys.exit(0)\n"
         "    except OSError: time.sleep(0.05)\n"
         "sys.exit(\"nothing listens on 127.0.0.1:{port} after {s}s\")'")


def base_url(s: dict[str, Any]) -> str:
    return s["url"] if s["url"] else f"http://127.0.0.1:{s['port']}{s['path']}"


class BrowserRun:
    """One browser scenario in progress; its state ``b`` lives in the judge's state (a plain world value).

    ``emit(effect, params, what)`` is the judge's ``effect`` with a purpose ``["browser", token, what]``;
    it returns the effect's index in this step (``effect.cancel`` names the server by it)."""

    def __init__(self, b: dict[str, Any], scenario: dict[str, Any], emit: Any, seq: int) -> None:
        self.b, self.s, self.emit, self.seq = b, scenario, emit, seq

    @staticmethod
    def new(index: int, token: int) -> dict[str, Any]:
        return {"i": index, "token": token, "phase": "ready", "step": 0, "steps": [], "failures": [], "logs": [],
                "server": None, "served": None, "evidence": {}}

    # -- what to emit ------------------------------------------------------------------------------
    def start(self) -> None:
        s, b = self.s, self.b
        if s["serve"]:
            cmd = s["serve"].replace("{port}", str(s["port"]))
            index = self.emit(EXEC, {"argv": [cmd], "shell": True, "timeout_s": s["timeout_s"] + READY_S,
                                     "max_output_bytes": 64 << 10}, "serve")
            b["server"] = [self.seq, index]
            self.emit(EXEC, {"argv": [_WAIT.format(s=READY_S, port=s["port"])], "shell": True,
                             "timeout_s": READY_S + 5}, "ready")
        else:
            self.next_step()

    def next_step(self) -> None:
        b, steps = self.b, [{"navigate": base_url(self.s)}, *self.s["steps"]]
        if b["failures"] or b["step"] >= len(steps):
            return self.finish()
        (kind, arg), = steps[b["step"]].items()
        b["phase"] = "step"
        if kind == "expect":
            self.emit(BROWSER["snapshot"], {}, "expect")
            return None
        try:
            op, params = step_effect(kind, arg, base_url(self.s))
        except ScenarioError as exc:  # spec.py checks steps; one that slipped through fails, it does not crash
            return self.outcome(False, str(exc))
        self.emit(BROWSER[op], params, "step")
        return None

    def finish(self) -> None:
        self.b["phase"] = "evidence"
        self.emit(BROWSER["snapshot"], {}, "final_snapshot")

    def stop(self) -> bool:
        """Stop the server; True when the scenario is done already (nothing to wait for)."""
        b = self.b
        b["phase"] = "stopping"
        if b["server"] is None or b["served"] is not None:
            return True
        self.emit(CANCEL, {"emitted_at_seq": b["server"][0], "effect_index": b["server"][1]}, None)
        return False

    # -- what came back ----------------------------------------------------------------------------
    def outcome(self, ok: bool, detail: str) -> None:
        b = self.b
        steps = [{"navigate": base_url(self.s)}, *self.s["steps"]]
        kind = next(iter(steps[b["step"]]))
        b["steps"].append({"index": b["step"], "kind": kind, "ok": ok, "detail": tail(detail, 500)})
        if not ok:
            b["failures"].append(f"step {b['step']} ({kind}): {detail}")
        b["step"] += 1
        self.next_step()

    def on_receipt(self, what: str, r: dict[str, Any]) -> bool:
        """A receipt for this run; True when the scenario is done."""
        b = self.b
        p = r.get("payload") if isinstance(r.get("payload"), dict) else {}
        if what == "serve":
            b["served"] = exec_result(r)
            if b["phase"] == "stopping":
                return True
            if b["phase"] in ("ready", "step"):  # it stopped before the check was done
                res = b["served"]
                b["failures"].append(f"the app stopped serving (exit {res['exit_code']}): "
                                     f"{tail(res['stderr'] or res['error'], 400)}")
            return False
        if b["phase"] == "stopping":
            return False
        if what == "ready":
            if b["phase"] != "ready":
                return False
            res = exec_result(r)
            if res["exit_code"] != 0:
                served = b["served"] or {}
                b["failures"].append(f"the app did not serve: {tail(res['stderr'] or res['error'], 300)} "
                                     f"{tail(served.get('stderr', ''), 300)}".strip())
                return self.stop()
            if b["failures"]:  # the server died while we waited
                return self.stop()
            self.next_step()
            return False
        if what == "step":
            ok = r["status"] == "ok"
            self.outcome(ok, f"at {p.get('url')}" if ok else f"{p.get('error') or r['status']}: {p.get('message')}")
            return False
        if what == "expect":
            want = next(iter([{"navigate": ""}, *self.s["steps"]][b["step"]].values()))
            if r["status"] != "ok":
                self.outcome(False, f"{p.get('error') or r['status']}: {p.get('message')}")
            elif want.get("no_console_errors"):
                b["page"] = {k: p.get(k) for k in ("url", "title", "snapshot")}
                self.emit(BROWSER["logs"], {}, "expect_logs")
            else:
                self.outcome(*compare(want, p, b["logs"]))
            return False
        if what == "expect_logs":
            want = next(iter([{"navigate": ""}, *self.s["steps"]][b["step"]].values()))
            self.keep_logs(p)
            page = b.pop("page", {})
            self.outcome(*compare(want, page, b["logs"]))
            return False
        if what == "final_snapshot":
            b["evidence"].update(url=str(p.get("url") or ""), title=str(p.get("title") or ""),
                                 snapshot=tail(str(p.get("snapshot") or ""), SNAPSHOT_CHARS))
            self.emit(BROWSER["screenshot"], {}, "screenshot")
            return False
        if what == "screenshot":
            b["evidence"]["screenshot"] = str(p.get("hash") or "")
            self.emit(BROWSER["logs"], {}, "final_logs")
            return False
        if what == "final_logs":
            self.keep_logs(p)
            return self.stop()
        return False

    def keep_logs(self, p: dict[str, Any]) -> None:
        entries = p.get("entries") if isinstance(p.get("entries"), list) else []
        self.b["logs"] = (self.b["logs"] + entries)[-MAX_LOGS:]

    def result(self) -> dict[str, Any]:
        """The scenario's result, as the judge keeps one (``browser``: the evidence of the run)."""
        b, s = self.b, self.s
        passed = not b["failures"]
        out = "; ".join(b["failures"]) if b["failures"] else f"every step as expected at {b['evidence'].get('url')}"
        return {"name": s["name"], "passed": passed, "exit_code": 0 if passed else 1, "holdout": s["holdout"],
                "output": tail(out, 800),
                "browser": {"steps": b["steps"], "url": b["evidence"].get("url", ""),
                            "title": b["evidence"].get("title", ""), "snapshot": b["evidence"].get("snapshot", ""),
                            "screenshot": b["evidence"].get("screenshot", ""), "logs": len(b["logs"])}}

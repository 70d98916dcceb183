"""factory memory: what earlier tasks and jobs learned, in CAS, retrievable by planner and workers.

One world for every job of a universe (``factory-memory``). ``record {kind, job, task,
attempt, title, summary, data}`` (a worker's result or failure, a judge's judgment) stores
the whole record in CAS (``blob.put`` of its canonical JSON) and keeps an index entry
(kind, job, task, title, summary, the blob's hash). ``recall {reply_to, tag, job?, task?,
title?}`` answers ``recalled {tag, items}`` to ``reply_to``: the entries of that task in
this job and those of tasks with the same title in earlier jobs (the newest
``RECALL_LIMIT``), or for the planner (no task) the failures and rejections of earlier jobs.
Summaries never carry a hold-out's command: the judge writes them from its feedback.
"""

from __future__ import annotations

import json
from typing import Any

from aos.agents.factory.protocol import BLOB_PUT, MSG, RECEIPT, Step

RECALL_LIMIT = 8
INDEX_LIMIT = 2000  # entries kept in the state; the blobs stay in CAS


def step(inp: dict[str, Any]) -> dict[str, Any]:
    s = _Memory(inp, "memory")
    ev = inp["event"]
    if ev["schema"] == RECEIPT:
        got = s.receipt()
        if got is not None:
            s.stored(*got)
    elif ev["schema"] == MSG:
        s.on_message(ev["value"])
    return s.output()


class _Memory(Step):
    def on_message(self, m: dict[str, Any]) -> None:
        kind, body = m["kind"], m["body"] if isinstance(m["body"], dict) else {}
        if kind == "init":
            if self.st is None:
                self.st = {"config": body["config"], "index": [], "pending": {}}
            return
        if self.st is None:
            return
        if kind == "record":
            entry = {k: body.get(k, "") for k in ("kind", "job", "task", "title", "summary")}
            entry["attempt"] = int(body.get("attempt") or 0)
            entry["from"] = m["from"]
            data = json.dumps({**entry, "data": body.get("data")}, sort_keys=True).encode("utf-8")
            self.effect(BLOB_PUT, {"data": data}, entry)
        elif kind == "recall":
            items = self.recall(body)
            self.send(str(body.get("reply_to") or m["from"]), "recalled", tag=body.get("tag", ""), items=items)

    def recall(self, q: dict[str, Any]) -> list[dict[str, Any]]:
        assert self.st is not None
        job, task, title = q.get("job"), q.get("task"), q.get("title")
        if task:
            found = [e for e in self.st["index"] if (e["job"] == job and e["task"] == task)
                     or (title and e["job"] != job and e["title"] == title)]
        else:
            found = [e for e in self.st["index"] if e["job"] != job and (
                e["kind"] == "failure" or (e["kind"] == "judgment" and "rejected" in e["summary"]))]
        return found[-RECALL_LIMIT:]

    def stored(self, entry: Any, r: dict[str, Any]) -> None:
        assert self.st is not None
        if r["status"] != "ok":
            return
        self.st["index"] = (self.st["index"] + [{**entry, "ref": str(r["payload"]["hash"])}])[-INDEX_LIMIT:]
        self.audit("remembered", kind=entry["kind"], job=entry["job"], task=entry["task"], ref=r["payload"]["hash"])

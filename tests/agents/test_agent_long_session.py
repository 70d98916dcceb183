"""A 300-turn session with 20 KB tool outputs through a real kernel, the Anthropic twin and offline replay.

The model is a reactive twin policy: each request it reads the next file
(``f<i>.txt``, 20 KB, first line ``MARK <i>``), and when it is asked for a
summary it writes one naming the files it still saw. The history is held by
reference in the kernel's CAS, so nothing is dropped until the model's
window (the profile's 200k tokens) is nearly full; then the session
compacts, journaled, and the replaced messages stay in CAS. At the end the
journal replays byte-identically offline through ``aos agent replay``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall, Turn
from aos.agents import COMMAND, Limits, build_world, coding_agent, history, transcript
from aos.agents.session import COMPACT_PROMPT
from aos.cli_agent import UNIVERSE, agent_data_dir
from aos.kernel.client import Connection, run
from aos.kernel.host.offline import read_blob, read_world
from aos.kernel.world import cbor
from aos.kernel.world.records import record_from_value
from aos.testing import KernelProcess

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agentkit import KEY, agent_env, cli, tool_outputs  # noqa: E402

PROVIDER = "anthropic"
TURNS = 300
OUTPUT = 20_000
WINDOW = coding_agent(PROVIDER).limits.context_window  # 200k tokens, the profile's
WORLD = "long1"
MARK = re.compile(r"MARK (\d+)\b")


def file_text(i: int) -> str:
    line = "the quick brown fox jumps over the lazy dog, again and again and again. " * 1
    body = "".join(f"{line}{j:05d}\n" for j in range(OUTPUT // (len(line) + 6)))
    return f"MARK {i}\n" + body


class Reader:
    """The reactive model: the next file until TURNS are read, a summary when asked, then a final answer."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.reads = 0
        self.log: list[dict[str, Any]] = []  # one entry per request: kind, marks seen, wire size
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> ModelTurn:
        with self._lock:
            body = request.body
            marks = [int(m.group(1)) for out in tool_outputs(PROVIDER, body) for m in [MARK.search(out)] if m]
            last = json.dumps(body["messages"][-1])
            kind = "summary" if COMPACT_PROMPT[:60] in last else "turn"
            self.log.append({"kind": kind, "marks": marks, "size": len(json.dumps(body)),
                             "first": json.dumps(body["messages"][0])[:400], "tools": bool(body.get("tools"))})
            if kind == "summary":
                return ModelTurn(text=f"I read files up to f{self.reads - 1}.txt; the last ones are kept below.")
            if self.reads >= TURNS:
                return ModelTurn(text=f"Done: read {self.reads} files.")
            self.reads += 1
            path = self.repo / f"f{self.reads - 1}.txt"
            return ModelTurn(tool_calls=[ScriptedCall("read_file", json.dumps({"file_path": str(path)}),
                                                      id=f"toolu_{self.reads}")])


@pytest.mark.timeout(300)
def test_a_300_turn_session_keeps_what_the_window_holds_compacts_near_it_and_replays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request holds every output since the last compaction, compactions happen only near the window,
    are journaled with the replaced span still in CAS, and the whole session replays offline."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for i in range(TURNS):
        (repo / f"f{i}.txt").write_text(file_text(i))
    model = Reader(repo)
    twin = ProviderTwin(PROVIDER, api_key=KEY).start()
    twin.record = False
    twin.repeat(Turn(model))
    env = agent_env(PROVIDER, twin.base_url, tmp_path / "agent-data")
    monkeypatch.setenv("AOS_AGENT_DATA", env["AOS_AGENT_DATA"])
    data_dir = agent_data_dir(str(repo))  # where `aos agent replay --repo` looks
    os.makedirs(data_dir)
    kernel = KernelProcess(data_dir, env=env, extra_args=["--grant-host", str(repo), "--health", ""])
    kernel.start()
    live: list[Any] = []
    try:
        async def main() -> None:
            async with await Connection.open(kernel.address) as conn:
                admin = await conn.restore_kernel(kernel.admin_token)
                limits = Limits(max_tool_rounds_per_input=0, enable_loop_detection=False, context_window=WINDOW)
                doc, start = build_world(coding_agent(PROVIDER), str(repo), PROVIDER, None, session="main",
                                         task="read every file in order", limits=limits)
                world, _ = await (await admin.worlds(UNIVERSE)).create(doc, {}, WORLD, "long session")
                done = asyncio.Event()

                async def on_record(seq: int, value: dict[str, Any]) -> None:
                    value.pop("at", None)
                    for event in transcript([record_from_value(value)], "main"):
                        live.append(event)
                        if event.kind in ("processing_end", "session_end"):
                            done.set()

                subscription = await world.tail(0, on_record)
                await world.send(COMMAND, start)
                await asyncio.wait_for(done.wait(), 240)
                await subscription.cancel()

        run(main())
    finally:
        kernel.kill()
        twin.stop()
    assert twin.failures == [] and model.errors == []
    assert [e.data.get("reason") for e in live if e.kind == "processing_end"] == ["completed"]

    # every ordinary request holds every output since the last compaction's kept part, in order
    turns = [r for r in model.log if r["kind"] == "turn"]
    summaries = [r for r in model.log if r["kind"] == "summary"]
    assert len(turns) == TURNS + 1 and len(summaries) >= 5
    produced, kept_from = 0, 0
    for r in model.log:
        if r["kind"] == "summary":
            assert r["marks"] == list(range(kept_from, produced))  # it summarizes everything it holds
            assert 0.8 * WINDOW * 4 < r["size"] < 1.05 * WINDOW * 4  # only near the window
            continue
        if r["marks"] and r["marks"][0] != kept_from:  # the first request after a compaction
            assert "Summary of the earlier conversation" in r["first"]
            kept_from = r["marks"][0]
        assert r["marks"] == list(range(kept_from, produced)), (produced, r["marks"][:3])
        assert r["size"] < 1.05 * WINDOW * 4 and r["tools"]
        produced = min(produced + 1, TURNS)
    assert kept_from > 0 and produced == TURNS

    # the compactions are journaled and what they replaced is still in CAS
    compactions = [e for e in live if e.kind == "context_compacted"]
    assert len(compactions) == len(summaries)
    offline = read_world(data_dir, UNIVERSE, WORLD)

    def blob(ref: str) -> Any:
        return cbor.decode(read_blob(data_dir, UNIVERSE, ref))

    first = compactions[0].data
    dropped = history.expand(first["replaces"], blob)
    dropped_marks = [int(m.group(1)) for msg in dropped if msg["role"] == "tool"
                     for m in [MARK.search(msg["content"][0]["tool_result"]["content"])] if m]
    assert dropped_marks == list(range(dropped_marks[0], dropped_marks[0] + len(dropped_marks)))
    assert dropped_marks[0] == 0 and dropped[0] == {"role": "user", "content": "read every file in order"}
    assert blob(first["summary_ref"])["replaces"] == first["replaces"]
    later = blob(compactions[1].data["summary_ref"])
    assert first["summary_ref"] in later["replaces"]  # a chain: each summary names the one before

    # a turn's journal records stay small: no record carries the history
    sizes = [len(raw) for raw in offline.records]
    assert max(sizes) < 4 * OUTPUT + 16_384

    # offline replay through the CLI: no kernel, no model; it re-derives every record byte for byte
    replay = cli(["agent", "replay", WORLD, "--repo", str(repo), "--json"], env, repo, timeout=240)
    assert replay.returncode == 0, replay.stderr[-2000:]
    replayed = [json.loads(line) for line in replay.stdout.splitlines() if line.strip()]
    assert [(e["kind"], e["seq"]) for e in replayed if e["session"] == "main"] == [(e.kind, e.seq) for e in live]

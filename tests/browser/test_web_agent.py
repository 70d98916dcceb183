"""The web agent through a real kernel and real Chromium: it logs in to the web application on 127.0.0.1,
fills the order form and checks the result page; an ungranted origin and a redirect to one are refused with a
typed error and never reached; the agent world replays byte-identically from its journal, without a browser.

The model is a provider twin driven by a reactive policy (``Brain`` of the Demiurge suites): each answer is
computed from the tool results the session really sent, so the refs it clicks are the refs the snapshot held.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from aos.agents import COMMAND, input_event, transcript
from aos.agents.web import build_web_agent
from aos.adapters.llm.testing import ProviderTwin, Turn
from aos.kernel.client import Connection, run
from aos.kernel.world import World, decode_record, load_runtimes, parse_manifest, replay
from aos.kernel.world.records import EffectRejectedRecord, ReceiptRecord, record_from_value
from aos.testing import KernelProcess

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demiurge"))
from demikit import Brain, Conversation, call  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host"))
from worldkit import raw_journal, wait_for  # noqa: E402

KEY = "sk-test-web-agent-SECRET"
U = "u"
TASK = "Sign in as ada (password lovelace) and order 2 large gift-wrapped for Grace; tell me the order line."


def ref_of(snapshot: str, role: str, name: str) -> str:
    m = re.search(rf'{role} "{re.escape(name)}"[^\n]*\[ref=((?:f\d+)?e\d+)\]', snapshot)
    assert m, f"no {role} {name!r} in the snapshot:\n{snapshot}"
    return m.group(1)


class WebKernel:
    """A twin of the Anthropic API answering with a ``Brain``, and a kernel whose environment points at it."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="aosb-", dir="/tmp")
        self.brain = Brain(lambda conv: "(no policy)")
        self.twin = ProviderTwin("anthropic", api_key=KEY).start()
        self.twin.repeat(Turn(lambda request: self.brain(request)))
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
        env.update({"ANTHROPIC_BASE_URL": self.twin.base_url, "ANTHROPIC_API_KEY": KEY})
        self.kernel = KernelProcess(self.dir, env=env).start()

    def close(self) -> None:
        self.kernel.kill()
        self.twin.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def agent(self, world_id: str, origins: list[str], task: str, policy: Any,
              then: list[str | None] = ()) -> dict[str, Any]:
        """Run a web agent world to the end of its task, then of each input in ``then`` (``None``: hibernate
        the world first and wait until it sleeps); what it journaled, and what replay needs."""
        self.brain = Brain(policy)
        doc, start = build_web_agent(origins, task, date="2026-01-01")
        return run(self._agent(world_id, doc, start, list(then)))

    async def _agent(self, world_id: str, doc: dict[str, Any], start: dict[str, Any],
                     then: list[str | None]) -> dict[str, Any]:
        async with await Connection.open(self.kernel.address) as conn:
            admin = await conn.restore_kernel(self.kernel.admin_token)
            worlds = await admin.worlds(U)
            world, _ = await worlds.create(doc, {}, world_id)
            ends = 0
            ended = asyncio.Condition()

            async def on_record(seq: int, value: dict[str, Any]) -> None:
                nonlocal ends
                value.pop("at", None)
                for event in transcript([record_from_value(value)]):
                    if event.session == "main" and event.kind in ("processing_end", "session_end"):
                        async with ended:
                            ends += 1
                            ended.notify_all()

            async def finished(n: int) -> None:
                async with ended:
                    await asyncio.wait_for(ended.wait_for(lambda: ends >= n), 60)

            subscription = await world.tail(0, on_record)
            await world.send(COMMAND, start)
            await finished(1)
            for text in then:
                if text is None:
                    await subscription.cancel()
                    await wait_for(lambda: worlds.hibernate(world_id))  # once quiescent it sleeps
                    subscription = await world.tail(0, on_record)  # wakes it: the journal is read again
                    async with ended:
                        ends = 0
                    continue
                await world.send(COMMAND, input_event("main", text))
                await finished(ends + 1)
            await subscription.cancel()
            live, _ = await world.snapshot()
            raws = await raw_journal(admin, U, world_id)
            records = [decode_record(r) for r in raws]
            shots = {}
            cas = await admin.cas(U)
            for r in records:
                if isinstance(r, ReceiptRecord) and isinstance(r.payload, dict) and "hash" in r.payload:
                    shots[r.payload["hash"]] = await cas.get(r.payload["hash"])
            return {"doc": doc, "live": live, "records": records, "events": transcript(records), "shots": shots}


@pytest.fixture(scope="module")
def wk() -> Iterator[WebKernel]:
    """One kernel (so one Chromium) for the module; each test runs a world of its own on it."""
    kit = WebKernel()
    try:
        yield kit
    finally:
        kit.close()


def assert_replays(ran: dict[str, Any], world_id: str) -> None:
    """A fresh World fed the journal derives every record byte for byte and ends in the live state:
    the receipts carry what the browser saw, so no browser is needed."""
    manifest = parse_manifest(ran["doc"])
    fresh = World(manifest, load_runtimes(manifest, {}), world_id)
    assert replay(fresh, ran["records"]) == ()
    assert fresh.state_hash() == ran["live"]


def shop(app_origin: str):
    """The policy of a model that signs in, orders and reads the result, deciding from what the tools returned."""

    def policy(conv: Conversation) -> Any:
        last = conv.newest
        if last is None:
            return [call("browser_navigate", url=app_origin + "/")]
        assert not last.is_error, f"{last.name} failed: {last.output}"
        if last.name in ("browser_navigate", "browser_click"):
            return [call("browser_snapshot")]
        if last.name == "browser_fill":
            snap = conv.last("browser_snapshot").output
            button = "Sign in" if "Sign in" in snap and "Place order" not in snap else "Place order"
            return [call("browser_click", ref=ref_of(snap, "button", button))]
        if last.name == "browser_snapshot":
            snap = last.output
            if 'button "Sign in"' in snap:
                return [call("browser_fill", fields=[{"ref": ref_of(snap, "textbox", "User name"), "value": "ada"},
                                                     {"ref": ref_of(snap, "textbox", "Password"),
                                                      "value": "lovelace"}])]
            if 'button "Place order"' in snap:
                return [call("browser_fill", fields=[
                    {"ref": ref_of(snap, "textbox", "Recipient"), "value": "Grace"},
                    {"ref": ref_of(snap, "combobox", "Size"), "value": "large"},
                    {"ref": ref_of(snap, "spinbutton", "Quantity"), "value": "2"},
                    {"ref": ref_of(snap, "checkbox", "Gift wrap"), "value": True}])]
            if "confirmed" in snap:
                return [call("browser_screenshot")]
            raise AssertionError(f"an unexpected page:\n{snap}")
        if last.name == "browser_screenshot":
            line = re.search(r"Order \d+: [^\n]*", conv.last("browser_snapshot").output)
            return f"Done. The result page says: {line.group(0) if line else '?'}"
        raise AssertionError(f"unexpected tool {last.name}")

    return policy


def test_the_web_agent_logs_in_fills_the_form_and_checks_the_result(wk, webapp, elsewhere):
    ran = wk.agent("shop", [webapp.origin], TASK, shop(webapp.origin))
    assert wk.brain.errors == [], wk.brain.errors
    assert webapp.orders == [{"name": "Grace", "size": "large", "qty": "2", "gift": "on"}]
    tools = [e.data["tool_name"] for e in ran["events"] if e.kind == "tool_call_start"]
    assert tools == ["browser_navigate", "browser_snapshot", "browser_fill", "browser_click", "browser_snapshot",
                     "browser_fill", "browser_click", "browser_snapshot", "browser_screenshot"]
    final = [e.data.get("text") for e in ran["events"] if e.kind == "assistant_text_end"][-1]
    assert "Order 1: 2 x large gift-wrapped for Grace." in final
    (png,) = ran["shots"].values()  # the screenshot is in the universe's CAS under the receipt's hash
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert elsewhere.hits == []
    assert_replays(ran, "shop")


def test_ungranted_origins_are_refused_with_a_typed_error_and_never_reached(wk, webapp, elsewhere):
    def policy(conv: Conversation) -> Any:
        uses = conv.all("browser_navigate")
        if not uses:
            return [call("browser_navigate", url=elsewhere.origin + "/")]
        if len(uses) == 1:
            return [call("browser_navigate", url=webapp.origin + "/away")]  # redirects to elsewhere
        return "Both were refused: " + " | ".join(u.output or "" for u in uses)

    ran = wk.agent("fence", [webapp.origin], "visit the other site", policy)
    assert wk.brain.errors == [], wk.brain.errors
    ends = [e.data for e in ran["events"] if e.kind == "tool_call_end"]
    assert [e["is_error"] for e in ends] == [True, True]
    # the kernel refused the first at admission (journaled, so replay refuses it again) ...
    (rejected,) = [r for r in ran["records"] if isinstance(r, EffectRejectedRecord)]
    assert rejected.effect == "sys/browser.navigate@1" and "not granted" in rejected.reason
    # ... and the adapter the second, at the redirect hop, before anything was sent there
    receipts = [r for r in ran["records"] if isinstance(r, ReceiptRecord) and r.status == "error"]
    assert [r.payload["error"] for r in receipts] == ["origin_not_granted"]
    assert receipts[0].payload["blocked"] == [elsewhere.origin + "/stolen"]
    assert "origin_not_granted" in ends[1]["output"]
    assert elsewhere.hits == []
    assert ("GET", "/away") in webapp.hits
    assert_replays(ran, "fence")


def test_a_session_keeps_its_cookies_until_the_world_hibernates_which_closes_its_browser_context(wk, webapp):
    """Signed in, the form opens; after the world hibernated (its driver stopped, its context closed) the same
    url sends the agent back to sign in: the cookie went with the context."""

    def policy(conv: Conversation) -> Any:
        last = conv.newest
        if last is None:
            return [call("browser_navigate", url=webapp.origin + "/")]
        if len(wk.brain.seen[-2].uses) == len(conv.uses):  # no new tool result: a new input, open the form
            return [call("browser_navigate", url=webapp.origin + "/form")]
        if last.name == "browser_navigate" and last.output and "title: Sign in" in last.output and not conv.all(
                "browser_click"):
            return [call("browser_snapshot")]
        if last.name == "browser_snapshot":
            snap = last.output
            return [call("browser_fill", fields=[{"ref": ref_of(snap, "textbox", "User name"), "value": "ada"},
                                                 {"ref": ref_of(snap, "textbox", "Password"), "value": "lovelace"}])]
        if last.name == "browser_fill":
            return [call("browser_click", ref=ref_of(conv.last("browser_snapshot").output, "button", "Sign in"))]
        return "at: " + (last.output or "")

    ran = wk.agent("cookies", [webapp.origin], "sign in", policy, then=["open the form", None, "open the form"])
    assert wk.brain.errors == [], wk.brain.errors
    navigations = [e.data["output"] for e in ran["events"]
                   if e.kind == "tool_call_end" and e.data["tool_name"] == "browser_navigate"]
    assert len(navigations) == 3
    assert "title: New order" in navigations[1]  # the session's cookie
    assert "title: Sign in" in navigations[2] and "url: " + webapp.origin + "/\n" in navigations[2]
    assert_replays(ran, "cookies")

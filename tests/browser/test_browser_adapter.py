"""The ``browser.*`` adapter against real Chromium and the web application on 127.0.0.1, no kernel:
the whole login-form-result flow by refs, the origin confinement (navigation, redirect, subresources), logs,
screenshots into a blob store, contexts per session closed per world."""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any

from aos.adapters.base import EffectCall, Receipt
from aos.adapters.browser import BrowserAdapter


async def wait_for(predicate, timeout: float = 10.0) -> None:
    """Poll an async condition until it holds (the page acts on its own after the effect returned)."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


def ref(snapshot: str, role: str, name: str) -> str:
    """The ref of the element ``role "name"`` in an accessibility snapshot."""
    m = re.search(rf'{role} "{re.escape(name)}"[^\n]*\[ref=((?:f\d+)?e\d+)\]', snapshot)
    assert m, f"no {role} {name!r} in\n{snapshot}"
    return m.group(1)


class Browser:
    def __init__(self, origins: list[str], adapter: BrowserAdapter | None = None) -> None:
        self.adapter = adapter or BrowserAdapter()
        self.grant = {"origins": origins}
        self.blobs: dict[str, bytes] = {}

    async def put(self, data: bytes) -> str:
        address = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[address] = data
        return address

    async def __call__(self, op: str, session: tuple[str, str, str] = ("u", "w", "main"), **params: Any) -> Receipt:
        async def sink(frame: Any) -> None:
            pass

        call = EffectCall(f"sys/browser.{op}@1", params, self.grant, "key")
        return await self.adapter.run(call, sink, session=session, put_blob=self.put)


def test_log_in_fill_the_form_and_read_the_result(webapp, shared):
    async def scenario() -> None:
        b = Browser([webapp.origin], shared.adapter)
        try:
            r = await b("navigate", url=webapp.origin + "/")
            assert r.status == "ok", r
            assert r.payload["title"] == "Sign in" and r.payload["status"] == 200
            snap = (await b("snapshot")).payload["snapshot"]
            r = await b("fill", fields=[{"ref": ref(snap, "textbox", "User name"), "value": "ada"},
                                        {"ref": ref(snap, "textbox", "Password"), "value": "lovelace"}])
            assert r.status == "ok", r
            r = await b("click", ref=ref(snap, "button", "Sign in"))
            assert r.status == "ok", r
            assert r.payload["url"] == webapp.origin + "/form" and r.payload["title"] == "New order"
            snap = (await b("snapshot")).payload["snapshot"]
            r = await b("fill", fields=[{"ref": ref(snap, "textbox", "Recipient"), "value": "Grace"},
                                        {"ref": ref(snap, "combobox", "Size"), "value": "large"},
                                        {"ref": ref(snap, "spinbutton", "Quantity"), "value": "2"},
                                        {"ref": ref(snap, "checkbox", "Gift wrap"), "value": True}])
            assert r.status == "ok", r
            assert ref((await b("snapshot")).payload["snapshot"], "textbox", "Recipient") == ref(snap, "textbox",
                                                                                                   "Recipient")
            r = await b("click", ref=ref(snap, "button", "Place order"))
            assert r.payload["url"] == webapp.origin + "/result?id=1", r
            snap = (await b("snapshot")).payload["snapshot"]
            assert "Order 1: 2 x large gift-wrapped for Grace." in snap
            shot = await b("screenshot")
            assert shot.status == "ok" and b.blobs[shot.payload["hash"]][:8] == b"\x89PNG\r\n\x1a\n"
            logs = (await b("logs")).payload
            texts = [e.get("text") for e in logs["entries"] if e["type"] == "console"]
            assert "order form ready" in texts
            assert any(e.get("status") == 303 and e.get("redirect") == webapp.origin + "/form"
                       for e in logs["entries"])
            assert (await b("logs")).payload["entries"] == []  # since the last call
            r = await b("click", ref="e999")
            assert r.status == "error" and r.error == "unknown_ref"
        finally:
            await b.adapter.close_world("u", "w")

    shared.run(scenario())


def test_an_ungranted_origin_is_refused_and_never_reached(webapp, elsewhere, shared):
    async def scenario() -> None:
        b = Browser([webapp.origin], shared.adapter)
        try:
            r = await b("navigate", url=elsewhere.origin + "/")
            assert (r.status, r.error) == ("error", "origin_not_granted"), r
            r = await b("navigate", url="file:///etc/passwd")
            assert (r.status, r.error) == ("error", "origin_not_granted"), r
            # a redirect from a granted page to an ungranted origin is stopped before the hop
            r = await b("navigate", url=webapp.origin + "/away")
            assert (r.status, r.error) == ("error", "origin_not_granted"), r
            assert r.payload["blocked"] == [elsewhere.origin + "/stolen"]
            blocked = [e for e in (await b("logs")).payload["entries"] if e["type"] == "blocked"]
            assert [e["url"] for e in blocked] == [elsewhere.origin + "/", "file:///etc/passwd",
                                                   elsewhere.origin + "/stolen"]
            # what a page loads or fetches by itself is refused too; the page itself is granted, so that is logged
            r = await b("navigate", url=webapp.origin + "/mixed")
            assert r.status == "ok", r
            seen: list[dict] = []

            async def refused_both() -> bool:
                seen.extend((await b("logs")).payload["entries"])
                return {elsewhere.origin + "/stolen.png", elsewhere.origin + "/stolen.json"} <= {
                    e["url"] for e in seen if e["type"] == "blocked"} and any(
                    e.get("reason", "").startswith("redirect:") for e in seen if e["type"] == "blocked")

            await wait_for(refused_both)  # the image's redirect hop too (its url is the same as the first image's)
            assert any(e.get("text") == "fetch refused" for e in seen if e["type"] == "console")
        finally:
            await b.adapter.close_world("u", "w")
        assert elsewhere.hits == []

    shared.run(scenario())


def test_sessions_have_their_own_contexts_and_a_world_closes_its_own(webapp, shared):
    async def scenario() -> None:
        b = Browser([webapp.origin], shared.adapter)
        for key in (("v", "w1", "a"), ("v", "w1", "b"), ("v", "w2", "a")):
            assert (await b("navigate", key, url=webapp.origin + "/")).status == "ok"
        assert b.adapter.launches == 1  # one Chromium for every session (and every test of this module)
        await b.adapter.close_world("v", "w1")
        assert b.adapter.open_sessions("v") == [("v", "w2", "a")]
        await b.adapter.close_world("v", "w2")

    shared.run(scenario())


def test_type_key_by_key_and_submit_with_enter(webapp, shared):
    async def scenario() -> None:
        b = Browser([webapp.origin], shared.adapter)
        key = ("t", "w", "main")
        try:
            await b("navigate", key, url=webapp.origin + "/")
            snap = (await b("snapshot", key)).payload["snapshot"]
            assert (await b("type", key, ref=ref(snap, "textbox", "User name"), text="ada")).status == "ok"
            r = await b("type", key, ref=ref(snap, "textbox", "Password"), text="lovelace", submit=True)
            assert r.status == "ok" and r.payload["url"] == webapp.origin + "/form", r
            r = await b("type", key, ref="button")
            assert (r.status, r.error) == ("error", "invalid_params"), r
        finally:
            await b.adapter.close_world("t", "w")

    shared.run(scenario())


def test_a_page_that_never_answers_ends_the_effect_with_a_timeout(webapp, shared):
    async def scenario() -> None:
        b = Browser([webapp.origin], shared.adapter)
        b.grant = {"origins": [webapp.origin], "max_timeout_s": 1}
        try:
            r = await b("navigate", ("s", "w", "main"), url=webapp.origin + "/stuck")
            assert r.status == "timeout" and r.error == "timeout", r
        finally:
            webapp.release.set()
            await b.adapter.close_world("s", "w")

    shared.run(scenario())

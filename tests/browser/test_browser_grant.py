"""The ``browser`` grant at admission (pure): a navigation is admitted only to a granted origin, refused with the
reason otherwise (journaled, so replay refuses it again); the other browser effects name no url; a grant whose
origins are not origins admits nothing; the web agent's manifest is well formed."""

from __future__ import annotations

import dataclasses

import pytest

from aos.agents.tools import browser
from aos.agents.web import build_web_agent
from aos.kernel.world import parse_manifest
from aos.kernel.world.errors import ManifestError
from aos.kernel.world.grants import find_grant
from aos.kernel.world.manifest import EffectDef, GrantDef, Manifest


def manifest(origins: list) -> Manifest:
    doc, _ = build_web_agent(origins, "t", date="2026-01-01")
    return parse_manifest(doc)


def admit(m: Manifest, effect: str, params: dict) -> tuple[str | None, str]:
    return find_grant(m, "agent/session@1", m.effects[effect], params)


def test_a_navigation_is_admitted_only_to_a_granted_origin():
    m = manifest(["http://127.0.0.1:8080"])
    assert admit(m, browser.NAVIGATE, {"url": "http://127.0.0.1:8080/login?x=1"}) == ("web", "")
    for url, why in [("http://127.0.0.1:8081/", "not granted"), ("https://127.0.0.1:8080/", "not granted"),
                     ("http://localhost:8080/", "not granted"), ("file:///etc/passwd", "scheme file:"),
                     ("javascript:alert(1)", "scheme javascript:")]:
        grant, reason = admit(m, browser.NAVIGATE, {"url": url})
        assert grant is None and why in reason, (url, reason)
    assert admit(m, browser.CLICK, {"ref": "e3"}) == ("web", "")  # the adapter confines what a click reaches


def test_a_grant_of_no_origins_admits_no_navigation():
    m = manifest(["http://127.0.0.1:8080"])
    bad = dataclasses.replace(m, grants={"web": GrantDef("web", "browser", {"origins": ["127.0.0.1:8080"]})})
    grant, reason = admit(bad, browser.NAVIGATE, {"url": "http://127.0.0.1:8080/"})
    assert grant is None and "origin '127.0.0.1:8080'" in reason, reason


def test_the_web_agent_world_declares_every_browser_effect_under_its_grant():
    m = manifest(["http://127.0.0.1:8080", "https://example.test"])
    assert {e for e in m.effects if e.startswith("sys/browser.")} == set(browser.EFFECTS)
    assert all(isinstance(m.effects[e], EffectDef) and m.effects[e].cap == "browser" for e in browser.EFFECTS)
    assert m.grants["web"].params["origins"] == ["http://127.0.0.1:8080", "https://example.test"]


@pytest.mark.parametrize("origins,why", [([], "non-empty"), (["127.0.0.1:8080"], "scheme (none)"),
                                         (["http://127.0.0.1:8080/login"], "scheme://host[:port] only"),
                                         (["file:///"], "scheme file:")])
def test_a_browser_grant_whose_origins_are_not_origins_is_refused_at_create(origins, why):
    doc, _ = build_web_agent(["http://127.0.0.1:8080"], "t", date="2026-01-01")
    doc["grants"]["web"]["params"]["origins"] = origins
    with pytest.raises(ManifestError) as err:
        parse_manifest(doc)
    assert err.value.path == "$.grants.web.params.origins" and why in str(err.value), str(err.value)

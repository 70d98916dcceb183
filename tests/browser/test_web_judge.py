"""The judge's browser check: a scenario (log in, order, read the result) passes on the web application;
a wrong expectation, a wrong password and an ungranted origin fail it, with the evidence of what was there."""

from __future__ import annotations

import pytest

from aos.agents.web_judge import ScenarioError, check_scenario, run_scenario


def order(origin: str, password: str = "lovelace", expect_line: str = "Order 1: 2 x large gift-wrapped for Grace.",
          ) -> dict:
    return {"url": origin + "/", "steps": [
        {"fill": {"User name": "ada", "Password": password}},
        {"click": "Sign in"},
        {"expect": {"path": "/form", "title": "New order", "text": "Signed in as ada"}},
        {"fill": {"Recipient": "Grace", "Size": "large", "Quantity": "2", "Gift wrap": True}},
        {"click": "Place order"},
        {"expect": {"path": "/result", "text": [expect_line], "no_text": "Nothing here", "no_console_errors": True}},
    ]}


def test_a_good_scenario_passes_with_evidence(webapp):
    verdict = check_scenario(order(webapp.origin))  # a browser of its own, started and closed
    assert verdict.passed, verdict.failures
    assert [s.ok for s in verdict.steps] == [True] * 7  # the opening navigation and six steps
    assert verdict.evidence["url"] == webapp.origin + "/result?id=1"
    assert "Order 1: 2 x large gift-wrapped for Grace." in verdict.evidence["snapshot"]
    assert verdict.evidence["screenshot_png"][:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bad_scenario_fails_and_says_what_the_page_showed(webapp, elsewhere, shared):
    async def verdicts() -> list:
        # one browser for the three (a judge of many scenarios shares one too)
        return [await run_scenario(s, adapter=shared.adapter) for s in (
            order(webapp.origin, expect_line="Order 1: 3 x small for Grace."),
            order(webapp.origin, password="babbage"),
            {"url": webapp.origin + "/", "steps": [{"navigate": elsewhere.origin + "/"}]})]

    wrong_result, wrong_password, fenced = shared.run(verdicts())
    assert shared.adapter.launches == 1 and shared.adapter.open_sessions() == []
    assert not wrong_result.passed
    assert wrong_result.failures == ("step 6 (expect): the page does not show 'Order 1: 3 x small for Grace.'",)
    assert "Order 1: 2 x large gift-wrapped for Grace." in wrong_result.evidence["snapshot"]

    assert not wrong_password.passed and wrong_password.failures[0].startswith("step 3 (expect): path is '/login'")
    assert "Wrong user name or password." in wrong_password.evidence["snapshot"]
    assert len(wrong_password.steps) == 4  # it stopped at the first failing step

    assert not fenced.passed and "origin_not_granted" in fenced.failures[0]
    assert elsewhere.hits == []

    with pytest.raises(ScenarioError):  # refused before a browser starts
        check_scenario({"url": webapp.origin + "/", "steps": [{"jump": "/"}]})

"""Check a scenario in a browser: a judge's deterministic web check (issue 15's factory judge calls it).

A scenario is data, so it can live in a job's spec beside its other checks::

    {"url": "http://127.0.0.1:8080/",
     "steps": [{"fill": {"User name": "ada", "Password": "lovelace"}},      # fields by label
               {"click": "Sign in"},                                        # a button (or {"role", "name"})
               {"expect": {"path": "/form", "title": "New order", "text": "Signed in as ada"}}]}

Steps run in order, in a browser context of their own, through the same
adapter (and the same origin confinement) as the ``browser.*`` effects:
``navigate`` (a url or path), ``fill`` (label -> text, or true/false for a
checkbox), ``type`` ({label, text, submit?}), ``click`` (a button's name, or
{role, name} / {label}), ``expect`` (``url``, ``path``, ``title``: equal;
``text``: in the page's accessibility snapshot, a string or a list;
``no_text``: not in it; ``no_console_errors``: true). The first step that
fails ends the run. ``check_scenario`` returns a ``Verdict``: passed or not,
why not, and the evidence (every step's outcome, the final url and snapshot, a
screenshot's address, the browser's log).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

PutBlob = Callable[[bytes], Awaitable[str]]
STEP_KINDS = ("navigate", "fill", "type", "click", "expect")


@dataclass(frozen=True)
class StepOutcome:
    index: int
    step: dict[str, Any]
    ok: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    """What the judge found. ``evidence``: ``url``, ``title``, ``snapshot``, ``screenshot`` (an address),
    ``logs`` (browser log entries)."""

    passed: bool
    failures: tuple[str, ...]
    steps: tuple[StepOutcome, ...]
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": list(self.failures),
                "steps": [{"index": s.index, "step": s.step, "ok": s.ok, "detail": s.detail} for s in self.steps],
                "evidence": self.evidence}


class ScenarioError(ValueError):
    """A scenario that is not well formed (a step of no known kind, a url that is not http(s))."""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ScenarioError(f"a scenario url is an absolute http(s) url, not {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _target(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"role": "button", "name": value}
    if isinstance(value, Mapping) and ({"role", "label", "ref"} & set(value)):
        return dict(value)
    raise ScenarioError(f"a click names a button ('Sign in') or {{role, name}} / {{label}}, not {value!r}")


async def run_scenario(scenario: Mapping[str, Any], *, origins: list[str] | None = None, adapter: Any = None,
                       put_blob: PutBlob | None = None, session: str = "judge") -> Verdict:
    """Run one scenario (see the module doc). ``origins`` default to the scenario url's own; ``adapter`` is a
    ``BrowserAdapter`` to share (else one is started and closed here); ``put_blob`` stores the screenshot."""
    from aos.adapters.base import EffectCall
    from aos.adapters.browser import BrowserAdapter

    url = scenario.get("url")
    if not isinstance(url, str):
        raise ScenarioError("a scenario needs a 'url'")
    steps = scenario.get("steps") or []
    if not isinstance(steps, list):
        raise ScenarioError("'steps' is a list")
    for i, step in enumerate(steps, 1):  # a malformed scenario fails before any browser starts
        if not isinstance(step, Mapping) or len(step) != 1 or next(iter(step)) not in STEP_KINDS:
            raise ScenarioError(f"step {i}: a step is one of {', '.join(STEP_KINDS)} with its argument: {step!r}")
    grant = {"origins": list(origins or [_origin(url)])}
    own = adapter is None
    browser = adapter or BrowserAdapter()
    key = ("judge", session, hashlib.sha256(repr(sorted(scenario.items())).encode()).hexdigest()[:12])
    blobs: dict[str, bytes] = {}

    async def keep(data: bytes) -> str:
        address = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[address] = data
        return address

    async def sink(frame: Any) -> None:
        pass

    async def effect(op: str, **params: Any) -> Any:
        return await browser.run(EffectCall(f"browser.{op}", params, grant, f"judge-{op}"), sink, session=key,
                                 put_blob=put_blob or keep)

    outcomes: list[StepOutcome] = []
    failures: list[str] = []
    logs: list[dict[str, Any]] = []
    evidence: dict[str, Any] = {}
    try:
        for i, step in enumerate([{"navigate": url}, *steps]):
            (kind, arg), = step.items()
            ok, detail = await _step(effect, kind, arg, url, logs)
            outcomes.append(StepOutcome(i, dict(step), ok, detail))
            if not ok:
                failures.append(f"step {i} ({kind}): {detail}")
                break
        snap = await effect("snapshot")
        shot = await effect("screenshot")
        logs += (await effect("logs")).payload.get("entries", [])
        evidence = {"url": snap.payload.get("url"), "title": snap.payload.get("title"),
                    "snapshot": snap.payload.get("snapshot", ""), "screenshot": shot.payload.get("hash"),
                    "logs": logs}
        if put_blob is None and shot.payload.get("hash") in blobs:
            evidence["screenshot_png"] = blobs[shot.payload["hash"]]
    finally:
        if own:
            await browser.close()
        else:
            await browser.close_world(key[0], key[1])
    return Verdict(not failures, tuple(failures), tuple(outcomes), evidence)


def check_scenario(scenario: Mapping[str, Any], **options: Any) -> Verdict:
    """``run_scenario`` for a caller without an event loop."""
    return asyncio.run(run_scenario(scenario, **options))


def step_effect(kind: str, arg: Any, base: str) -> tuple[str, dict[str, Any]]:
    """The ``browser.*`` effect (op, params) of a step that is no ``expect``; sans-IO, so the factory's judge
    workflow drives the same steps through journaled effects."""
    if kind == "navigate":
        if not isinstance(arg, str):
            raise ScenarioError("navigate takes a url or a path")
        return "navigate", {"url": urljoin(base, arg)}
    if kind == "fill":
        if not isinstance(arg, Mapping) or not arg:
            raise ScenarioError("fill takes {label: value, ...}")
        return "fill", {"fields": [{"label": k, "value": v} for k, v in arg.items()]}
    if kind == "type":
        if not isinstance(arg, Mapping) or not isinstance(arg.get("label"), str) or not isinstance(arg.get("text"), str):
            raise ScenarioError("type takes {label, text, submit?}")
        return "type", {"label": arg["label"], "text": arg["text"], "submit": bool(arg.get("submit"))}
    if kind == "click":
        return "click", _target(arg)
    raise ScenarioError(f"no step kind {kind!r}: navigate, fill, type, click or expect")


async def _step(effect: Callable[..., Awaitable[Any]], kind: str, arg: Any, base: str,
                logs: list[dict[str, Any]]) -> tuple[bool, str]:
    if kind == "expect":
        if not isinstance(arg, Mapping) or not arg:
            raise ScenarioError("expect takes {url?, path?, title?, text?, no_text?, no_console_errors?}")
        return await _expect(effect, arg, logs)
    op, params = step_effect(kind, arg, base)
    r = await effect(op, **params)
    if r.status != "ok":
        return False, f"{r.error}: {r.message}"
    return True, f"at {r.payload.get('url')}"


async def _expect(effect: Callable[..., Awaitable[Any]], want: Mapping[str, Any],
                  logs: list[dict[str, Any]]) -> tuple[bool, str]:
    snap = await effect("snapshot")
    if snap.status != "ok":
        return False, f"{snap.error}: {snap.message}"
    if want.get("no_console_errors"):
        logs += (await effect("logs")).payload.get("entries", [])
    return compare(want, snap.payload, logs)


def compare(want: Mapping[str, Any], page: Mapping[str, Any], logs: list[dict[str, Any]]) -> tuple[bool, str]:
    """An ``expect`` step against a ``browser.snapshot`` payload (and the log so far): (ok, what was wrong)."""
    text, url = str(page.get("snapshot", "")), str(page.get("url", ""))
    wrong: list[str] = []
    if "url" in want and url != want["url"]:
        wrong.append(f"url is {url!r}, not {want['url']!r}")
    if "path" in want and urlsplit(url).path != want["path"]:
        wrong.append(f"path is {urlsplit(url).path!r}, not {want['path']!r}")
    if "title" in want and page.get("title") != want["title"]:
        wrong.append(f"title is {page.get('title')!r}, not {want['title']!r}")
    for needle in [want["text"]] if isinstance(want.get("text"), str) else want.get("text") or []:
        if needle not in text:
            wrong.append(f"the page does not show {needle!r}")
    for needle in [want["no_text"]] if isinstance(want.get("no_text"), str) else want.get("no_text") or []:
        if needle in text:
            wrong.append(f"the page shows {needle!r}")
    if want.get("no_console_errors"):
        errors = [e.get("text") for e in logs if e.get("type") == "pageerror" or e.get("level") == "error"]
        if errors:
            wrong.append(f"console errors: {errors[:3]}")
    return (not wrong), ("; ".join(wrong) if wrong else f"as expected at {url}")

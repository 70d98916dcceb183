"""The browser tools of an agent: each a ``browser.*`` effect (``aos.adapters.browser``) under a ``browser`` grant.

The model works from accessibility snapshots: ``browser_snapshot`` returns the
page as a tree whose elements carry refs (``[ref=e12]``), and ``browser_click``,
``browser_type`` and ``browser_fill`` name elements by those refs. A tool whose
target origin the grant does not name comes back as an error result
(``origin_not_granted``): the kernel refuses the navigation at admission, or
the adapter refuses the request the page made.

``EFFECTS`` and ``SCHEMAS`` declare the effects for an ``AgentDefinition``;
``grant(origins)`` is the grant they need.
"""

from __future__ import annotations

from typing import Any

from aos.agents.spec import ToolSpec

NAVIGATE = "sys/browser.navigate@1"
SNAPSHOT = "sys/browser.snapshot@1"
CLICK = "sys/browser.click@1"
TYPE = "sys/browser.type@1"
FILL = "sys/browser.fill@1"
SCREENSHOT = "sys/browser.screenshot@1"
LOGS = "sys/browser.logs@1"

_opt = {"option": "text"}
_TARGET = {"ref": _opt, "role": _opt, "name": _opt, "label": _opt}
SCHEMAS: dict[str, Any] = {
    "sys/BrowserNavigateParams@1": {"record": {"url": "text"}},
    "sys/BrowserNoParams@1": {"record": {}},
    "sys/BrowserTargetParams@1": {"record": dict(_TARGET)},
    "sys/BrowserTypeParams@1": {"record": {**_TARGET, "text": "text", "submit": {"option": "bool"}}},
    # a field's value is text, or true/false for a checkbox
    "sys/BrowserFillParams@1": {"record": {"fields": {"list": "any"}}},
    "sys/BrowserScreenshotParams@1": {"record": {"full_page": {"option": "bool"}}},
}
_PARAMS = {NAVIGATE: "sys/BrowserNavigateParams@1", SNAPSHOT: "sys/BrowserNoParams@1",
           CLICK: "sys/BrowserTargetParams@1", TYPE: "sys/BrowserTypeParams@1", FILL: "sys/BrowserFillParams@1",
           SCREENSHOT: "sys/BrowserScreenshotParams@1", LOGS: "sys/BrowserNoParams@1"}
EFFECTS: dict[str, dict[str, Any]] = {e: {"params": p, "receipt": "agent/Any@1", "cap": "browser"}
                                      for e, p in _PARAMS.items()}


def grant(origins: list[str], max_timeout_s: int | None = None) -> dict[str, Any]:
    """The ``browser`` grant for these origins (``scheme://host[:port]``)."""
    params: dict[str, Any] = {"origins": list(origins)}
    if max_timeout_s is not None:
        params["max_timeout_s"] = max_timeout_s
    return {"cap": "browser", "params": params}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


_REF = {"type": "string", "description": "the element's ref from the latest browser_snapshot, e.g. e12"}

navigate = ToolSpec(
    "browser_navigate", "Open a URL in the browser. Returns the final URL, the HTTP status and the page title.",
    _obj(["url"], url={"type": "string", "description": "an absolute http(s) URL"}),
    NAVIGATE, {"url": {"$arg": "url"}}, "browser")

snapshot = ToolSpec(
    "browser_snapshot", "The current page as an accessibility tree. Elements carry refs ([ref=e12]) that the "
    "other browser tools take. Take a new snapshot after the page changes.",
    _obj([]), SNAPSHOT, {}, "browser")

click = ToolSpec(
    "browser_click", "Click an element (a button, a link, a checkbox). Waits for the navigation it starts.",
    _obj(["ref"], ref=_REF), CLICK, {"ref": {"$arg": "ref"}}, "browser")

type_text = ToolSpec(
    "browser_type", "Type text into an element, key by key (submit: press Enter afterwards).",
    _obj(["ref", "text"], ref=_REF, text={"type": "string", "description": "the text to type"},
         submit={"type": "boolean", "description": "press Enter after typing (default: false)"}),
    TYPE, {"ref": {"$arg": "ref"}, "text": {"$arg": "text"}, "submit": {"$arg": "submit"}}, "browser")

fill = ToolSpec(
    "browser_fill", "Fill several form fields at once: each {ref, value}; value is text (a select takes the "
    "option's label) or true/false for a checkbox.",
    _obj(["fields"], fields={"type": "array", "description": "the fields to fill",
                             "items": {"type": "object", "properties": {"ref": _REF, "value": {
                                 "type": ["string", "boolean"], "description": "text, or true/false"}},
                                       "required": ["ref", "value"]}}),
    FILL, {"fields": {"$arg": "fields"}}, "browser")

screenshot = ToolSpec(
    "browser_screenshot", "Take a PNG screenshot of the page (stored; returns its hash).",
    _obj([], full_page={"type": "boolean", "description": "the whole page, not just the viewport"}),
    SCREENSHOT, {"full_page": {"$arg": "full_page"}}, "browser")

logs = ToolSpec(
    "browser_logs", "Console messages, page errors and network requests since the last call.",
    _obj([]), LOGS, {}, "browser")

TOOLS: tuple[ToolSpec, ...] = (click, fill, logs, navigate, screenshot, snapshot, type_text)

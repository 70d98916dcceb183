"""The web console in a real browser (Debian's chromium driven by Playwright) against a real kernel with real
worlds and an agent session on a provider twin: login, every view, a live tail, a revoked grant, steering and
abort, a read-only token, and the API refusing calls without the session cookie or the CSRF header.

Screenshots of each view go to ``$AOS_CONSOLE_SHOTS`` when set (docs/console/ is made that way), else to the
test's temporary directory."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from aos.adapters.llm.testing import ModelTurn, ProviderTwin, ScriptedCall
from aos.agents import COMMAND, build_world, coding_agent, input_event
from aos.kernel.client import Connection, run
from aos.testing import KernelProcess

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from consolekit import SCRIPT, ConsoleProcess, effect, scripted_manifest  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host"))
from worldkit import bundle  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KEY = "sk-test-console"
STEER = "STEER-CONSOLE-7: keep it short"

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (./run setup installs it): no browser to drive",
                allow_module_level=True)


def in_thread(work: Callable[[], Any]) -> Any:
    """Run kernel-client code (its own asyncio loop) beside Playwright's sync loop."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = work()
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the test's thread
            out["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if "error" in out:
        raise out["error"]
    return out.get("value")


def client(kernel: KernelProcess, work: Callable[[Any], Any]) -> Any:
    async def main() -> Any:
        async with await Connection.open(kernel.address) as conn:
            return await work(await conn.restore_kernel(kernel.admin_token))

    return in_thread(lambda: run(main()))


def wait_until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    data = tempfile_dir()
    repo = root / "repo"
    repo.mkdir()
    (repo / "notes.txt").write_text("hello from the repository\n")
    twin = ProviderTwin("anthropic", api_key=KEY).start()
    blocking = "touch started; while [ ! -e go ]; do sleep 0.05; done; echo released"
    twin.script(ModelTurn(tool_calls=[ScriptedCall("shell", json.dumps({"command": blocking}), id="call_1")]),
                ModelTurn(text="All done here."),
                ModelTurn(tool_calls=[ScriptedCall("shell", json.dumps({"command": "echo $$ > pid; exec sleep 120"}),
                                                   id="call_2")]))
    env = dict(os.environ, ANTHROPIC_BASE_URL=twin.base_url, ANTHROPIC_API_KEY=KEY)
    kernel = KernelProcess(data, env=env, extra_args=["--grant-host", str(repo), "--idle-seconds", "3600"]).start()

    async def worlds(admin):
        default = await admin.worlds("default")
        doc, wasm = bundle("counter")
        counter, _ = await default.create(doc, wasm, "c1")
        for i in range(3):
            await counter.send("demo/CounterEvent@1", {"by": i + 1})
        await counter.send("demo/CellEvent@1", {"by": 5, "id": "a"})
        scripted, _ = await default.create(scripted_manifest(str(repo)), {}, "s1")
        await scripted.send(SCRIPT, {"effects": [effect("sys/host.fs.read@1", path="notes.txt")]})
        await scripted.send(SCRIPT, {"effects": [effect("sys/timer.set@1", deliver_at_ns=time.time_ns() + 3600 * 10**9)]})
        for i in range(4):
            await default.create(doc, wasm, f"idle-{i}")
        agent_doc, start = build_world(coding_agent("anthropic"), repo, "anthropic", session="main",
                                       task="look around")
        agent, _ = await (await admin.worlds("agents")).create(agent_doc, {}, "a1")
        await agent.send(COMMAND, start)
        read_only = await default.read_only()
        return await read_only.save()

    token = client(kernel, worlds)
    (root / "ro.token").write_text(token + "\n")
    console = ConsoleProcess(kernel.address, kernel.token_path, ["--audit-file", str(root / "audit.jsonl")]).start()
    ro_console = ConsoleProcess(kernel.address, str(root / "ro.token"),
                                ["--audit-file", str(root / "ro-audit.jsonl")]).start()
    shots = os.environ.get("AOS_CONSOLE_SHOTS") or str(root / "shots")
    os.makedirs(shots, exist_ok=True)
    with playwright_sync.sync_playwright() as pw:
        browser_dir = root / "chromium"
        context = pw.chromium.launch_persistent_context(str(browser_dir), executable_path=CHROMIUM, args=FLAGS,
                                                        headless=True, viewport={"width": 1280, "height": 860})
        try:
            yield {"kernel": kernel, "console": console, "ro": ro_console, "twin": twin, "repo": repo,
                   "context": context, "pw": pw, "shots": shots, "root": root}
        finally:
            context.close()
            console.stop()
            ro_console.stop()
            kernel.kill()
            twin.stop()
            shutil.rmtree(data, ignore_errors=True)


def tempfile_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="aosk-", dir="/tmp")  # unix socket paths are short


@pytest.fixture(scope="module")
def page(setup):
    """A page logged in through the printed link (spent here, once)."""
    page = setup["context"].new_page()
    page.set_default_timeout(15_000)
    page.goto(setup["console"].login)
    page.wait_for_selector("[data-testid=universes]")
    return page


def shot(setup, page, name: str) -> None:
    path = os.path.join(setup["shots"], f"{name}.png")
    page.screenshot(path=path, full_page=False)
    assert os.path.getsize(path) > 1000


def status(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_login_link_works_once_and_nothing_is_served_without_the_cookie(setup, page):
    """Without the session cookie the page, the assets and every API call are 401; the spent login link is
    refused the second time; a write with the cookie but without the CSRF header is 403."""
    console = setup["console"]
    for path in ("/", "/static/app.js", "/api/session", "/api/worlds", "/api/world/default/c1/journal"):
        assert status(console.base + path) == 401, path
    assert status(console.base + "/api/world/default/c1/send", "POST") == 401
    assert status(console.login) == 401  # spent by the `page` fixture
    reply = page.request.post(console.base + "/api/world/default/c1/send",
                              data=json.dumps({"schema": "demo/CounterEvent@1", "value": {"by": 1}}),
                              headers={"Content-Type": "application/json"})
    assert reply.status == 403 and "X-AOS-CSRF" in reply.json()["message"]
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["aos_console"]["httpOnly"] and cookies["aos_console"]["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # the page's scripts cannot read it


def test_universes_and_worlds_views_filter_and_sort(setup, page):
    """The universes view lists both universes with their world counts; the worlds view filters by universe,
    state and name, and sorts by last activity (the worlds that took events first)."""
    page.goto(setup["console"].base + "/#/universes")
    page.wait_for_selector("[data-universe=default]")
    assert page.inner_text("[data-universe=default] td:nth-child(2)") == "6"
    assert page.inner_text("[data-universe=agents] td:nth-child(2)") == "1"
    shot(setup, page, "universes")
    page.goto(setup["console"].base + "/#/worlds?universe=default")
    page.wait_for_selector("[data-world=c1]")
    ids = page.eval_on_selector_all("[data-testid=worlds] tbody tr", "rows => rows.map(r => r.dataset.world)")
    assert set(ids[:2]) == {"c1", "s1"} and len(ids) == 6  # most recent activity first
    shot(setup, page, "worlds")
    page.fill("[data-testid=filter-name]", "idle")
    page.press("[data-testid=filter-name]", "Enter")
    playwright_sync.expect(page.locator("[data-testid=worlds] tbody tr[data-world]")).to_have_count(4)
    page.select_option("[data-testid=filter-state]", "quarantined")
    page.wait_for_selector("text=no world matches")


def test_world_view_tabs_and_a_live_tail(setup, page):
    """One world shows its journal (newest first), and a new event sent from outside appears in the open
    timeline without a reload; state, cells, effects in flight, receipts, snapshots and the manifest render."""
    base = setup["console"].base
    page.goto(base + "/#/world/default/c1?tab=journal")
    page.wait_for_selector("[data-testid=live-status]:has-text('live')")
    height = int(page.get_attribute("[data-testid=journal-rows] tr:first-child", "data-seq"))
    shot(setup, page, "world-journal")
    seq = client(setup["kernel"], lambda admin: _send(admin, "c1", {"by": 40}))
    page.wait_for_selector(f"[data-testid=journal-rows] tr[data-seq='{seq}'][data-kind=event]")
    assert seq > height
    assert "demo/CounterEvent@1" in page.inner_text(f"tr[data-seq='{seq}']")
    page.goto(base + "/#/world/default/c1?tab=state")
    page.wait_for_selector("[data-testid=state-value] h2")
    page.click("[data-workflow='demo/counter@1']")
    page.wait_for_selector("[data-testid=state-value] pre:has-text('46')")  # 1 + 2 + 3 + 40
    page.click("[data-workflow='demo/cells@1']")
    page.wait_for_selector("[data-testid=state-value] li")
    page.click("[data-testid=state-value] li a")
    page.wait_for_selector("[data-testid=state-value] pre:has-text('count')")
    shot(setup, page, "world-state")
    page.goto(base + "/#/world/default/c1?tab=manifest")
    page.wait_for_selector("[data-testid=manifest]")
    assert "demo/counter@1" in page.inner_text("[data-testid=manifest]")
    page.goto(base + "/#/world/default/s1?tab=effects")
    page.wait_for_selector("[data-testid=effects] tbody tr[data-intent]")
    assert "sys/timer.set@1" in page.inner_text("[data-testid=effects]")
    shot(setup, page, "world-effects")
    page.goto(base + "/#/world/default/s1?tab=receipts")
    page.wait_for_selector("[data-testid=journal-rows] tr[data-kind=receipt]")
    assert page.eval_on_selector_all("[data-testid=journal-rows] tr", "rows => rows.every(r => r.dataset.kind === 'receipt')")
    page.goto(base + "/#/world/default/c1?tab=snapshots")
    page.wait_for_selector("[data-testid=journal-rows] tr[data-kind=snapshot]")


async def _send(admin, world_id: str, value: dict) -> int:
    world = await (await admin.worlds("default")).open(world_id)
    return await world.send("demo/CounterEvent@1", value)


def test_revoking_a_grant_in_the_page_makes_the_next_effect_refused(setup, page):
    """Revoke (confirmed in a dialog) switches the grant off; the world's next host.fs.read settles as a
    `revoked` error, shown live in the timeline; Restore switches it back; both are in the audit log."""
    base = setup["console"].base
    page.goto(base + "/#/world/default/s1?tab=grants")
    page.click("[data-grant=files] [data-testid=grant-revoke]")
    page.wait_for_selector("dialog[open]")
    shot(setup, page, "confirm-revoke")
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("[data-grant=files] [data-testid=grant-state]:has-text('revoked')")
    shot(setup, page, "world-grants")
    page.goto(base + "/#/world/default/s1?tab=journal")
    page.wait_for_selector("[data-testid=live-status]:has-text('live')")
    page.click("[data-testid=action-send]")
    page.fill("[data-testid=send-schema]", SCRIPT)
    page.fill("[data-testid=send-value]", json.dumps({"effects": [effect("sys/host.fs.read@1", path="notes.txt")]}))
    page.click("[data-testid=send-go]")
    page.click("[data-testid=confirm-ok]")
    row = page.wait_for_selector("[data-testid=journal-rows] tr.row-problem[data-kind=receipt]:has-text('revoked')")
    assert "grant 'files'" in row.inner_text()
    page.goto(base + "/#/world/default/s1?tab=grants")
    page.click("[data-grant=files] [data-testid=grant-restore]")
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("[data-grant=files] [data-testid=grant-state]:has-text('active')")
    page.goto(base + "/#/audit?universe=default")
    page.wait_for_selector("[data-testid=audit] tbody tr")
    text = page.inner_text("[data-testid=audit]")
    assert "revoke_grant" in text and "restore_grant" in text and "send" in text
    shot(setup, page, "audit")


def test_steer_and_abort_an_agent_session_from_its_transcript(setup, page):
    """The transcript follows the session live (tool call, its output, the assistant's text); a steer typed in
    the page reaches the model's next request; Abort ends the session and kills its running command."""
    base, repo, twin = setup["console"].base, setup["repo"], setup["twin"]
    page.goto(base + "/#/agent/agents/a1/main")
    page.wait_for_selector("[data-testid=live-status]:has-text('live')")
    wait_until(lambda: (repo / "started").exists())
    page.wait_for_selector("[data-testid=transcript] [data-kind=tool_call_start]")
    page.fill("[data-testid=steer-text]", STEER)
    page.click("[data-testid=action-steer]")
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("[data-testid=toast]:has-text('Steer: done')")
    (repo / "go").write_text("")
    page.wait_for_selector("[data-testid=transcript] [data-kind=steering_injected]")
    page.wait_for_selector("[data-testid=transcript] [data-kind=assistant_text_end]:has-text('All done here.')")
    assert STEER not in json.dumps(twin.requests[0].body) and STEER in json.dumps(twin.requests[1].body)
    page.wait_for_selector("[data-testid=session-status]:has-text('idle')")
    shot(setup, page, "agent-transcript")
    client(setup["kernel"], lambda admin: _agent_input(admin, "run the tests"))
    pid = int(wait_until(lambda: (repo / "pid").exists() and (repo / "pid").read_text().strip()))
    page.wait_for_selector("[data-testid=transcript] [data-kind=tool_call_start] >> nth=1")
    page.click("[data-testid=action-abort]")
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("[data-testid=transcript] [data-kind=session_end]")
    wait_until(lambda: not _alive(pid))
    page.wait_for_selector("[data-testid=session-status]:has-text('closed')")
    page.goto(base + "/#/world/agents/a1?tab=agents")
    page.wait_for_selector("[data-session=main]")
    shot(setup, page, "agent-sessions")


async def _agent_input(admin, text: str) -> int:
    world = await (await admin.worlds("agents")).open("a1")
    return await world.send(COMMAND, input_event("main", text))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_cluster_and_scheduling_say_not_connected_to_a_scheduler(setup, page):
    """Without aos-scheduler the cluster and scheduling views say so instead of showing empty tables."""
    for view in ("cluster", "scheduling"):
        page.goto(setup["console"].base + f"/#/{view}")
        page.wait_for_selector("[data-testid=no-scheduler]:has-text('Not connected to a scheduler')")
    shot(setup, page, "cluster-not-connected")


def test_hibernate_and_fork_from_the_world_page(setup, page):
    """Hibernate (confirmed) puts an idle world to sleep, and the worlds filter then finds it hibernated;
    Fork makes a new world and opens it."""
    base = setup["console"].base
    client(setup["kernel"], lambda admin: _send(admin, "idle-0", {"by": 1}))  # awake, with a journal to snapshot
    page.goto(base + "/#/world/default/idle-0")
    page.click("[data-testid=action-hibernate]")
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("h1 [data-testid=state]:has-text('hibernated')")
    page.goto(base + "/#/worlds?universe=default&state=hibernated")
    page.wait_for_selector("[data-world=idle-0]")
    page.goto(base + "/#/world/default/c1")
    page.click("[data-testid=action-fork]")
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("h1:has-text('(fork)')")


def test_a_read_only_token_gives_a_console_without_write_actions(setup):
    """With a read-only Worlds token the page shows the read-only badge and no send, snapshot, hibernate, fork,
    revoke or agent button; a write call with a valid session and CSRF header is refused anyway."""
    ro = setup["ro"]
    page = setup["context"].new_page()
    page.goto(ro.login)
    page.wait_for_selector("[data-testid=read-only]")
    page.goto(ro.base + "/#/world/default/s1?tab=grants")
    page.wait_for_selector("[data-grant=files]")
    assert page.query_selector_all("[data-testid=world-actions] button") == []
    assert page.query_selector_all("[data-testid^=grant-r]") == []
    shot(setup, page, "read-only")
    csrf = page.evaluate("fetch('/api/session').then(r => r.json()).then(s => s.csrf)")
    reply = page.request.post(ro.base + "/api/world/default/s1/grant", data=json.dumps({"name": "files", "active": False}),
                              headers={"Content-Type": "application/json", "X-AOS-CSRF": csrf})
    assert reply.status == 403 and reply.json()["error"] == "PermissionDenied"
    page.goto(ro.base + "/#/agent/agents/a1/main")
    page.wait_for_selector("[data-testid=error]")  # the token is for universe default only
    page.close()

"""The web console against a scheduler, in a real browser (Debian's chromium driven by Playwright): a real local
cluster (etcd, a moto S3 server, aos-scheduler, two host kernels on shared storage) and `aos console --connect
SCHEDULER` with a scheduler token. The cluster, universes and worlds views; a world's page reached through its
introduction with a live tail; a move made in the page shows up live in the scheduling history and in the audit
log; pause queues an event and resume delivers it; a read-only scheduler token shows no move or pause button.

Screenshots go to ``$AOS_CONSOLE_SHOTS`` when set (docs/console/ is made that way)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from aos.kernel.client import run
from aos.kernel.scheduler.client import SchedulerSession
from aos.kernel.scheduler.testing import LocalCluster, etcd_binary, shared_storage_cluster
from aos.kernel.storage.testing import MotoServer
from aos.kernel.world.loader import read_bundle

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from consolekit import ConsoleProcess  # noqa: E402
from test_console_browser import CHROMIUM, FLAGS, in_thread, playwright_sync, wait_until  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")

if etcd_binary() is None:
    pytest.skip("etcd is not installed: `./run setup` installs Debian's etcd-server", allow_module_level=True)


def scheduler(cluster: LocalCluster, work: Any, token: str = "") -> Any:
    async def main() -> Any:
        async with await SchedulerSession.open(cluster.addresses, token or cluster.scheduler.admin_token) as s:
            return await work(s)

    return in_thread(lambda: run(main()))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("console-cluster")
    moto = MotoServer().start()
    stack = contextlib.ExitStack()
    consoles: list[ConsoleProcess] = []
    try:
        # its own etcd (the cluster's), a scheduler and two hosts on a bucket of moto
        cluster = stack.enter_context(shared_storage_cluster("", moto, prefix="aosq-", hosts=2, capacity=10))
        doc, wasm = read_bundle(os.path.join(EXAMPLES, "counter"))

        async def worlds(s: SchedulerSession) -> str:
            for _ in range(400):
                if len((await s.scheduler.status())["hosts"]) == 2:
                    break
                await asyncio.sleep(0.05)
            await s.scheduler.create_universe("demo", "Demo universe", worlds=100)
            await s.scheduler.create_universe("lab")
            demo = await s.universe("demo")
            for name in ("c1", "c2", "c3"):
                await demo.create_world(doc, wasm, name)
            await (await s.universe("lab")).create_world(doc, wasm, "l1")
            await (await s.open_world("demo", "c1")).send("demo/CounterEvent@1", {"by": 2})
            return await (await s.scheduler.read_only()).save()

        ro_token = scheduler(cluster, worlds)
        (root / "ro.token").write_text(ro_token + "\n")
        console = ConsoleProcess(cluster.addresses, cluster.scheduler.token_path,
                                 ["--audit-file", str(root / "audit.jsonl")]).start()
        # given two scheduler addresses (the second one dead), as for a cluster with a standby
        ro = ConsoleProcess(f"{cluster.addresses},tcp:127.0.0.1:1", str(root / "ro.token"),
                            ["--audit-file", str(root / "ro-audit.jsonl")]).start()
        consoles += [console, ro]
        shots = os.environ.get("AOS_CONSOLE_SHOTS") or str(root / "shots")
        os.makedirs(shots, exist_ok=True)
        with playwright_sync.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(str(root / "chromium"), executable_path=CHROMIUM,
                                                            args=FLAGS, headless=True,
                                                            viewport={"width": 1280, "height": 760})
            try:
                yield {"cluster": cluster, "console": console, "ro": ro, "context": context, "shots": shots,
                       "root": root}
            finally:
                context.close()
    finally:
        for c in consoles:
            c.stop()
        stack.close()
        moto.stop()


@pytest.fixture(scope="module")
def page(setup: dict[str, Any]) -> Any:
    page = setup["context"].new_page()
    page.set_default_timeout(20_000)
    page.goto(setup["console"].login)
    page.wait_for_selector("[data-testid=universes] [data-universe=demo]")
    return page


def shot(setup: dict[str, Any], page: Any, name: str) -> None:
    path = os.path.join(setup["shots"], f"{name}.png")
    page.screenshot(path=path, full_page=False)
    assert os.path.getsize(path) > 1000


def test_cluster_universes_and_worlds_views_show_what_the_scheduler_knows(setup: dict[str, Any], page: Any) -> None:
    """The cluster view lists both hosts (live, load over capacity, worlds per universe); the universes view each
    universe's worlds and quota; the worlds view every world of every universe with its host, filtered by
    universe."""
    base = setup["console"].base
    assert page.inner_text("[data-universe=demo] td:nth-child(3)") == "3"
    assert page.inner_text("[data-universe=demo] td:nth-child(8)") == "100"
    shot(setup, page, "cluster-universes")
    page.goto(base + "/#/cluster")
    page.wait_for_selector("[data-testid=hosts] tr[data-host=host1]")
    worlds = sum(int(page.inner_text(f"[data-host=host{i}] [data-testid=worlds]")) for i in (0, 1))
    assert worlds == 4
    assert "leading" in page.inner_text("[data-testid=leader]")
    shot(setup, page, "cluster")
    page.goto(base + "/#/worlds")
    page.wait_for_selector("[data-testid=worlds] tr[data-world=l1]")
    assert page.locator("[data-testid=worlds] tbody tr[data-world]").count() == 4
    page.goto(base + "/#/worlds?universe=demo")
    page.wait_for_selector("[data-testid=worlds] tr[data-world=c1] [data-testid=host]:has-text('host')")
    assert page.locator("[data-testid=worlds] tbody tr[data-world]").count() == 3
    shot(setup, page, "cluster-worlds")


def test_a_world_page_through_its_introduction_follows_the_journal_live(setup: dict[str, Any], page: Any) -> None:
    base, cluster = setup["console"].base, setup["cluster"]
    page.goto(base + "/#/world/demo/c1?tab=journal")
    page.wait_for_selector("[data-testid=live-status]:has-text('live')")
    assert "host" in page.inner_text("[data-testid=world-host]")

    async def send(s: SchedulerSession) -> int:
        return await (await s.open_world("demo", "c1")).send("demo/CounterEvent@1", {"by": 5})

    seq = scheduler(cluster, send)
    page.wait_for_selector(f"[data-testid=journal-rows] tr[data-seq='{seq}'][data-kind=event]")


def test_a_move_from_the_world_page_shows_live_in_the_scheduling_history(setup: dict[str, Any], page: Any) -> None:
    """The scheduling view (open in its own page) gets the `moved` entry of a move confirmed on the world's page
    without a reload, then that of a move back made from the cluster view; the world then serves from its host,
    and the moves are in the audit log."""
    base, cluster = setup["console"].base, setup["cluster"]
    history = setup["context"].new_page()
    history.set_default_timeout(20_000)
    history.goto(base + "/#/scheduling")
    history.wait_for_selector("[data-testid=live-status]:has-text('live')")
    assert history.locator("[data-testid=history-rows] tr[data-kind=placed]").count() == 4
    assert history.locator("[data-testid=history-rows] tr[data-kind=moved]").count() == 0

    async def where(s: SchedulerSession) -> str:
        return str((await (await s.universe("demo")).where("c2"))["hostId"])

    before = scheduler(cluster, where)
    target = "host1" if before == "host0" else "host0"
    page.goto(base + "/#/world/demo/c2")
    page.wait_for_selector("[data-testid=action-move]")
    page.select_option("[data-testid=move-host]", target)
    page.click("[data-testid=action-move]")
    page.wait_for_selector("dialog[open]")
    shot(setup, page, "confirm-move")
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("[data-testid=toast]:has-text('Move world: done')")
    row = history.wait_for_selector("[data-testid=history-rows] tr[data-kind=moved][data-world='demo/c2']")
    assert before in row.inner_text() and target in row.inner_text() and "by command" in row.inner_text()
    shot(setup, history, "scheduling")
    wait_until(lambda: scheduler(cluster, where) == target)
    # and back, from the cluster view's form
    page.goto(base + "/#/cluster")
    page.fill("[data-testid=cluster-move-world]", "demo/c2")
    page.select_option("[data-testid=cluster-move-host]", before)
    page.click("[data-testid=cluster-move-go]")
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("[data-testid=toast]:has-text('Move world: done')")
    back = history.locator("[data-testid=history-rows] tr[data-kind=moved][data-world='demo/c2']")
    wait_until(lambda: back.count() == 2)
    history.close()
    wait_until(lambda: scheduler(cluster, where) == before)
    target = before
    page.goto(base + "/#/audit")
    page.wait_for_selector("[data-testid=audit] tbody tr")
    assert "move" in page.inner_text("[data-testid=audit]")
    page.goto(base + "/#/world/demo/c2")  # its console asks the scheduler for a new introduction
    page.wait_for_selector(f"[data-testid=world-host]:has-text('{target}')")


def test_pause_queues_an_event_and_resume_delivers_it(setup: dict[str, Any], page: Any) -> None:
    """Pause (confirmed) on a world's page; an event sent from the page is queued, not journaled (the page shows
    it waiting); the world moves to another host still paused with its event queued; Resume (confirmed) there
    delivers it: it appears live in the open journal timeline. Both are in the audit log."""
    base = setup["console"].base
    page.goto(base + "/#/world/demo/c3?tab=journal")
    page.wait_for_selector("[data-testid=world-actions]")
    page.click("[data-testid=action-pause]")
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("h1 [data-testid=paused]")
    page.click("[data-testid=action-send]")
    page.fill("[data-testid=send-schema]", "demo/CounterEvent@1")
    page.fill("[data-testid=send-value]", '{"by": 7}')
    page.click("[data-testid=send-go]")
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("[data-testid=toast]:has-text('queued: the world is paused')")
    page.wait_for_selector("[data-testid=queued]:has-text('1')")
    page.wait_for_selector("[data-testid=live-status]:has-text('live')")
    assert page.locator("[data-testid=journal-rows] tr[data-kind=event]").count() == 0
    assert page.locator("[data-testid=journal-rows] tr[data-kind=control]").count() == 1
    shot(setup, page, "world-paused")
    # moved while paused: the pause and the queued event go with it (journal, registry entry and inbox)
    cluster = setup["cluster"]

    async def move(s: SchedulerSession) -> str:
        u = await s.universe("demo")
        source = (await u.where("c3"))["hostId"]
        await s.scheduler.move("demo", "c3", "")
        for _ in range(600):
            where = await u.where("c3")
            if where["state"] == "running" and where["hostId"] != source:
                return str(where["hostId"])
            await asyncio.sleep(0.05)
        raise AssertionError("c3 did not move")

    moved_to = scheduler(cluster, move)
    page.goto(base + "/#/worlds")
    page.goto(base + "/#/world/demo/c3?tab=journal")
    page.wait_for_selector(f"[data-testid=world-host]:has-text('{moved_to}')")
    page.wait_for_selector("h1 [data-testid=paused]")
    page.wait_for_selector("[data-testid=queued]:has-text('1')")
    page.click("[data-testid=action-resume]")
    page.click("[data-testid=confirm-ok]")
    page.wait_for_selector("[data-testid=action-pause]")
    page.wait_for_selector("[data-testid=live-status]:has-text('live')")
    row = page.wait_for_selector("[data-testid=journal-rows] tr[data-kind=event]")
    assert '"by":7' in row.inner_text().replace(" ", "")
    page.goto(base + "/#/world/demo/c3?tab=state")
    page.click("[data-workflow='demo/counter@1']")
    page.wait_for_selector("[data-testid=state-value] pre:has-text('7')")
    page.goto(base + "/#/audit")
    page.wait_for_selector("[data-testid=audit] tbody tr")
    text = page.inner_text("[data-testid=audit]")
    assert "pause" in text and "resume" in text


# last: its login replaces the admin console's cookie in this browser (cookies are per host, not port)
def test_a_read_only_scheduler_token_shows_no_move_or_pause(setup: dict[str, Any]) -> None:
    """A read-only scheduler token: the read-only badge, no button on a world's page (no move, pause, send) or in the
    cluster view, and a hand-made move call is refused."""
    ro = setup["ro"]
    page = setup["context"].new_page()
    page.set_default_timeout(20_000)
    page.goto(ro.login)
    page.wait_for_selector("[data-testid=read-only]")
    page.goto(ro.base + "/#/world/demo/c1")
    page.wait_for_selector("[data-testid=world-host]")
    assert page.query_selector_all("[data-testid=world-actions] button") == []
    page.goto(ro.base + "/#/cluster")
    page.wait_for_selector("[data-testid=hosts] tr[data-host]")
    assert page.query_selector_all("[data-testid=cluster-move] button") == []
    shot(setup, page, "cluster-read-only")
    csrf = page.evaluate("fetch('/api/session').then(r => r.json()).then(s => s.csrf)")
    reply = page.request.post(ro.base + "/api/world/demo/c1/move", data='{"toHost": ""}',
                              headers={"Content-Type": "application/json", "X-AOS-CSRF": csrf})
    assert reply.status == 403 and reply.json()["error"] == "PermissionDenied"
    page.close()

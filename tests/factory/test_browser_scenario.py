"""A factory job with a browser hold-out scenario, through a real kernel, the provider twin and real Chromium:
the judge serves the fixture's web app from its clone on a port it picked and checks it in the browser; the
worker's first change breaks the page, is sent back, the fix passes; explain shows the browser's evidence and
every world of the job replays byte for byte."""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from factorykit import CALC, PROVIDER, SCENARIOS, Factory, FactoryModel, ModelTurn, call, honest_worker  # noqa: E402

pytest.importorskip("playwright.async_api", reason="playwright (pip install 'aos[browser]') is not installed")
from aos.adapters.browser import chromium_path  # noqa: E402
from aos.agents.factory.spec import JobSpecError, parse_job  # noqa: E402
from aos.kernel.client import Connection, run  # noqa: E402
from aos.kernel.host.offline import read_world  # noqa: E402
from aos.kernel.world import World, decode_record, load_runtimes, parse_manifest, replay  # noqa: E402
from aos.testing import KernelProcess  # noqa: E402

# the page's sum comes from calc.add, which the worker's first attempt "tidies" into a product
APP = '''import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from calc import add

FORM = ("<!doctype html><title>Adder</title><form action='/sum'><label for=a>A</label><input id=a name=a>"
        "<label for=b>B</label><input id=b name=b><button>Add</button></form>")


class Page(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/sum":
            q = parse_qs(url.query)
            a, b = int(q["a"][0]), int(q["b"][0])
            body = f"<!doctype html><title>Sum</title><p>{a} + {b} = {add(a, b)}</p>"
        else:
            body = FORM
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Page).serve_forever()
'''

BROWSER_HOLDOUT = {"kind": "browser", "name": "the page adds", "serve": "python3 -B app.py {port}",
                   "steps": [{"fill": {"A": "2", "B": "3"}}, {"click": "Add"},
                             {"expect": {"path": "/sum", "title": "Sum", "text": "2 + 3 = 5"}}],
                   "holdout": True, "description": "the web page must still add", "timeout_s": 60}
ONE_TASK = {"tasks": [{"id": "t1", "title": "add mul", "description": "Create mul.py with mul(a, b) = a * b."}]}


def make_web_repo(root):
    repo = root / "repo"
    repo.mkdir(parents=True)
    (repo / "calc.py").write_text(CALC)
    (repo / "app.py").write_text(APP)
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["-C", str(repo), "add", "."], check=True)
    subprocess.run(git + ["-C", str(repo), "commit", "-qm", "fixture"], check=True)
    return repo


def write_json_job(root, repo, scenarios):
    doc = {"job": {"intent": "Add mul() next to calc.add()", "repository": str(repo), "provider": PROVIDER},
           "budget": {"tokens": 100000, "cost_usd": 5.0, "wall_time_s": 600, "parallel_workers": 1,
                      "max_attempts": 3},
           "scenario": scenarios}
    path = root / "web.json"
    path.write_text(json.dumps(doc))
    return path


def page_breaker(task, prompt, results):
    """The first attempt adds mul and turns add into a product; told the hold-out broke, it leaves add alone."""
    if "Earlier attempts were rejected" in prompt:
        return honest_worker(task, prompt, results)
    if not results:
        return ModelTurn(tool_calls=[call("write_file", file_path="mul.py", content="def mul(a, b):\n    return a * b\n"),
                                     call("edit_file", file_path="calc.py", old_string="return a + b",
                                          new_string="return a * b")])
    return ModelTurn(text="Added mul and tidied add.")


@pytest.fixture
def factory(tmp_path):
    if chromium_path() is None:
        pytest.skip("Debian's chromium is not installed (./run setup installs it): no browser to drive")
    f = Factory(tmp_path, FactoryModel(page_breaker, ONE_TASK))
    yield f
    f.close()


def test_a_browser_holdout_sends_a_change_back_and_the_fix_passes(factory, tmp_path):
    repo = make_web_repo(tmp_path)
    job = write_json_job(tmp_path, repo, [SCENARIOS[1], BROWSER_HOLDOUT])
    done = factory.run(job)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert factory.model.errors == [] and factory.model.calls["replan"] == 1
    assert "t1 attempt 1 REJECTED" in done.stdout and "t1 attempt 2 ACCEPTED" in done.stdout
    retry = next(p for p in factory.model.prompts if "Earlier attempts were rejected" in p)
    assert "hold-out scenario 'the page adds' fails: the web page must still add" in retry
    assert all("2 + 3 = 5" not in p for p in factory.model.prompts)  # workers never saw its expectation

    explain = factory.cli("factory", "explain", "web").stdout
    rejected, _, accepted = explain.partition("t1 attempt 2")
    assert "FAIL the page adds (hold-out): browser at http://127.0.0.1:" in rejected
    assert "step 3 expect: the page does not show '2 + 3 = 5'" in rejected
    assert "2 + 3 = 6" in rejected  # the page the browser saw
    assert "pass the page adds (hold-out): browser at http://127.0.0.1:" in accepted
    assert "/sum?a=2&b=3 (4/4 steps), screenshot sha256:" in accepted

    # the verdict's evidence is in the judge's journal: the steps, the final page and the screenshot in CAS
    data = str(factory.data)
    judge = read_world(data, "factory", "web.judge")
    verdicts = [r.value["data"] for r in map(decode_record, judge.records)
                if getattr(r, "schema", "") == "factory/Audit@1" and r.value["kind"] == "judgment"]
    first = next(x for x in verdicts[0]["evidence"] if x["name"] == "the page adds")
    assert not first["passed"] and [st["ok"] for st in first["browser"]["steps"]] == [True, True, True, False]
    assert "2 + 3 = 6" in first["browser"]["snapshot"] and first["browser"]["screenshot"].startswith("sha256:")
    assert all(next(x for x in v["evidence"] if x["name"] == "the page adds")["passed"] for v in verdicts[1:])

    ids = list(json.load(open(os.path.join(data, "jobs", "web", "job.json")))["worlds"].values())
    fresh = {}
    for wid in ids:
        offline = read_world(data, "factory", wid)
        manifest = parse_manifest(offline.manifest)
        world = World(manifest, load_runtimes(manifest, {}), wid)
        assert replay(world, [decode_record(r) for r in offline.records]) == ()
        fresh[wid] = world.state_hash()
    kernel = KernelProcess(data, extra_args=["--grant-host", os.path.join(data, "jobs")]).start()
    try:
        async def live() -> dict:
            async with await Connection.open(kernel.address) as conn:
                worlds = await (await conn.restore_kernel(kernel.admin_token)).worlds("factory")
                return {wid: (await (await worlds.open(wid)).snapshot())[0] for wid in ids}

        assert run(live()) == fresh
    finally:
        kernel.stop()


@pytest.mark.parametrize("change, field", [
    ({"serve": "python3 app.py"}, "scenario[0].serve must say where {port} goes"),
    ({"url": "http://127.0.0.1:1/"}, "scenario[0]: a browser scenario has either serve"),
    ({"steps": [{"jump": "/"}]}, "scenario[0].steps[0]: a step is a table with one of"),
    ({"steps": [{"click": "Add"}]}, "scenario[0].steps: no expect step"),
    ({"steps": [{"expect": {"txt": "x"}}]}, "scenario[0].steps[0].expect: unknown expectation 'txt'"),
    ({"steps": [{"fill": {"A": 2}}]}, "scenario[0].steps[0].fill is a table label = text"),
    ({"kind": "selenium"}, "scenario[0].kind 'selenium'"),
    ({"expect_stdout": "x"}, "[scenario[0]]: unknown field 'expect_stdout'"),
])
def test_a_malformed_browser_scenario_is_refused_naming_the_field(tmp_path, change, field):
    repo = make_web_repo(tmp_path)
    doc = {"job": {"intent": "x", "repository": str(repo)}, "scenario": [{**BROWSER_HOLDOUT, **change}]}
    with pytest.raises(JobSpecError) as err:
        parse_job(doc, str(tmp_path), "web")
    assert field in str(err.value)


def test_in_the_harness_an_app_that_dies_fails_its_scenario_and_a_url_scenario_needs_no_server():
    """The judge's browser runs without a kernel: receipts by hand, the journal replays."""
    from aos.agents.factory import worlds as W
    from aos.agents.factory.protocol import MSG
    from aos.kernel.world import World, load_runtimes, parse_manifest, replay
    from aos.kernel.world.testing import Harness

    served = {**BROWSER_HOLDOUT, "port": 40001, "path": "/", "url": "", "run": "(browser) ...", "expect_exit": 0,
              "expect_stdout": ""}
    remote = {**served, "name": "remote page", "serve": "", "url": "http://127.0.0.1:40002/form", "holdout": False,
              "steps": [{"expect": {"title": "Form"}}]}
    doc = W.judge_manifest("j", "anthropic", "/clones/judge", ["j.planner", "j.governor", "factory-memory"],
                           ["http://127.0.0.1:40001", "http://127.0.0.1:40002"])
    assert doc["grants"]["browser"]["params"]["origins"] == ["http://127.0.0.1:40001", "http://127.0.0.1:40002"]
    m = parse_manifest(doc)
    h = Harness(World(m, load_runtimes(m, {}), "j.judge"))
    h.send(MSG, {"kind": "init", "from": "x", "body": {"config": {
        "world": "j.judge", "job": "j", "provider": "anthropic", "model": "m", "planner": "j.planner",
        "governor": "j.governor", "memory": "factory-memory", "root": "/clones/judge", "base_commit": "abc",
        "intent": "x", "scenarios": [served, remote]}}})

    def one(effect, start=""):
        (i,) = [r for r in h.world.open_intents() if r.effect == effect and r.params.get("argv", [""])[0].startswith(start)]
        return i

    h.receipt(one("sys/host.exec@1", "git reset"), "ok", {"exit_code": 0, "stdout": "", "stderr": ""})
    serve = one("sys/host.exec@1", "python3 -B app.py 40001")
    h.receipt(serve, "error", {"error": "exit_status", "exit_code": 1, "stdout": "", "stderr": "ImportError: calc"})
    h.receipt(one("sys/host.exec@1", "python3 -B -c 'import socket"), "error",
              {"error": "exit_status", "exit_code": 1, "stdout": "", "stderr": "nothing listens on 127.0.0.1:40001"})
    # the served one is over (no cancel: its server is gone); the url one goes straight to the browser
    assert not [r for r in h.world.open_intents() if r.effect == "sys/effect.cancel@1"]
    nav = one("sys/browser.navigate@1")
    assert nav.params == {"url": "http://127.0.0.1:40002/form"}
    h.receipt(nav, "ok", {"url": "http://127.0.0.1:40002/form", "title": "Form", "status": 200})
    page = {"url": "http://127.0.0.1:40002/form", "title": "Form", "snapshot": "- heading \"Form\""}
    h.receipt(one("sys/browser.snapshot@1"), "ok", page)
    h.receipt(one("sys/browser.snapshot@1"), "ok", page)
    h.receipt(one("sys/browser.screenshot@1"), "ok", {"hash": "sha256:" + "ab" * 32, "size": 9, "url": page["url"]})
    h.receipt(one("sys/browser.logs@1"), "ok", {"entries": [], "dropped": 0, "url": page["url"]})
    baseline = [r.value["data"] for r in h.journal if getattr(r, "schema", "") == "factory/Audit@1"
                and r.value["kind"] == "baseline"]
    assert baseline == [{"integration": 0, "passing": ["remote page"]}]
    state = h.world.snapshot()
    fresh = World(m, load_runtimes(m, {}), "j.judge")
    assert replay(fresh, h.journal) == () and fresh.snapshot() == state

"""Prometheus metrics of a real kernel (``aos-kernel --metrics``): scraped over HTTP and parsed with the
standard client library's parser, after real events, an LLM call on a provider twin and a portal message."""

from __future__ import annotations

import os
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aos.adapters.llm.testing import ModelTurn, ProviderTwin
from aos.agents import COMMAND, build_world, coding_agent
from aos.kernel.client import Connection, run
from aos.testing import KernelProcess, KernelStartError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host"))
from worldkit import bundle, wait_for  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from consolekit import SCRIPT, WORKFLOW, effect, scripted_manifest  # noqa: E402

KEY = "sk-test-metrics"


def metrics_url(kernel: KernelProcess) -> str:
    line = next(line for line in kernel.output if line.startswith("metrics "))
    return line.split(" ", 1)[1]


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)] as the client library parses the exposition."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return sum(v for have, v in samples.get(name, []) if all(have.get(k) == w for k, w in labels.items()))


@pytest.fixture
def metered(data_dir, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    twin = ProviderTwin("anthropic", api_key=KEY).start()
    env = dict(os.environ, ANTHROPIC_BASE_URL=twin.base_url, ANTHROPIC_API_KEY=KEY)
    kernel = KernelProcess(data_dir, env=env, extra_args=["--grant-host", str(repo), "--metrics", "127.0.0.1:0"]).start()
    try:
        yield kernel, twin, repo
    finally:
        kernel.kill()
        twin.stop()


def test_counters_move_with_events_llm_calls_and_storage(metered):
    """After events, an agent's LLM call and blobs, the scrape shows events per universe, journal appends and
    bytes, group-commit histograms, worlds by state, LLM calls and tokens, and CAS bytes per universe, and
    a second scrape after more events shows the event counter grown by exactly that many."""
    kernel, twin, repo = metered
    twin.script(ModelTurn(text="hello from the twin"))
    url = metrics_url(kernel)
    before = scrape(url)
    assert value(before, "aos_world_events_total") == 0

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            doc, wasm = bundle("counter")
            counter, _ = await (await admin.worlds("metrics")).create(doc, wasm, "c1")
            for _ in range(5):
                await counter.send("demo/CounterEvent@1", {"by": 1})
            await (await admin.cas("metrics")).put(b"x" * 10_000)
            agent_doc, start = build_world(coding_agent("anthropic"), repo, "anthropic", session="main", task="hi")
            agent, _ = await (await admin.worlds("agents")).create(agent_doc, {}, "a1")
            await agent.send(COMMAND, start)

            async def answered():  # the call is counted when it settles, its receipt once journaled after that
                scraped = scrape(url)
                return (len(twin.requests) == 1 and value(scraped, "aos_llm_calls_total") >= 1
                        and value(scraped, "aos_world_receipts_total", universe="agents") >= 1)

            await wait_for(answered, timeout=30)
            return counter

    async def more(n: int):
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            world = await (await admin.worlds("metrics")).open("c1")
            await world.send_batch([("demo/CounterEvent@1", {"by": 1})] * n)

    run(main())

    async def cas_counted():
        return "aos_cas_bytes" in scrape(url)

    run(wait_for(cas_counted))
    after = scrape(url)
    assert value(after, "aos_world_events_total", universe="metrics") == 5
    assert value(after, "aos_world_events_total", universe="agents") == 1
    assert value(after, "aos_world_receipts_total", universe="agents") >= 1  # the LLM receipt
    assert value(after, "aos_journal_appends_total") > value(before, "aos_journal_appends_total")
    assert value(after, "aos_journal_bytes_total") > value(before, "aos_journal_bytes_total")
    assert value(after, "aos_commit_batch_ops_count") > value(before, "aos_commit_batch_ops_count")
    assert value(after, "aos_commit_sync_seconds_count") == value(after, "aos_commit_turns_total")
    assert value(after, "aos_commit_sync_seconds_sum") > 0
    assert value(after, "aos_worlds", universe="metrics", state="awake") == 1
    assert value(after, "aos_llm_calls_total", provider="anthropic", status="ok") == 1
    assert value(after, "aos_llm_tokens_total", provider="anthropic", direction="input") > 0
    assert value(after, "aos_llm_tokens_total", provider="anthropic", direction="output") > 0
    assert value(after, "aos_cas_bytes", universe="metrics") >= 10_000
    run(more(7))
    again = scrape(url)
    assert value(again, "aos_world_events_total", universe="metrics") == 12


def test_portal_messages_and_effects_in_flight(metered):
    """A portal message between two worlds counts as sent (a resend of the same intent does not), and a
    pending timer shows as a timer.set effect in flight (waiting) while it is due."""
    kernel, _, repo = metered
    url = metrics_url(kernel)

    async def main():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            worlds = await admin.worlds("default")
            doc = scripted_manifest(str(repo))
            sender, _ = await worlds.create(doc, {}, "sender")
            receiver, _ = await worlds.create(doc, {}, "receiver")
            await sender.send(SCRIPT, {"effects": [effect("sys/portal.send@1", dest_world="receiver", schema=SCRIPT,
                                                          value={"id": "hi"})]})

            async def delivered():
                return (await receiver.state(WORKFLOW) or {}).get("n") == 1

            await wait_for(delivered)
            far = 3_600 * 10**9 + __import__("time").time_ns()
            await sender.send(SCRIPT, {"effects": [effect("sys/timer.set@1", deliver_at_ns=far)]})

    run(main())
    samples = scrape(url)
    assert value(samples, "aos_portal_messages_sent_total", universe="default", result="accepted") == 1
    assert value(samples, "aos_effects_in_flight", kind="timer.set", phase="waiting") == 1
    assert value(samples, "aos_world_events_total", universe="default") == 3  # two sends, one portal event


def test_a_bad_metrics_address_is_one_line_and_exit_1(data_dir):
    """``--metrics`` with no port is refused before the kernel starts, in one line."""
    kernel = KernelProcess(data_dir, extra_args=["--metrics", "localhost"])
    with pytest.raises(KernelStartError) as failed:
        kernel.start()
    assert "--metrics" in str(failed.value) and "HOST:PORT" in str(failed.value)

"""``aos factory run|status|ls|explain``: software-factory jobs (``aos.agents.factory``, docs/factory.md).

``run JOB`` reads the job file, starts a kernel of its own (data under ``$AOS_FACTORY_DATA``,
default ``~/.local/share/aos/factory``, granting the job's clones only) or uses ``--connect``,
makes the job's worlds and prints their audit trail live until the planner ends the job.
Exit status: 0 done, 1 failed, 3 stopped (a budget ran out, or Ctrl-C/SIGTERM: 130/143).
``status``, ``ls`` and ``explain`` read the journals straight from the data directory
(read-only, beside a running kernel too): nothing is woken, nothing can call a model.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

from aos.errors import AosError, InvalidArgument, UnknownWorld
from aos.kernel.config import default_data_dir

EXIT_ON_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


def factory_data_dir() -> str:
    return os.environ.get("AOS_FACTORY_DATA") or os.path.join(os.path.dirname(default_data_dir()), "factory")


def add_parser(sub: Any) -> None:
    f = sub.add_parser("factory", help="software-factory jobs: planner, workers, judge, governor, memory "
                                       "(docs/factory.md)").add_subparsers(dest="action", required=True)
    run = f.add_parser("run", help="run a job until it is done, failed or stopped by its budget",
                       epilog="Exit status: 0 done, 1 failed, 3 stopped by a budget; 130/143 interrupted.")
    run.add_argument("job", metavar="JOB", help="the job file (TOML or JSON: docs/factory.md)")
    run.add_argument("--id", default=None, help="job id (default: the file's name, or [job] id)")
    run.add_argument("--model", default=None, help="the model of every role (default: the job's, else the "
                                                   "provider profile's)")
    run.add_argument("--data", default=None, help="the private kernel's data directory (default: $AOS_FACTORY_DATA)")
    run.add_argument("--workdir", default=None, help="where the clones go (default: DATA/jobs; with --connect the "
                                                     "kernel must grant it: aos-kernel --grant-host DIR)")
    run.add_argument("--connect", default=argparse.SUPPRESS, metavar="ADDR", help="use this running kernel")
    run.add_argument("--scheduler", default=None, metavar="ADDR",
                     help="run on a cluster: the scheduler places each world on a host (A,B for several "
                          "schedulers; the token is the scheduler's, --token-file); every host must grant --workdir")
    for name, help_ in (("status", "a job's state, from its journals"),
                        ("explain", "what happened in a job, from its journals alone")):
        p = f.add_parser(name, help=help_)
        p.add_argument("job", metavar="JOB_ID")
        p.add_argument("--data", default=None)
        if name == "status":
            p.add_argument("--explain", action="store_true", help="and what happened")
    ap = f.add_parser("approve", help="approve (or --reject) the change of a job waiting for a person "
                                      "([policy] approve = true)")
    ap.add_argument("job", metavar="JOB_ID")
    ap.add_argument("--reject", default=None, metavar="REASON", help="reject it instead, saying why")
    ap.add_argument("--by", default=None, help="who decides (default: $USER)")
    ap.add_argument("--note", default="")
    ap.add_argument("--data", default=None, help="the data directory of the run's kernel (default: $AOS_FACTORY_DATA)")
    ap.add_argument("--connect", default=argparse.SUPPRESS, metavar="ADDR", help="the kernel the job runs on")
    ls = f.add_parser("ls", help="the jobs in the data directory")
    ls.add_argument("--data", default=None)


def main(args: argparse.Namespace) -> int:
    if args.action == "run":
        return run(args)
    if args.action == "ls":
        return ls(args)
    if args.action == "approve":
        return approve(args)
    return status(args)


# --- run ----------------------------------------------------------------------------------------------


def render(ev: dict[str, Any]) -> str:
    """One line for people per audit event."""
    from aos.agents.factory.explain import explain_lines

    lines = explain_lines("", [ev])[1:]
    return "\n".join(line[2:] if line.startswith("  ") else line for line in lines)


class Progress:
    """The live view's status line: tasks planned, running, being judged, accepted; tokens of the changes."""

    def __init__(self) -> None:
        self.tasks: list[str] = []
        self.state: dict[str, str] = {}
        self.tokens = 0
        self.started = 0.0

    def add(self, ev: dict[str, Any]) -> None:
        import time

        d, k = ev["data"], ev["kind"]
        self.started = self.started or time.monotonic()
        if k == "plan":
            self.tasks += [t["id"] for t in d["tasks"] if t["id"] not in self.tasks]
        elif k in ("task_dispatched", "judging", "accepted", "rejected"):
            self.state[d["task"]] = {"task_dispatched": "running", "judging": "judging"}.get(k, k)
        elif k == "change":
            self.tokens += int(d["usage"]["input_tokens"]) + int(d["usage"]["output_tokens"])

    def line(self) -> str:
        import time

        count = {s: sum(1 for t in self.tasks if self.state.get(t) == s) for s in ("running", "judging", "accepted")}
        return (f"-- {len(self.tasks)} task(s): {count['running']} running, {count['judging']} at the judge, "
                f"{count['accepted']} accepted; workers used {self.tokens} tokens; "
                f"{time.monotonic() - self.started:.0f} s")


def run(args: argparse.Namespace) -> int:
    from aos import cli_connect
    from aos.agents.factory.runner import UNIVERSE, run_job
    from aos.agents.factory.spec import load_job
    from aos.kernel.client import Connection
    from aos.kernel.client import run as run_client
    from aos.kernel.process import KernelProcess, KernelStartError

    spec = load_job(args.job, args.id)
    data = os.path.realpath(args.data or factory_data_dir())
    connect = getattr(args, "connect", None)
    workdir = os.path.realpath(args.workdir or os.path.join(data, "jobs"))
    if (connect or args.scheduler) and not args.workdir:
        raise InvalidArgument(f"with --{'scheduler' if args.scheduler else 'connect'}, say where the clones go "
                              "with --workdir DIR (a directory the kernel grants: aos-kernel --grant-host DIR)")
    if connect and args.scheduler:
        raise InvalidArgument("--connect names one kernel, --scheduler a cluster: pass one of them")
    jobdir = os.path.join(workdir, spec.job_id)
    caught: list[int] = []
    tty = sys.stdout.isatty() and not args.json

    progress = Progress()

    async def on_event(ev: dict[str, Any]) -> None:
        if args.json:
            from aos.cli import dump_json

            print(dump_json({"event": "factory", **ev}), flush=True)
            return
        line = render(ev)
        progress.add(ev)
        if tty:  # the event above a status line that is redrawn under it
            prefix = f"[{ev['world'].split('.', 1)[-1]}] "
            text = prefix + line.replace("\n", "\n" + " " * len(prefix)) + "\n" if line else ""
            sys.stdout.write("\r\033[K" + text + progress.line())
            sys.stdout.flush()
        elif line:
            print(line, flush=True)

    async def main(address: str, token: str, tls: Any) -> int:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        assert me is not None

        def on_signal(sig: int) -> None:
            if not caught:
                caught.append(sig)
                me.cancel()

        for sig in EXIT_ON_SIGNAL:
            loop.add_signal_handler(sig, on_signal, sig)
        if args.scheduler:
            from aos.agents.factory.runner import ClusterPlace
            from aos.kernel.scheduler.client import SchedulerSession

            async with await SchedulerSession.open(address, token, tls=tls) as session:
                return await follow(None, ClusterPlace(session, UNIVERSE))
        async with await Connection.open(address, tls=tls) as conn:
            return await follow(await conn.restore_kernel(token), None)

    async def follow(admin: Any, place: Any) -> int:
        if True:
            if not args.json:
                print(f"job {spec.job_id}: {spec.intent!r} on {spec.repository} ({spec.provider}, "
                      f"{len(spec.scenarios)} scenario(s), {sum(s.holdout for s in spec.scenarios)} hold-out)",
                      flush=True)
            try:
                outcome = await run_job(admin, spec, jobdir, on_event, model=args.model, place=place)
            except asyncio.CancelledError:
                if not caught:
                    raise
                if admin is not None:
                    await _interrupt(admin, spec.job_id, UNIVERSE)
                print("aos: interrupted: the job was stopped", file=sys.stderr, flush=True)
                return EXIT_ON_SIGNAL[signal.Signals(caught[0])]
        if tty:
            sys.stdout.write("\r\033[K")
        if args.json:
            from aos.cli import dump_json

            print(dump_json({"event": "end", "job": outcome.job, "status": outcome.status, "reason": outcome.reason,
                             "accepted": outcome.accepted, "patch": outcome.patch_path}), flush=True)
        else:
            print(f"job {outcome.job}: {outcome.status}: {outcome.reason}", flush=True)
            if outcome.accepted:
                print(f"the change: {outcome.patch_path} (git apply it in {spec.repository})", flush=True)
            print(f"explain it with: aos factory explain {outcome.job}" +
                  ("" if args.data is None else f" --data {data}"), flush=True)
        if outcome.status != "done":
            print(f"aos: job {outcome.job} {outcome.status}: {outcome.reason}", file=sys.stderr, flush=True)
        return outcome.exit_code

    kernel = None
    try:
        if connect or args.scheduler:
            explicit = args.token_file is not None or "AOS_TOKEN_FILE" in os.environ
            token = cli_connect.read_token(args.token_file or cli_connect.default_token_file(), explicit)
            return run_client(main(args.scheduler or connect, token, cli_connect.tls_options(args)))
        os.makedirs(workdir, exist_ok=True)
        kernel = KernelProcess(data, extra_args=["--grant-host", workdir, "--health", ""], env=dict(os.environ),
                               exit_with_parent=True)
        try:
            kernel.start()
        except KernelStartError as exc:
            kernel = None
            if exc.locked_by is None:
                raise
            raise AosError(f"another factory run is using {data} (its kernel: pid {exc.locked_by}); wait for it or "
                           "pass --data DIR") from None
        if not args.json:
            print(f"started a kernel for the factory (data {data})", file=sys.stderr, flush=True)
        return run_client(main(kernel.address, kernel.admin_token, None))
    finally:
        if kernel is not None:
            kernel.stop()


async def _interrupt(admin: Any, job: str, universe: str) -> None:
    """Ctrl-C: tell the planner to stop (it aborts the running workers) before the kernel goes."""
    from aos.agents.factory.protocol import MSG, world_id

    task = asyncio.current_task()
    if task is not None:
        while task.uncancel():
            pass
    with contextlib.suppress(AosError, asyncio.TimeoutError):
        worlds = await admin.worlds(universe)
        planner = await worlds.open(world_id(job, "planner"))
        await asyncio.wait_for(planner.send(MSG, {"kind": "stop", "from": "factory",
                                                  "body": {"reason": "interrupted"}}), 5)


# --- reading journals ---------------------------------------------------------------------------------


def read_job(data: str, job: str, verify: bool = True) -> dict[str, list[Any]]:
    from aos.agents.factory.status import read_offline

    return read_offline(data, job, verify)


def status(args: argparse.Namespace) -> int:
    from aos.agents.factory.explain import collect, explain_lines, summary
    from aos.agents.factory.status import job_state

    data = os.path.realpath(args.data or factory_data_dir())
    events = collect(read_job(data, args.job, verify=args.action == "explain"))
    s = {**summary(events), "state": job_state(events)}  # state: as the console shows it (waiting for approval)
    if args.json:
        from aos.cli import dump_json

        doc: dict[str, Any] = {"job": args.job, **s}
        if args.action == "explain" or getattr(args, "explain", False):
            doc["events"] = events
        print(dump_json(doc), flush=True)
        return 0
    if args.action == "explain" or args.explain:
        for line in explain_lines(args.job, events):
            print(line, flush=True)
        return 0
    print(f"job {args.job}: {s['state']}" + (f" ({s['reason']})" if s["reason"] else ""))
    print(f"  tasks: {', '.join(s['tasks']) or 'none yet'}; accepted: "
          f"{', '.join(a['task'] for a in s['accepted']) or 'none'}")
    print(f"  spent: {s['tokens']} tokens, ${s['cost_microusd'] / 1e6:.4f}")
    return 0


def ls(args: argparse.Namespace) -> int:
    from aos.agents.factory.explain import collect
    from aos.agents.factory.runner import UNIVERSE
    from aos.agents.factory.status import job_ids, ls_row, offline_world_ids

    data = os.path.realpath(args.data or factory_data_dir())
    try:
        ids = offline_world_ids(data, UNIVERSE)
    except UnknownWorld:
        ids = []  # no job ran here yet
    rows = [ls_row(job, collect(read_job(data, job, verify=False))) for job in job_ids(ids)]
    if args.json:
        from aos.cli import dump_json

        print(dump_json({"jobs": rows}), flush=True)
        return 0
    for r in rows:
        print(f"{r['job']}\t{r['state']}\t{r['tasks']} task(s)\t{r['tokens']} tokens\t{r['reason']}")
    if not rows:
        print("no jobs yet")
    return 0


def approve(args: argparse.Namespace) -> int:
    """Send a person's decision to the job's governor, with the approval code from its configuration (reading it
    needs the kernel's admin token: only the operator can decide)."""
    from aos import cli_connect
    from aos.agents.factory.protocol import MSG, world_id
    from aos.agents.factory.runner import UNIVERSE
    from aos.kernel.client import Connection
    from aos.kernel.client import run as run_client

    data = os.path.realpath(args.data or factory_data_dir())
    connect = getattr(args, "connect", None)
    if connect:
        explicit = args.token_file is not None or "AOS_TOKEN_FILE" in os.environ
        address = connect
        token = cli_connect.read_token(args.token_file or cli_connect.default_token_file(), explicit)
    else:
        address = f"unix:{os.path.join(data, 'kernel.sock')}"
        try:
            with open(os.path.join(data, "admin.token")) as f:
                token = f.read().strip()
        except OSError:
            raise UnknownWorld(f"no factory kernel in {data}: is `aos factory run` still running?") from None
        if not os.path.exists(os.path.join(data, "kernel.sock")):
            raise UnknownWorld(f"no factory kernel running in {data}: a job waits for approval only while "
                               "`aos factory run` runs")
    by = args.by or os.environ.get("USER") or "a person"

    async def main() -> dict[str, Any]:
        async with await Connection.open(address) as conn:
            worlds = await (await conn.restore_kernel(token)).worlds(UNIVERSE)
            try:
                gov = await worlds.open(world_id(args.job, "governor"))
                state = await gov.state("factory/governor@1")
            except UnknownWorld:
                raise UnknownWorld(f"no job {args.job!r} on this kernel") from None
            if not state or not state.get("approval"):
                raise InvalidArgument(f"job {args.job} is not waiting for approval")
            kind = "reject" if args.reject is not None else "approve"
            note = args.reject if args.reject is not None else args.note
            await gov.send(MSG, {"kind": kind, "from": "person", "body": {
                "code": state["config"]["approval_code"], "by": by, "note": note}})
            return {"job": args.job, "decision": kind, "by": by, "note": note,
                    "accepted": state["approval"]["accepted"]}

    result = run_client(main())
    if args.json:
        from aos.cli import dump_json

        print(dump_json(result), flush=True)
    else:
        print(f"job {args.job}: {'approved' if result['decision'] == 'approve' else 'rejected'} by {by} "
              f"({', '.join(result['accepted'])})", flush=True)
    return 0

"""``aos cluster``, ``aos universe`` and the cluster side of ``aos world``.

    aos cluster up [--hosts 3] [--data DIR]   etcd, a local S3 server, a scheduler, host kernels
    aos cluster status [--json]               each process (pid), each host's worlds and load
    aos cluster down                          stop them all
    aos universe create U [--max-worlds N] [--max-bytes N]    aos universe ls    aos universe rm U
    aos world where [U/]W        aos world move [U/]W --to HOST

``aos cluster up`` keeps what it started in ``DIR/cluster.json`` (DIR is
``--data``, ``$AOS_CLUSTER_DATA`` or ``~/.local/share/aos/cluster``) and prints
the two variables that point every other command at the scheduler
(``AOS_CONNECT``, ``AOS_TOKEN_FILE``). With them set, ``aos world create
BUNDLE --universe U`` places a world through the scheduler, and ``send``,
``state``, ``journal`` and the rest are introduced to the world's host and
talk to it directly. ``cluster``/``universe`` commands and ``where``/``move``
find the cluster from ``cluster.json`` when no ``--connect`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aos.kernel.scheduler.client  # noqa: F401  (the CLI restores scheduler and universe tokens too)
from aos.errors import AosError, InvalidArgument, KernelUnavailable

STATE_FILE = "cluster.json"


def default_data() -> str:
    return os.environ.get("AOS_CLUSTER_DATA") or os.path.join(os.path.expanduser("~"), ".local", "share", "aos",
                                                              "cluster")


# --- parsers -----------------------------------------------------------------------------------


def add_parsers(sub: Any, world: Any) -> None:
    cluster = sub.add_parser("cluster", help="a local cluster: etcd, S3, a scheduler and host kernels").add_subparsers(
        dest="action", required=True)
    up = cluster.add_parser("up", help="start a local cluster and print how to connect")
    up.add_argument("--hosts", type=int, default=3, help="host kernels to start (default 3)")
    up.add_argument("--data", default=None, help="directory for everything it starts (default: $AOS_CLUSTER_DATA)")
    up.add_argument("--capacity", type=float, default=100.0, help="world load each host takes (default 100)")
    up.add_argument("--no-storage", action="store_true",
                    help="hosts keep worlds in their own RocksDB (no S3): worlds cannot move or fail over")
    for name, text in (("status", "each process, each host's worlds and load"), ("down", "stop the local cluster")):
        cmd = cluster.add_parser(name, help=text)
        cmd.add_argument("--data", default=None, help="the cluster's directory (default: $AOS_CLUSTER_DATA)")

    universe = sub.add_parser("universe", help="universes of a cluster (through its scheduler)").add_subparsers(
        dest="action", required=True)
    create = universe.add_parser("create", help="create a universe")
    create.add_argument("universe_id", metavar="UNIVERSE")
    create.add_argument("--name", default="", help="a name for people")
    create.add_argument("--max-worlds", type=int, default=0, help="world quota (0: none)")
    create.add_argument("--max-bytes", type=int, default=0, help="stored-bytes quota (0: none)")
    universe.add_parser("ls", help="list universes with quotas and usage")
    rm = universe.add_parser("rm", help="delete an empty universe")
    rm.add_argument("universe_id", metavar="UNIVERSE")
    for parser in (create, rm, *universe._action.choices.values()):
        if "--data" not in parser._option_string_actions:
            parser.add_argument("--data", default=None, help=argparse.SUPPRESS)

    where = world.add_parser("where", help="which host runs a world (cluster)")
    where.add_argument("world", help="WORLD or UNIVERSE/WORLD")
    move = world.add_parser("move", help="move a world to another host (cluster; needs shared storage)")
    move.add_argument("world", help="WORLD or UNIVERSE/WORLD")
    move.add_argument("--to", default="", metavar="HOST", help="the host (default: wherever placement puts it)")
    for parser in (where, move):
        parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    for parser in world._action.choices.values():  # `aos world ACTION ... --universe U` as well as before ACTION
        if "--universe" not in parser._option_string_actions:
            parser.add_argument("--universe", "-u", default=argparse.SUPPRESS, help="the universe (as before the command)")
    create_world = world._action.choices["create"]
    create_world.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                              help="cluster: the host must carry this label (repeatable)")
    create_world.add_argument("--pin", default="", metavar="HOST", help="cluster: run on this host only")


# --- the local cluster -------------------------------------------------------------------------


def _state_path(args: argparse.Namespace) -> str:
    return os.path.join(os.path.abspath(getattr(args, "data", None) or default_data()), STATE_FILE)


def read_state(args: argparse.Namespace) -> dict[str, Any]:
    path = _state_path(args)
    try:
        with open(path) as f:
            return json.load(f)  # type: ignore[no-any-return]
    except FileNotFoundError:
        raise KernelUnavailable(f"no local cluster at {os.path.dirname(path)}: start one with `aos cluster up`") from None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child not yet reaped) is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _spawn(cmd: list[str], log_path: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    finally:
        log.close()


def _wait_lines(proc: subprocess.Popen[bytes], log_path: str, want: list[str], timeout: float = 60.0) -> list[str]:
    """The log's lines once every line in ``want`` is among them (prefix match)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path, errors="replace") as f:
            lines = [line.rstrip("\n") for line in f]
        if all(any(line.startswith(w) for line in lines) for w in want):
            return lines
        if proc.poll() is not None:
            tail = " | ".join(lines[-5:])
            raise AosError(f"{os.path.basename(log_path)[:-4]} exited with status {proc.returncode}: {tail}")
        time.sleep(0.05)
    raise AosError(f"{os.path.basename(log_path)[:-4]} did not start in {timeout:.0f} s (log: {log_path})")


def _after(lines: list[str], prefix: str) -> str:
    return next(line[len(prefix):] for line in lines if line.startswith(prefix))


def _kernel_has_storage() -> bool:
    from aos.kernel.daemon import build_parser

    return "--storage" in build_parser()._option_string_actions


def up(args: argparse.Namespace) -> dict[str, Any]:
    from aos.kernel.scheduler.testing import EtcdProcess

    if args.hosts < 1:
        raise InvalidArgument("--hosts: at least 1")
    root = os.path.abspath(args.data or default_data())
    path = os.path.join(root, STATE_FILE)
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        running = [p["pid"] for p in _processes(old) if alive(p["pid"])]
        if running:
            raise InvalidArgument(f"a cluster already runs from {root} (pids {running}): `aos cluster down` first")
    os.makedirs(root, mode=0o700, exist_ok=True)
    env = dict(os.environ)
    state: dict[str, Any] = {"data": root, "started_ms": time.time_ns() // 1_000_000}
    started: list[int] = []
    try:
        etcd = EtcdProcess(os.path.join(root, "etcd"), os.path.join(root, "etcd.log")).start()
        started.append(etcd.proc.pid)  # type: ignore[union-attr]
        state["etcd"] = {"pid": etcd.proc.pid, "url": etcd.url}  # type: ignore[union-attr]
        storage = ""
        if not args.no_storage:
            log_path = os.path.join(root, "s3.log")
            proc = _spawn([sys.executable, "-m", "aos.kernel.storage.testing"], log_path, env)
            started.append(proc.pid)
            port = _after(_wait_lines(proc, log_path, ["port "]), "port ").strip()
            from aos.kernel.storage.testing import ACCESS_KEY, REGION, SECRET_KEY

            env.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                        "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION})
            bucket = "aos-cluster"
            state["s3"] = {"pid": proc.pid, "endpoint": f"http://127.0.0.1:{port}", "bucket": bucket}
            if _kernel_has_storage():
                os.environ.update({k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                                       "AWS_SECRET_ACCESS_KEY", "AWS_REGION")})
                from aos.kernel.storage.objects import S3Objects, make_client

                S3Objects(make_client(), bucket).ensure_bucket()
                storage = f"s3://{bucket}/aos"
        state["storage"] = storage
        sched_dir = os.path.join(root, "scheduler0")
        log_path = os.path.join(root, "scheduler0.log")
        proc = _spawn([sys.executable, "-m", "aos.kernel.scheduler.daemon", "--data", sched_dir,
                       "--etcd", etcd.url, "--listen", "tcp:127.0.0.1:0"], log_path, env)
        started.append(proc.pid)
        lines = _wait_lines(proc, log_path, ["ready", "leading"])
        scheduler = {"pid": proc.pid, "address": _after(lines, "listening "),
                     "token": os.path.join(sched_dir, "admin.token"), "log": log_path}
        state["schedulers"] = [scheduler]
        hosts = []
        pending = []
        for i in range(args.hosts):
            data = os.path.join(root, f"host{i}")
            log_path = os.path.join(root, f"host{i}.log")
            cmd = [sys.executable, "-m", "aos.kernel.daemon", "--data", data,
                   "--listen", f"unix:{os.path.join(data, 'kernel.sock')}", "--listen", "tcp:127.0.0.1:0",
                   "--scheduler", scheduler["address"], "--scheduler-token", scheduler["token"],
                   "--capacity", f"{args.capacity:g}"]
            if storage:
                cmd += ["--storage", storage, "--host-id", f"host{i}"]
            proc = _spawn(cmd, log_path, env)
            started.append(proc.pid)
            pending.append((proc, data, log_path))
        for proc, data, log_path in pending:
            lines = _wait_lines(proc, log_path, ["ready", "joined "])
            address = next(line.split(" ", 1)[1] for line in lines if line.startswith("listening tcp:"))
            hosts.append({"pid": proc.pid, "id": _after(lines, "joined ").split()[0], "address": address,
                          "data": data, "log": log_path,
                          "token": os.path.join(data, "admin.token")})
        state["hosts"] = hosts
    except BaseException:
        for pid in reversed(started):
            _end(pid)
        raise
    with open(path + ".tmp", "w") as f:
        json.dump(state, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)
    return state


def _processes(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every process of the cluster, in the order to stop them (hosts first, etcd last)."""
    out = [{"role": "host", "name": h["id"], "pid": h["pid"], "address": h["address"]} for h in state.get("hosts", [])]
    out += [{"role": "scheduler", "name": f"scheduler{i}", "pid": s["pid"], "address": s["address"]}
            for i, s in enumerate(state.get("schedulers", []))]
    if state.get("s3"):
        out.append({"role": "s3", "name": "s3", "pid": state["s3"]["pid"], "address": state["s3"]["endpoint"]})
    if state.get("etcd"):
        out.append({"role": "etcd", "name": "etcd", "pid": state["etcd"]["pid"], "address": state["etcd"]["url"]})
    return out


def _end(pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM, wait, SIGKILL; whether it had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid):
            return False
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def down(args: argparse.Namespace) -> dict[str, Any]:
    state = read_state(args)
    stopped = []
    for process in _processes(state):
        if alive(process["pid"]):
            killed = _end(process["pid"])
            stopped.append({**process, "killed": killed})
    os.unlink(_state_path(args))
    return {"stopped": stopped}


async def status(args: argparse.Namespace) -> dict[str, Any]:
    state = read_state(args)
    processes = [{**p, "running": alive(p["pid"])} for p in _processes(state)]
    result: dict[str, Any] = {"data": state["data"], "storage": state.get("storage", ""), "processes": processes}
    try:
        session = await _session(args)
    except AosError as exc:
        result["error"] = str(exc)
        return result
    try:
        cluster = await session.scheduler.status()
    finally:
        session.close()
    result.update({"leader": cluster["leader"], "hosts": cluster["hosts"], "universes": cluster["universes"],
                   "etcdKeys": cluster["etcdKeys"], "waiting": cluster["waiting"]})
    return result


# --- talking to the scheduler ------------------------------------------------------------------


async def _session(args: argparse.Namespace) -> Any:
    """A SchedulerSession from --connect/--token-file (or $AOS_CONNECT/$AOS_TOKEN_FILE), else cluster.json."""
    from aos.cli_connect import TLS_HELP, read_token, tls_options
    from aos.kernel.scheduler.client import SchedulerSession, scheduler_addresses

    address = args.connect or os.environ.get("AOS_CONNECT")
    token_file = args.token_file or os.environ.get("AOS_TOKEN_FILE")
    if not address:
        state = read_state(args)
        leader = next((s for s in state["schedulers"] if alive(s["pid"])), state["schedulers"][0])
        # all of them, live ones first: the session turns to another if this one dies or stands by
        others = [s["address"] for s in state["schedulers"] if s is not leader]
        address = ",".join([leader["address"], *others])
        token_file = token_file or leader["token"]
    if not token_file:
        raise InvalidArgument("--token-file FILE: a token of the scheduler at " + address)
    tls = tls_options(args)
    try:
        return await SchedulerSession.open(address, read_token(token_file, True), tls=tls)
    except KernelUnavailable as exc:
        if tls is None and any(a.startswith("tcp:") for a in scheduler_addresses(address)):
            raise KernelUnavailable(f"{exc} (if that scheduler speaks TLS, pass --tls-ca PEM; {TLS_HELP})") from None
        raise


def _universe_of(args: argparse.Namespace, world: str = "") -> tuple[str, str]:
    from aos.kernel.scheduler.layout import split_world_key

    default = args.universe or os.environ.get("AOS_UNIVERSE") or "default"
    return split_world_key(world, default) if world else (default, "")


async def _scheduled(args: argparse.Namespace, session: Any) -> Any:
    """Run one universe or world command against the scheduler (following its leader)."""
    from aos.cli_world import load_bundle_doc
    from aos.kernel.scheduler.agent import parse_labels

    if args.command == "status":  # `aos status` holding a scheduler token: the cluster's own status
        return {"cluster": await session.scheduler.status()}
    if args.command in ("cas", "journal"):  # a kernel's own stores: a scheduler has none
        raise InvalidArgument(f"`aos {args.command}` needs a host kernel's token (CAS and raw journals are a "
                              "kernel's); this is a scheduler: use `aos world ...` and `aos universe ...`, or "
                              "--connect a host with --token-file its admin.token")
    action = args.action
    if args.command == "universe":
        if action == "create":
            return {"universe": await session.on_leader(lambda s: s.scheduler.create_universe(
                args.universe_id, args.name, args.max_worlds, args.max_bytes))}
        if action == "rm":
            await session.on_leader(lambda s: s.scheduler.delete_universe(args.universe_id))
            return {"deleted": args.universe_id}
        return {"universes": await session.scheduler.list_universes()}
    universe, world = _universe_of(args, getattr(args, "world", "") or "")
    if action == "move":
        return {"placement": await session.on_leader(lambda s: s.scheduler.move(universe, world, args.to)),
                "moving": True}
    if action == "where":
        return {"placement": await (await session.universe(universe)).where(world)}
    if action == "create":
        doc, wasm = load_bundle_doc(args.bundle, args.grant_root)
        labels = parse_labels(args.label)

        async def create(s: Any) -> Any:
            return await (await s.universe(universe)).create_world(doc, wasm, args.id, args.name, labels, args.pin)

        placement, info = await session.on_leader(create)
        return {"placement": placement, "created": info}
    if action == "ls":
        return {"placements": await (await session.universe(universe)).list_worlds()}
    if action in ("fork", "unquarantine"):
        raise InvalidArgument(f"`aos world {action}` talks to one kernel: connect to the world's host "
                              "(`aos world where` names it)")
    from aos.cli_world import run_world
    from aos.kernel.scheduler.worlds import UniverseWorlds

    return await run_world(args, UniverseWorlds(session, universe), None)


@contextlib.asynccontextmanager
async def scheduler_session(args: argparse.Namespace, conn: Any) -> AsyncIterator[Any]:
    """A SchedulerSession on ``conn`` (whose token restored a Scheduler or Universe capability); the
    connections it opened to hosts are closed when the block ends (``conn`` is the caller's)."""
    from aos.cli_connect import addresses_of, read_token, tls_options
    from aos.kernel.scheduler.client import SchedulerSession, _restore

    token = read_token(args.token_file or os.environ.get("AOS_TOKEN_FILE") or "", True)
    # every scheduler address given, so a call that finds this one gone (or a standby) turns to the others
    others = [a for a in addresses_of(args) if a != conn.address]
    session = SchedulerSession(conn, await _restore(conn, token), token, [conn.address, *others],
                               tls=tls_options(args))
    try:
        yield session
    finally:
        for host_conn in session._hosts.values():
            host_conn.close()


async def run_on_scheduler(args: argparse.Namespace, conn: Any, held: Any) -> Any:
    """``aos world ...`` when the token restored a Scheduler or Universe capability (cli.py hands over)."""
    async with scheduler_session(args, conn) as session:
        result = await _scheduled(args, session)
    return _printed(args, result)


async def open_scheduled_world(args: argparse.Namespace, session: Any) -> Any:
    """The world ``args.world`` (``U/W``, or ``W`` in ``--universe``) through the scheduler, following moves."""
    from aos.kernel.scheduler.worlds import UniverseWorlds

    universe, world = _universe_of(args, args.world)
    return await UniverseWorlds(session, universe).open(world)


def _printed(args: argparse.Namespace, result: Any) -> Any:
    """Print what this module knows how to print and return None; hand anything else back to cli.py."""
    mine = ("placement", "placements", "universe", "universes", "deleted", "cluster")
    if not isinstance(result, dict) or not any(k in result for k in mine):
        return result
    from aos.cli import dump_json

    if args.json:
        print(dump_json(result, pretty=True))
        return None
    if "cluster" in result:
        cluster = result["cluster"]
        leader = cluster.get("leader") or {}
        print(f"scheduler leader {leader.get('address') or '(none)'}  universes {len(cluster['universes'])}  "
              f"worlds waiting for a host {cluster['waiting']}  etcd keys {cluster['etcdKeys']}")
        rows = [("HOST", "ADDRESS", "STATE", "WORLDS", "LOAD")]
        for h in cluster["hosts"]:
            rows.append((h["hostId"], h["address"], "draining" if h["draining"] else "live", str(h["worlds"]),
                         f"{h['load']:g}/{h['capacity']:g}"))
        _table(rows, "(no hosts)")
    elif "universes" in result:
        rows = [("UNIVERSE", "NAME", "WORLDS", "QUOTA", "STORED")]
        for u in result["universes"]:
            quota = f"{u['quota']['worlds'] or '-'} worlds, {u['quota']['bytes'] or '-'} bytes"
            rows.append((u["universeId"], u["name"], str(u["worlds"]), quota, str(u["storedBytes"])))
        _table(rows, "(no universes)")
    elif "universe" in result:
        print(f"created universe {result['universe']['universeId']}")
    elif "deleted" in result:
        print(f"deleted universe {result['deleted']}")
    elif "placements" in result:
        rows = [("WORLD", "HOST", "STATE", "EPOCH", "ADDRESS")]
        for p in result["placements"]:
            rows.append((p["worldId"], p["hostId"] or "-", p["state"], str(p["epoch"]), p["address"] or "-"))
        _table(rows, "(no worlds)")
    else:
        p = result["placement"]
        where = f"{p['universeId']}/{p['worldId']}"
        if "created" in result:
            print(f"created world {where} on host {p['hostId']} ({p['address']})")
        elif result.get("moving"):
            print(f"moving world {where} to host {p['hostId']} (epoch {p['epoch']}); `aos world where` shows when "
                  "it serves there")
        else:
            reason = f": {p['reason']}" if p["reason"] else ""
            print(f"{where} on host {p['hostId'] or '-'} ({p['address'] or 'not live'}), {p['state']}, "
                  f"epoch {p['epoch']}{reason}")
    return None


def _table(rows: list[tuple[str, ...]], empty: str) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if len(rows) == 1:
        print(empty)


def _print_cluster(args: argparse.Namespace, result: dict[str, Any]) -> None:
    from aos.cli import dump_json

    if args.json:
        print(dump_json(result, pretty=True))
        return
    if args.action == "up":
        print(f"cluster up in {result['data']}")
        for p in _processes(result):
            print(f"  {p['name']:<11} pid {p['pid']:<8} {p['address']}")
        scheduler = result["schedulers"][0]
        print("connect with:")
        print(f"  export AOS_CONNECT={scheduler['address']} AOS_TOKEN_FILE={scheduler['token']}")
        print("  aos universe create demo && aos world create examples/counter --universe demo")
        print("stop with: aos cluster down" + (f" --data {result['data']}" if args.data else ""))
    elif args.action == "down":
        for p in result["stopped"]:
            print(f"stopped {p['name']} (pid {p['pid']}{', killed' if p['killed'] else ''})")
        if not result["stopped"]:
            print("nothing was running")
    else:
        running = {h["hostId"]: h for h in result.get("hosts", [])}
        for p in result["processes"]:
            extra = ""
            if p["role"] == "host" and p["name"] in running:
                h = running[p["name"]]
                extra = f"  worlds {h['worlds']}  load {h['load']:g}/{h['capacity']:g}" + \
                    ("  draining" if h["draining"] else "")
            elif p["role"] == "scheduler" and result.get("leader", {}).get("address") == p["address"]:
                extra = "  leader"
            state = "running" if p["running"] else "stopped"
            print(f"{p['name']:<11} pid {p['pid']:<8} {state:<8} {p['address']}{extra}")
        if "error" in result:
            print(f"scheduler: {result['error']}")
        else:
            print(f"universes {len(result['universes'])}  worlds waiting for a host {result['waiting']}  "
                  f"etcd keys {result['etcdKeys']}")


def main(args: argparse.Namespace) -> int:
    """``aos cluster|universe ...`` and ``aos world where|move`` (cli.py hands these over)."""
    from aos.kernel.client import run

    if args.command == "cluster":
        if args.action == "up":
            result = up(args)
        elif args.action == "down":
            result = down(args)
        else:
            result = run(status(args))
        _print_cluster(args, result)
        return 0

    async def scheduled() -> Any:
        session = await _session(args)
        try:
            return await _scheduled(args, session)
        finally:
            session.close()

    _printed(args, run(scheduled()))
    return 0


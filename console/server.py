"""The console's HTTP side (aiohttp, on the same asyncio loop as the Cap'n Proto connection).

Routes: ``/login`` (spends the one-time token), the page and its assets
(``static/``), ``/api/...`` (JSON), ``/api/.../tail`` (server-sent events fed
by ``World.tail``). Everything but ``/login`` needs the session cookie (401
without it); every ``POST`` also needs the session's CSRF header (403
without it). Errors are JSON ``{"error": code, "message": ...}``, never a
traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from aos.agents import abort_event, steer_event
from aos.errors import AosError, InvalidArgument
from aos.kernel.host import jsonvalue

from aos.console import jobs, views
from aos.console.audit import AuditLog, audit_record
from aos.console.auth import COOKIE, CSRF_HEADER, Gate, Session, cookie_header
from aos.console.backend import Backend
from aos.console.cluster import SchedulerBackend

log = logging.getLogger("aos.console")

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATUS = {"PermissionDenied": 403, "Revoked": 403, "InvalidToken": 403, "UnknownWorld": 404, "BlobNotFound": 404,
          "KernelUnavailable": 503, "Internal": 500}
SCHEDULER = {"connected": False,
             "reason": "not connected to a scheduler: this console talks to one kernel; start it with "
                       "`aos console --connect SCHEDULER_ADDR` and a scheduler token for hosts, leases, "
                       "placements, moves and failovers"}
HISTORY_POLL = 0.5  # seconds between two reads of the scheduler's history for a live page (served from its etcd mirror)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=lambda v: json.dumps(v, sort_keys=True))


def _error(code: str, message: str, status: int) -> web.Response:
    return _json({"error": code, "message": message}, status)


class Console:
    def __init__(self, backend: Backend, audit: AuditLog, gate: Gate | None = None) -> None:
        self.backend = backend
        self.audit = audit
        self.gate = gate or Gate()
        self.origins: set[str] = set()  # host:port values the page may be served under

    # --- the app -------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        r = app.router
        r.add_get("/login", self.login)
        r.add_post("/logout", self.logout)
        r.add_get("/", self.page)
        r.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
        r.add_get("/api/session", self.session)
        r.add_get("/api/universes", self.universes)
        r.add_get("/api/worlds", self.worlds)
        r.add_get("/api/cluster", self.cluster)
        r.add_get("/api/scheduling", self.scheduling)
        r.add_get("/api/scheduling/live", self.scheduling_live)
        r.add_get("/api/audit", self.audit_recent)
        w = "/api/world/{universe}/{world}"
        r.add_get(w, self.world)
        r.add_get(w + "/manifest", self.manifest)
        r.add_get(w + "/journal", self.journal)
        r.add_get(w + "/record", self.record)
        r.add_get(w + "/state", self.state)
        r.add_get(w + "/sessions", self.sessions)
        r.add_get(w + "/transcript", self.transcript)
        r.add_get(w + "/tail", self.tail)
        r.add_post(w + "/send", self.send)
        r.add_post(w + "/grant", self.grant)
        r.add_post(w + "/hibernate", self.hibernate)
        r.add_post(w + "/snapshot", self.snapshot)
        r.add_post(w + "/fork", self.fork)
        r.add_post(w + "/unquarantine", self.unquarantine)
        r.add_post(w + "/agent/steer", self.steer)
        r.add_post(w + "/agent/abort", self.abort)
        r.add_post(w + "/move", self.move)
        r.add_post(w + "/pause", self.pause)
        r.add_post(w + "/resume", self.resume)
        jobs.register(self, r)  # the factory's jobs (console/jobs.py)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # a page from another site that resolves its name to 127.0.0.1 (DNS rebinding) sends its own Host
        if self.origins and request.host not in self.origins:
            return _error("Forbidden", f"unexpected Host {request.host!r}", 403)
        if request.path != "/login":
            session = self.gate.session(request.cookies.get(COOKIE))
            if session is None:
                if request.path.startswith("/api/"):
                    return _error("Unauthorized", "no console session: open the login link `aos console` printed",
                                  401)
                return web.Response(status=401, content_type="text/html", text=_LOGIN_NEEDED)
            if request.method not in ("GET", "HEAD") and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
                return _error("Forbidden", f"write calls need the {CSRF_HEADER} header of this session", 403)
            request["session"] = session
        try:
            response = await handler(request)
        except web.HTTPException:
            raise
        except AosError as exc:
            return _error(exc.code, " ".join(str(exc).split())[:500], STATUS.get(exc.code, 400))
        except (ValueError, KeyError) as exc:
            return _error("InvalidArgument", f"bad request: {exc}", 400)
        except Exception as exc:  # noqa: BLE001 -- a bug of ours: logged with a reference, never a traceback out
            ref = secrets.token_hex(4)
            log.exception("event=console_error ref=%s path=%s", ref, request.path)
            return _error("Internal", f"console error (ref {ref}; see the console's log): {type(exc).__name__}", 500)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    # --- login and the page ---------------------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.StreamResponse:
        spent = self.gate.login(request.query.get("token"))
        if spent is None:
            return web.Response(status=401, content_type="text/html", text=_LOGIN_SPENT)
        sid, _ = spent
        response = web.HTTPSeeOther("/")
        response.headers["Set-Cookie"] = cookie_header(sid)
        response.headers["Referrer-Policy"] = "no-referrer"  # the token must not leak in a Referer
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        self.gate.logout(request.cookies.get(COOKIE))
        return _json({"ok": True})

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(os.path.join(STATIC, "index.html"))

    async def session(self, request: web.Request) -> web.Response:
        session: Session = request["session"]
        backend = self.backend
        await backend.call(lambda: asyncio.sleep(0))
        assert backend.info is not None
        return _json({"csrf": session.csrf, "session": session.label, "kernel": backend.address,
                      "can": backend.permissions(), "audit": self.audit.where(backend.info.universe),
                      "scheduler": self._scheduler()})

    def _scheduler(self) -> dict[str, Any]:
        if isinstance(self.backend, SchedulerBackend):
            return {"connected": True, "address": self.backend.address, "kind": self.backend.info.kind
                    if self.backend.info else ""}
        return SCHEDULER

    # --- reads -------------------------------------------------------------------------------------------------

    async def universes(self, request: web.Request) -> web.Response:
        return _json({"universes": await self.backend.call(self.backend.universes)})

    async def worlds(self, request: web.Request) -> web.Response:
        q = request.query
        result = await self.backend.call(lambda: self.backend.worlds(
            q.get("universe", ""), q.get("state", ""), q.get("q", ""), q.get("sort", "activity"),
            q.get("order", "desc") != "asc", _int(q, "offset", 0), _int(q, "limit", 100)))
        return _json(result)

    def _cluster_backend(self) -> SchedulerBackend:
        if not isinstance(self.backend, SchedulerBackend):
            raise InvalidArgument("this console talks to one kernel, not a scheduler: start it with "
                                  "`aos console --connect SCHEDULER_ADDR` and a scheduler token")
        return self.backend

    async def cluster(self, request: web.Request) -> web.Response:
        if not isinstance(self.backend, SchedulerBackend):
            return _json(SCHEDULER)
        backend = self.backend
        return _json({"connected": True, **await backend.call(backend.cluster)})

    async def scheduling(self, request: web.Request) -> web.Response:
        """A page of the scheduling history, newest first (``before``: the oldest seq shown so far)."""
        if not isinstance(self.backend, SchedulerBackend):
            return _json(SCHEDULER)
        backend, q = self.backend, request.query
        entries = await backend.call(lambda: backend.history(_int(q, "before", 0), _int(q, "after", 0),
                                                             _int(q, "limit", 100)))
        return _json({"connected": True, "entries": entries})

    async def scheduling_live(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: each new history entry after ``after`` (``event: entry``), oldest first."""
        backend = self._cluster_backend()
        after = _int(request.query, "after", 0)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        quiet = 0.0
        try:
            await response.write(b": history open\n\n")
            while True:
                try:
                    entries = await backend.call(lambda: backend.history(0, after, 512))
                except AosError:
                    await response.write(b"event: lost\ndata: {}\n\n")
                    entries = []
                for entry in reversed(entries):
                    after = max(after, int(entry["seq"]))
                    await response.write(f"event: entry\ndata: {json.dumps(entry, sort_keys=True)}\n\n".encode())
                quiet = 0.0 if entries else quiet + HISTORY_POLL
                if quiet >= 15:
                    await response.write(b": keep-alive\n\n")
                    quiet = 0.0
                await asyncio.sleep(HISTORY_POLL)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def audit_recent(self, request: web.Request) -> web.Response:
        backend = self.backend
        await backend.call(lambda: asyncio.sleep(0))
        assert backend.info is not None
        universe = request.query.get("universe") or backend.info.universe or "default"
        records = await backend.call(lambda: self.audit.recent(universe, _int(request.query, "limit", 50)))
        return _json({"where": self.audit.where(universe), "records": records})

    def _target(self, request: web.Request) -> tuple[str, str]:
        return request.match_info["universe"], request.match_info["world"]

    async def world(self, request: web.Request) -> web.Response:
        u, w = self._target(request)
        return _json(await self.backend.call(lambda: self.backend.world(u, w)))

    async def manifest(self, request: web.Request) -> web.Response:
        u, w = self._target(request)
        return _json({"manifest": await self.backend.call(lambda: self.backend.manifest(u, w))})

    async def journal(self, request: web.Request) -> web.Response:
        u, w = self._target(request)
        before = request.query.get("before")
        return _json(await self.backend.call(lambda: self.backend.journal(
            u, w, int(before) if before else None, _int(request.query, "limit", 100))))

    async def record(self, request: web.Request) -> web.Response:
        u, w = self._target(request)
        return _json({"record": await self.backend.call(lambda: self.backend.record(u, w, _int(request.query, "seq", 0)))})

    async def state(self, request: web.Request) -> web.Response:
        u, w = self._target(request)
        return _json(await self.backend.call(lambda: self.backend.state(
            u, w, request.query.get("workflow", ""), request.query.get("key", ""))))

    async def sessions(self, request: web.Request) -> web.Response:
        u, w = self._target(request)
        return _json({"sessions": await self.backend.call(lambda: self.backend.sessions(u, w))})

    async def transcript(self, request: web.Request) -> web.Response:
        u, w = self._target(request)
        session = request.query.get("session", "main")
        return _json(await self.backend.call(lambda: self.backend.transcript(
            u, w, session, _int(request.query, "limit", 400))))

    async def tail(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``record`` (a journal row) and ``frame`` (a stream frame of a running effect),
        from ``from`` on, as ``World.tail`` pushes them; ends when the page goes away."""
        u, w = self._target(request)
        world = await self.backend.call(lambda: self.backend.world_cap(u, w))
        conn = getattr(world, "conn", None) or self.backend.conn  # the world's host, through a scheduler
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=256)

        async def on_record(seq: int, record: dict[str, Any]) -> None:
            await queue.put(("record", views.journal_row(record)))  # waiting here slows the kernel's push

        async def on_frame(intent_hash: str, frame: Any) -> None:
            if not queue.full():  # frames may be dropped; records never are
                queue.put_nowait(("frame", {"intent": intent_hash, "frame": jsonvalue.to_jsonable(frame)}))

        start = _int(request.query, "from", 0)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        subscription = await world.tail(start, on_record, on_frame)
        lost = asyncio.ensure_future(conn.disconnected()) if conn else None
        try:
            await response.write(b": tail open\n\n")
            while True:
                getter = asyncio.ensure_future(queue.get())
                waits = {getter} | ({lost} if lost else set())
                done, _ = await asyncio.wait(waits, timeout=15, return_when=asyncio.FIRST_COMPLETED)
                if lost is not None and lost in done:
                    getter.cancel()
                    await response.write(b"event: lost\ndata: {}\n\n")
                    break
                if getter not in done:
                    getter.cancel()
                    await response.write(b": keep-alive\n\n")
                    continue
                kind, data = getter.result()
                await response.write(f"event: {kind}\ndata: {json.dumps(data, sort_keys=True)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if lost is not None:
                lost.cancel()
            try:
                await subscription.cancel()
            except AosError:
                pass
        return response

    # --- interventions ---------------------------------------------------------------------------------------

    async def _act(self, request: web.Request, action: str, permission: str, params: dict[str, Any],
                   work: Callable[[], Awaitable[Any]]) -> web.Response:
        """Check, audit the request, act, audit the result: the one path of every write."""
        u, w = self._target(request)
        backend = self.backend
        await backend.call(lambda: asyncio.sleep(0))
        backend.require(permission)
        session: Session = request["session"]
        assert backend.info is not None
        who = {"console_session": session.label, "token_grant": backend.info.grant_id}
        await backend.call(lambda: self.audit.append(audit_record("request", action, u, w, who, params)))
        try:
            result = await backend.call(work)
        except AosError as exc:
            outcome = {"ok": False, "error": exc.code, "message": str(exc)[:500]}
            await backend.call(lambda: self.audit.append(audit_record("result", action, u, w, who, params, outcome)))
            raise
        backend.invalidate(u)
        outcome = {"ok": True, "result": jsonvalue.to_jsonable(result)}
        await backend.call(lambda: self.audit.append(audit_record("result", action, u, w, who, params, outcome)))
        log.info("event=console_action action=%s universe=%s world=%s session=%s", action, u, w, session.label)
        return _json(outcome)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise InvalidArgument("the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise InvalidArgument("the body must be a JSON object")
        return body

    async def send(self, request: web.Request) -> web.Response:
        u, w = self._target(request)
        body = await self._body(request)
        schema, value = str(body.get("schema", "")), jsonvalue.from_jsonable(body.get("value"))

        async def work() -> Any:
            seq, outcome = await (await self.backend.world_cap(u, w)).send_with_outcome(schema, value)
            return {"seq": seq, **outcome}

        return await self._act(request, "send", "send", {"schema": schema, "value": body.get("value")}, work)

    async def grant(self, request: web.Request) -> web.Response:
        u, w = self._target(request)
        body = await self._body(request)
        name, active = str(body.get("name", "")), bool(body.get("active"))

        async def work() -> Any:
            await (await self.backend.world_cap(u, w)).set_grant(name, active)
            return {"grant": name, "active": active}

        return await self._act(request, "restore_grant" if active else "revoke_grant", "grants",
                               {"grant": name}, work)

    async def hibernate(self, request: web.Request) -> web.Response:
        u, w = self._target(request)

        async def work() -> Any:
            return {"hibernated": await (await self.backend.worlds_cap(u)).hibernate(w)}

        return await self._act(request, "hibernate", "hibernate", {}, work)

    async def snapshot(self, request: web.Request) -> web.Response:
        u, w = self._target(request)

        async def work() -> Any:
            address, seq = await (await self.backend.world_cap(u, w)).snapshot()
            return {"snapshot": address, "seq": seq}

        return await self._act(request, "snapshot", "snapshot", {}, work)

    async def fork(self, request: web.Request) -> web.Response:
        u, w = self._target(request)
        body = await self._body(request)
        new_id, name = str(body.get("newId", "")), str(body.get("name", ""))

        async def work() -> Any:
            _, info = await (await self.backend.worlds_cap(u)).fork(w, new_id, name)
            return {"worldId": info["worldId"], "name": info["name"]}

        return await self._act(request, "fork", "fork", {"newId": new_id, "name": name}, work)

    async def unquarantine(self, request: web.Request) -> web.Response:
        u, w = self._target(request)

        async def work() -> Any:
            info = await (await self.backend.worlds_cap(u)).unquarantine(w)
            return {"state": views.world_state(info)}

        return await self._act(request, "unquarantine", "unquarantine", {}, work)

    async def _agent(self, request: web.Request, action: str, event: Callable[[dict[str, Any]], dict[str, Any]]) \
            -> web.Response:
        u, w = self._target(request)
        body = await self._body(request)
        session = str(body.get("session", ""))
        if not session:
            raise InvalidArgument("name the agent session")
        value = event(body)

        async def work() -> Any:
            seq = await (await self.backend.world_cap(u, w)).send(views.AGENT_COMMAND, value)
            return {"seq": seq}

        return await self._act(request, action, "agent", value, work)

    async def steer(self, request: web.Request) -> web.Response:
        def event(body: dict[str, Any]) -> dict[str, Any]:
            text = str(body.get("text", "")).strip()
            if not text:
                raise InvalidArgument("a steer needs text")
            return steer_event(str(body["session"]), text)

        return await self._agent(request, "agent_steer", event)

    async def abort(self, request: web.Request) -> web.Response:
        return await self._agent(request, "agent_abort", lambda body: abort_event(str(body["session"])))

    async def move(self, request: web.Request) -> web.Response:
        u, w = self._target(request)
        backend = self._cluster_backend()
        to_host = str((await self._body(request)).get("toHost", ""))

        async def work() -> Any:
            placement = await backend.move(u, w, to_host)
            return {"hostId": placement["hostId"], "epoch": placement["epoch"], "state": placement["state"]}

        return await self._act(request, "move", "move", {"toHost": to_host}, work)

    async def pause(self, request: web.Request) -> web.Response:
        return await self._pause(request, True)

    async def resume(self, request: web.Request) -> web.Response:
        return await self._pause(request, False)

    async def _pause(self, request: web.Request, paused: bool) -> web.Response:
        u, w = self._target(request)

        async def work() -> Any:
            world = await self.backend.world_cap(u, w)
            return {"paused": paused, "seq": await (world.pause() if paused else world.resume())}

        return await self._act(request, "pause" if paused else "resume", "pause", {}, work)



def _int(query: Any, name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument(f"{name} must be a whole number, not {raw[:40]!r}") from None
    if value < 0:
        raise InvalidArgument(f"{name} must not be negative")
    return value


_LOGIN_NEEDED = """<!doctype html><meta charset="utf-8"><title>AOS console: log in</title>
<body style="font-family: system-ui, sans-serif; margin: 3em"><h1>Not logged in</h1>
<p>Open the login link that <code>aos console</code> printed when it started. Each link works once;
send the console process <code>SIGUSR1</code> (<code>kill -USR1 PID</code>) to print a new one.</p></body>"""

_LOGIN_SPENT = """<!doctype html><meta charset="utf-8"><title>AOS console: link not valid</title>
<body style="font-family: system-ui, sans-serif; margin: 3em"><h1>This login link is not valid</h1>
<p>It was used already, expired, or is wrong: each link works once. Send the console process
<code>SIGUSR1</code> (<code>kill -USR1 PID</code>) to print a new one.</p></body>"""

"""A tiny web application on 127.0.0.1 for the browser suites: log in, fill an order form, read the result.

``/`` is a login form (user ``ada``, password ``lovelace``); a good login sets a
session cookie and answers 303 to ``/form``; ``/form`` (only with the cookie)
takes a name, a size (select), a quantity and a gift-wrap checkbox and posts to
``/order``, which answers 303 to ``/result?id=N``; ``/away`` redirects to
``redirect_to`` (another server, which the tests do not grant), and ``/mixed``
loads an image from there, one through a redirect (``/away.png``), and
fetches from there. Every request a
server gets is kept in ``hits``, so a test can show that none reached it.
"""

from __future__ import annotations

import html
import http.server
import secrets
import threading
from urllib.parse import parse_qs, urlsplit

USER, PASSWORD = "ada", "lovelace"

PAGE = """<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"""
LOGIN = """<form method="post" action="/login">
<label for="user">User name</label><input id="user" name="user">
<label for="password">Password</label><input id="password" name="password" type="password">
<button type="submit">Sign in</button></form>{error}"""
FORM = """<p>Signed in as {user}.</p>
<form method="post" action="/order">
<label for="name">Recipient</label><input id="name" name="name">
<label for="size">Size</label><select id="size" name="size"><option>small</option><option>large</option></select>
<label for="qty">Quantity</label><input id="qty" name="qty" type="number">
<label for="gift">Gift wrap</label><input id="gift" name="gift" type="checkbox">
<button type="submit">Place order</button></form>
<script>console.log("order form ready")</script>"""


class WebApp:
    """One server on 127.0.0.1 (port chosen by the kernel), in a thread."""

    def __init__(self, redirect_to: str = "") -> None:
        self.hits: list[tuple[str, str]] = []
        self.orders: list[dict[str, str]] = []
        self.sessions: dict[str, str] = {}
        self.redirect_to = redirect_to
        self.release = threading.Event()  # lets /stuck answer
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet; hits are kept instead
                pass

            def do_GET(self) -> None:
                app.hits.append(("GET", self.path))
                app.get(self)

            def do_POST(self) -> None:
                app.hits.append(("POST", self.path))
                n = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}
                app.post(self, form)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> WebApp:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # --- pages --------------------------------------------------------------------------------------
    def _page(self, h: http.server.BaseHTTPRequestHandler, title: str, body: str, status: int = 200) -> None:
        data = PAGE.format(title=title, body=body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _redirect(self, h: http.server.BaseHTTPRequestHandler, to: str, cookie: str = "", status: int = 303) -> None:
        h.send_response(status)
        h.send_header("Location", to)
        h.send_header("Content-Length", "0")
        if cookie:
            h.send_header("Set-Cookie", cookie)
        h.end_headers()

    def _user(self, h: http.server.BaseHTTPRequestHandler) -> str | None:
        for part in (h.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "sid" and value in self.sessions:
                return self.sessions[value]
        return None

    def get(self, h: http.server.BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        if url.path == "/":
            self._page(h, "Sign in", LOGIN.format(error=""))
        elif url.path in ("/away", "/away.png"):
            self._redirect(h, self.redirect_to + url.path[len("/away"):], status=302)
        elif url.path == "/stuck":  # answers only once the test lets it (after the browser gave up)
            self.release.wait(30)
            self._page(h, "Late", "<p>Too late.</p>")
        elif url.path == "/mixed":  # a page that reaches for the other server by itself
            other = html.escape(self.redirect_to)
            self._page(h, "Mixed", f'<img src="{other}.png" alt="pixel"><img src="/away.png" alt="hop">'
                                   f'<script>fetch("{other}.json")'
                                   f'.catch(e => console.error("fetch refused"))</script>')
        elif url.path == "/form":
            user = self._user(h)
            if user is None:
                self._redirect(h, "/")
            else:
                self._page(h, "New order", FORM.format(user=html.escape(user)))
        elif url.path == "/result":
            user = self._user(h)
            n = int((parse_qs(url.query).get("id") or ["0"])[0] or 0)
            if user is None or not 0 < n <= len(self.orders):
                self._page(h, "No such order", "<p>Nothing here.</p>", 404)
                return
            o = self.orders[n - 1]
            gift = " gift-wrapped" if o.get("gift") == "on" else ""
            self._page(h, f"Order {n} confirmed", f"<p role=\"status\">Order {n}: {html.escape(o.get('qty', ''))} x "
                                                   f"{html.escape(o.get('size', ''))}{gift} for "
                                                   f"{html.escape(o.get('name', ''))}.</p>")
        else:
            self._page(h, "Not found", "<p>Not found.</p>", 404)

    def post(self, h: http.server.BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        if h.path == "/login":
            if form.get("user") == USER and form.get("password") == PASSWORD:
                sid = secrets.token_hex(8)
                self.sessions[sid] = USER
                self._redirect(h, "/form", f"sid={sid}; Path=/; HttpOnly")
            else:
                self._page(h, "Sign in", LOGIN.format(error='<p role="alert">Wrong user name or password.</p>'))
        elif h.path == "/order" and self._user(h) is not None:
            self.orders.append(form)
            self._redirect(h, f"/result?id={len(self.orders)}")
        else:
            self._page(h, "Not found", "<p>Not found.</p>", 404)

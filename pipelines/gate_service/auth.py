"""Who may reach what on the gate service; every refusal is one line and runs before any handler.

- A gate's paths (``/<run>/gate/<epoch>`` and everything below) need that gate's secret token:
  ``?token=`` on the first load; a valid one sets a cookie scoped to the gate's path (HttpOnly,
  SameSite=Strict), so the page's own calls (Gradio's fetches and event streams, which carry no
  token in their URLs) pass. Unknown gate: 404; missing or wrong token: 403; decided: 410.
- Everything else except ``/healthz`` needs HTTP Basic auth when auth is configured (it must be
  off loopback); the gate pages do not, as their token already proves the person was sent there.
  Wrong credentials are throttled per client IP (:class:`~interaction_app.http_safety.Throttle`):
  after 5 failures in 60 s, 429 with Retry-After.
- The cookie is ``Secure`` when the request came over https or ``gate.service_url`` is https.
"""

from __future__ import annotations

import base64
import hmac
import re
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, quote

from interaction_app.http_safety import Throttle, client_ip
from interaction_app.http_safety import refuse as refuse_line

# Every path shaped like a gate's is checked here, canonical or not, so that no alias of a gate
# (/run/gate/04, /run/gate/+4) reaches a handler without its token: only canonical epochs exist.
GATE_PATH = re.compile(r"^/(?P<run>[^/]+)/gate/(?P<epoch>[^/]+)(?P<rest>/.*)?$")
EPOCH = re.compile(r"0|[1-9][0-9]{0,8}")  # ASCII only: int() also reads other digits
COOKIE = "hill_gate_token"
OPEN_PATHS = frozenset({"/healthz"})  # for probes: says nothing about any gate


class GateAccess:
    """ASGI middleware in front of the whole service (HTTP and websockets alike).

    ``gates`` is the service's registry: ``await gates.lookup(run, epoch)`` returns the gate
    (with ``ticket``, ``live``, ``error`` and ``closed_line()``) or None.
    """

    def __init__(
        self,
        app,
        gates,
        basic: tuple[str, str] | None,
        throttle: Throttle | None = None,
        secure_cookie: bool = False,
    ):
        self.app = app
        self.gates = gates
        self.basic = basic
        self.throttle = throttle or Throttle()
        self.secure_cookie = secure_cookie  # gate.service_url is https (TLS at a proxy)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope["path"]
        match = GATE_PATH.match(path)
        if match is None:
            if path in OPEN_PATHS or self.basic is None:
                return await self.app(scope, receive, send)
            return await self.basic_auth(scope, receive, send)
        run, epoch = match["run"], match["epoch"]
        gate = await self.gates.lookup(run, int(epoch)) if EPOCH.fullmatch(epoch) else None
        if gate is None:
            return await refuse(scope, send, 404, f"no gate of run {run} at epoch {epoch}")
        from_query = query_token(scope)
        if not gate.ticket.accepts(from_query or cookie_token(scope)):
            return await refuse(scope, send, 403, "this gate needs its token: open the link given")
        if gate.error:
            return await refuse(scope, send, 503, gate.error)
        if not gate.live:
            return await refuse(scope, send, 410, gate.closed_line())
        if from_query:
            secure = self.secure_cookie or scope.get("scheme") in ("https", "wss")
            send = with_cookie(send, from_query, gate.ticket.page_path(), secure)
        await self.app(scope, receive, send)

    async def basic_auth(self, scope, receive, send) -> None:
        """Pass with the right credentials; count wrong ones (not their absence: a browser asks
        once without) against the client's address, and refuse it a while after too many."""
        ip = client_ip(scope)
        if wait := self.throttle.retry_after(ip):
            return await self.throttle.refuse(scope, send, wait)
        if basic_ok(scope, self.basic):
            self.throttle.succeeded(ip)
            return await self.app(scope, receive, send)
        if header(scope, b"authorization"):
            self.throttle.failed(ip)
        await refuse(scope, send, 401, "HTTP Basic auth required", basic_challenge=True)


def query_token(scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[-1] if values else None


def cookie_token(scope) -> str | None:
    raw = header(scope, b"cookie")
    if not raw:
        return None
    try:
        morsel = SimpleCookie(raw).get(COOKIE)
    except CookieError:
        return None
    return morsel.value if morsel else None


def header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def basic_ok(scope, expected: tuple[str, str]) -> bool:
    """True when the request's Basic credentials are ``expected`` (compared in constant time)."""
    scheme, _, encoded = header(scope, b"authorization").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError:  # binascii.Error, bad UTF-8, and non-ASCII text ('Basic \x80': a 500)
        return False
    user_ok = hmac.compare_digest(user.encode(), expected[0].encode())
    password_ok = hmac.compare_digest(password.encode(), expected[1].encode())
    return bool(sep) and user_ok and password_ok


def with_cookie(send, token: str, path: str, secure: bool = False):
    """``send`` that adds the gate's cookie to the response (the token is URL-safe base64);
    ``Secure`` over https, so a browser never sends the token over plain http."""
    cookie = f"{COOKIE}={token}; Path={quote(path)}; HttpOnly; SameSite=Strict"
    if secure:
        cookie += "; Secure"

    async def send_with_cookie(message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"set-cookie", cookie.encode("latin-1"))]
            message = {**message, "headers": headers}
        await send(message)

    return send_with_cookie


async def refuse(scope, send, status: int, message: str, basic_challenge: bool = False) -> None:
    """One line: JSON ``{"error": ...}`` under an ``/api/`` path, plain text elsewhere."""
    challenge = [(b"www-authenticate", b'Basic realm="hill gates"')] if basic_challenge else []
    await refuse_line(scope, send, status, message, challenge)

"""Who may reach what on the gate service; every refusal is one line and runs before any handler.

- A gate's paths (``/<run>/gate/<epoch>`` and everything below) need that gate's secret token:
  ``?token=`` on the first load; a valid one sets a cookie scoped to the gate's path (HttpOnly,
  SameSite=Strict), so the page's own calls (Gradio's fetches and event streams, which carry no
  token in their URLs) pass. Unknown gate: 404; missing or wrong token: 403; decided: 410.
- Everything else except ``/healthz`` needs HTTP Basic auth when auth is configured (it must be
  off loopback); the gate pages do not, as their token already proves the person was sent there.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, quote

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

    def __init__(self, app, gates, basic: tuple[str, str] | None):
        self.app = app
        self.gates = gates
        self.basic = basic

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope["path"]
        match = GATE_PATH.match(path)
        if match is None:
            if path in OPEN_PATHS or self.basic is None or basic_ok(scope, self.basic):
                return await self.app(scope, receive, send)
            return await refuse(scope, send, 401, "HTTP Basic auth required", basic_challenge=True)
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
            send = with_cookie(send, from_query, gate.ticket.page_path())
        await self.app(scope, receive, send)


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
    except (binascii.Error, UnicodeDecodeError):
        return False
    user_ok = hmac.compare_digest(user.encode(), expected[0].encode())
    password_ok = hmac.compare_digest(password.encode(), expected[1].encode())
    return bool(sep) and user_ok and password_ok


def with_cookie(send, token: str, path: str):
    """``send`` that adds the gate's cookie to the response (the token is URL-safe base64)."""
    cookie = f"{COOKIE}={token}; Path={quote(path)}; HttpOnly; SameSite=Strict"

    async def send_with_cookie(message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"set-cookie", cookie.encode("latin-1"))]
            message = {**message, "headers": headers}
        await send(message)

    return send_with_cookie


async def refuse(scope, send, status: int, message: str, basic_challenge: bool = False) -> None:
    """One line: JSON ``{"error": ...}`` under an ``/api/`` path, plain text elsewhere."""
    if scope["type"] == "websocket":  # refused before the handshake completes
        await send({"type": "websocket.close", "code": 1008})
        return
    message = one_line(message)
    if "/api/" in scope["path"] or scope["path"].startswith("/api"):
        body, kind = json.dumps({"error": message}).encode(), b"application/json"
    else:
        body, kind = f"{message}\n".encode(), b"text/plain; charset=utf-8"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    if basic_challenge:
        headers.append((b"www-authenticate", b'Basic realm="hill gates"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def one_line(text: object, limit: int = 300) -> str:
    """An error for a client: a single line, at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else f"{flat[: limit - 1]}…"

"""ASGI guards in front of both gate servers: the in-process page and the gate service.

Each guard answers before any route runs, Gradio's own included, so a hostile request is
refused without being buffered, parsed or stored:

- :class:`HostGuard`: a ``Host`` header outside the allow-list is 400 (DNS rebinding: a page on
  another site that resolves its own name to 127.0.0.1 still sends its own name as Host).
- :class:`NoUploads`: Gradio's file routes are 404; the page has no file input, and an upload
  would be kept on disk after the gate closes.
- :class:`BodyLimit`: a body over the gate's cap is 413, unread when Content-Length says so,
  else as soon as the running count of a chunked body passes the cap.
- :class:`LoginThrottle`: after repeated failed logins a client IP gets 429 with Retry-After.
- :class:`ServerFunctionCalls`: a call of Gradio's server-function route names the component
  and function it wants; an unknown one is 404 naming the field (Gradio answered 500). The
  page's own calls no longer use it (interaction_app/page_calls.py); the route stays Gradio's.

Every refusal is one line: JSON ``{"error": ...}`` on API paths, plain text elsewhere.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

# One body cap for both servers and every route: the snapshot's every row, pretty-printed, twice
# over, plus headroom for the envelope (Gradio's {"data": [...], "session_hash": ...}).
BODY_BASE_BYTES = 64 * 1024
BODY_BYTES_PER_POINT = 256  # a full row, pretty-printed, is about 110 bytes
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})  # a bind address, never a Host
# Gradio's routes that take files: the page has none, so none of them has a use here.
FILE_ROUTES = re.compile(r"/gradio_api/(?:upload|upload_progress|process_recording)/?$")
LOGIN_ROUTE = re.compile(r"/login/?$")  # Gradio's login form (400 on wrong credentials)
COMPONENT_SERVER = re.compile(r"/gradio_api/component_server/?$")  # Gradio's server-function route
DIGITS = re.compile(r"[0-9]{1,20}")  # ASCII only: str.isdigit() also takes "²"


def body_cap(n_points: int) -> int:
    """The largest request body a gate of ``n_points`` accepts, in bytes."""
    return BODY_BASE_BYTES + BODY_BYTES_PER_POINT * n_points


def allowed_hosts(gate, bind_host: str | None = None) -> frozenset[str]:
    """``gate.allowed_hosts`` plus the hosts of ``gate.service_url`` and of the bind address
    (the page's own link names it), normalised as :func:`host_name` reads a Host header."""
    hosts = [*gate.allowed_hosts, urlsplit(gate.service_url).hostname or ""]
    for bind in (gate.host, bind_host):
        if bind is not None and bind not in WILDCARD_BINDS:
            hosts.append(bind)
    return frozenset(normal for h in hosts if (normal := h.strip("[]").lower().rstrip(".")))


def host_name(header_value: str) -> str:
    """``example.org:7870`` -> ``example.org``; ``[::1]:7870`` -> ``::1``; lower case."""
    value = header_value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def forwarded_allow_ips(gate) -> str:
    """uvicorn's ``forwarded_allow_ips`` for ``gate.trusted_proxies``: "" trusts no one.

    uvicorn's own default trusts 127.0.0.1, so any local process could name itself another
    client with X-Forwarded-For and never meet the login throttle.
    """
    return ",".join(gate.trusted_proxies)


def trust_proxies_of_pages(gate) -> None:
    """The same for a gate page: Gradio builds its uvicorn config from the environment's
    FORWARDED_ALLOW_IPS (read when the page starts), so it is set here, for this process."""
    import os

    os.environ["FORWARDED_ALLOW_IPS"] = forwarded_allow_ips(gate)


def client_ip(scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def one_line(text: object, limit: int = 300) -> str:
    """An error for a client: a single line, at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else f"{flat[: limit - 1]}…"


def error_response(status: int, message: object) -> JSONResponse:
    """A route's refusal: ``{"error": line}``, the answer :func:`refuse` gives in front of the
    app."""
    return JSONResponse({"error": one_line(message)}, status_code=status)


async def refuse(scope, send, status: int, message: str, headers: Iterable = ()) -> None:
    """One line: JSON ``{"error": ...}`` under an API path, plain text elsewhere.

    A websocket is closed before its handshake completes (policy violation).
    """
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    message, path = one_line(message), scope["path"]
    if "/api/" in path or path.startswith("/api") or "/gradio_api/" in path:
        body, kind = json.dumps({"error": message}).encode(), b"application/json"
    else:
        body, kind = f"{message}\n".encode(), b"text/plain; charset=utf-8"
    start = [(b"content-type", kind), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


class HostGuard:
    """Refuses (400) a request whose Host header is not one this gate is served as."""

    def __init__(self, app, hosts: Iterable[str]):
        self.app = app
        self.hosts = frozenset(hosts)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = host_name(header(scope, b"host") or "")
            if host not in self.hosts:
                shown = repr(host[:60]) if host else "(none)"
                message = f"Host {shown} is not one this gate serves (see gate.allowed_hosts)"
                return await refuse(scope, send, 400, message)
        await self.app(scope, receive, send)


class NoUploads:
    """Gradio's upload routes answer 404: the gate takes JSON, never files."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and FILE_ROUTES.search(scope["path"]):
            return await refuse(scope, send, 404, "this gate takes no file uploads")
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuses (413) a request body over ``cap`` bytes before the route reads it.

    ``cap`` is a number, or a function of the ASGI scope (the service: each gate its own).
    """

    def __init__(self, app, cap: int | Callable[[dict], int]):
        self.app = app
        self.cap = cap

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        cap = self.cap(scope) if callable(self.cap) else self.cap
        declared = header(scope, b"content-length")
        if declared is None:  # chunked: count while the route reads
            return await self._counted(scope, receive, send, cap)
        if not DIGITS.fullmatch(declared.strip()):
            return await refuse(scope, send, 400, "Content-Length is not a number")
        if int(declared) > cap:
            message = f"body of {declared.strip()} bytes is over this gate's {cap} bytes"
            return await refuse(scope, send, 413, message)
        # The server ends the body at Content-Length (h11, httptools), so it cannot grow past it.
        await self.app(scope, receive, send)

    async def _counted(self, scope, receive, send, cap: int) -> None:
        """Pass a chunked body through, counting; past ``cap``, answer 413 and tell the route
        the client left, so the rest is never read and nothing is accumulated."""
        seen, over, started = 0, False, False

        async def counted_receive():
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    over = True
                    if not started:
                        await refuse(scope, send, 413, f"body is over this gate's {cap} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message) -> None:
            nonlocal started
            if over:
                return  # the 413 already answered; the route's reply to the 'disconnect' is moot
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not over:  # after a 413 the route's complaint about the cut body is no news
                raise


class Throttle:
    """Failed logins per client IP: after ``limit`` within ``window_s``, refuse for ``backoff_s``.

    Runs on the server's event loop only (no lock). At most ``max_clients`` addresses are
    remembered, so a spray of addresses cannot grow it without bound.
    """

    def __init__(
        self,
        limit: int = 5,
        window_s: float = 60.0,
        backoff_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 4096,
    ):
        self.limit, self.window_s, self.backoff_s = limit, window_s, backoff_s
        self.clock, self.max_clients = clock, max_clients
        self.failures: dict[str, deque[float]] = {}
        self.blocked_until: dict[str, float] = {}

    def retry_after(self, ip: str) -> int:
        """Whole seconds ``ip`` must wait before its next try; 0 when it may try now."""
        left = self.blocked_until.get(ip, 0.0) - self.clock()
        if left <= 0:
            self.blocked_until.pop(ip, None)
            return 0
        return max(1, math.ceil(left))

    def failed(self, ip: str) -> None:
        now = self.clock()
        recent = self.failures.setdefault(ip, deque(maxlen=self.limit))
        recent.append(now)
        if len(recent) == self.limit and now - recent[0] <= self.window_s:
            self.blocked_until[ip] = now + self.backoff_s
            recent.clear()
        self._forget_oldest()

    def succeeded(self, ip: str) -> None:
        self.failures.pop(ip, None)

    def _forget_oldest(self) -> None:
        while len(self.failures) > self.max_clients:
            self.failures.pop(next(iter(self.failures)))
        while len(self.blocked_until) > self.max_clients:
            self.blocked_until.pop(next(iter(self.blocked_until)))

    async def refuse(self, scope, send, wait: int) -> None:
        message = f"too many failed logins from this address: try again in {wait} s"
        await refuse(scope, send, 429, message, [(b"retry-after", str(wait).encode())])


class LoginThrottle:
    """Throttles Gradio's login form (``POST .../login``, 400 on wrong credentials) per IP."""

    def __init__(self, app, throttle: Throttle):
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope, receive, send) -> None:
        is_login = scope["type"] == "http" and scope.get("method") == "POST"
        if not (is_login and LOGIN_ROUTE.search(scope["path"])):
            return await self.app(scope, receive, send)
        ip = client_ip(scope)
        if wait := self.throttle.retry_after(ip):
            return await self.throttle.refuse(scope, send, wait)

        async def watching_send(message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] in (400, 401):
                    self.throttle.failed(ip)
                elif message["status"] < 300:
                    self.throttle.succeeded(ip)
            await send(message)

        await self.app(scope, receive, watching_send)


class ServerFunctionCalls:
    """Checks a call of a page's server functions (``POST .../gradio_api/component_server``)
    before Gradio reads it: Gradio answers an unknown ``component_id`` with a 500 (a KeyError),
    any other bad field with a bare "Invalid JSON body.", and a multipart body without its
    fields with a 500 too. Here each is one line naming the field; the function then checks
    its own ``data``. Innermost: the body it reads is already capped by :class:`BodyLimit`.

    ``blocks(scope)`` is the page's ``gr.Blocks`` (None: let Gradio answer).
    """

    def __init__(self, app, blocks: Callable[[dict], object]):
        self.app = app
        self.blocks = blocks

    async def __call__(self, scope, receive, send) -> None:
        is_call = scope["type"] == "http" and scope.get("method") == "POST"
        if not (is_call and COMPONENT_SERVER.search(scope["path"])):
            return await self.app(scope, receive, send)
        if "multipart/" in (header(scope, b"content-type") or ""):  # the page sends JSON only
            return await refuse(scope, send, 415, "body must be JSON, not a multipart form")
        body = await read_whole(receive)
        if body is None:  # the client left, or BodyLimit has answered 413
            return
        blocks = self.blocks(scope)
        problem = call_problem(body, blocks) if blocks is not None else None
        if problem:
            return await refuse(scope, send, *problem)
        await self.app(scope, replay(body, receive), send)


async def read_whole(receive) -> bytes | None:
    """The request body (None when the client left first)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def replay(body: bytes, receive):
    """``receive`` that hands the route ``body`` (already read), then listens for a disconnect."""
    sent = False

    async def again():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


def call_problem(body: bytes, blocks) -> tuple[int, str] | None:
    """(status, line) for a server-function call's envelope Gradio would fail on, or None."""
    try:
        call = json.loads(body)
    except (ValueError, RecursionError) as err:  # bad JSON or UTF-8, over-deep nesting
        return 400, f"body is not JSON ({type(err).__name__})"
    if not isinstance(call, dict):
        return 400, "body must be a JSON object {session_hash, component_id, fn_name, data}"
    for key in ("session_hash", "component_id", "fn_name", "data"):
        if key not in call:
            return 400, f"body has no {key}"
    if not isinstance(call["session_hash"], str):
        return 400, "session_hash must be a string"
    component_id, fn_name = call["component_id"], call["fn_name"]
    if not isinstance(component_id, int) or isinstance(component_id, bool):
        return 400, f"component_id must be a whole number, got {component_id!r:.40}"
    block = blocks.blocks.get(component_id)
    if block is None:
        return 404, f"component_id {str(component_id)[:40]} is not a component of this page"
    if not isinstance(fn_name, str):
        return 400, f"fn_name must be a string, got {fn_name!r:.40}"
    if not getattr(getattr(block, fn_name, None), "_is_server_fn", False):
        return 404, f"fn_name {fn_name!r:.40} is not a server function of component {component_id}"
    return None


def page_guards(hosts: Iterable[str], cap: int, throttle: Throttle, blocks=None) -> list:
    """The guards for a Gradio app, outermost first (``launch(app_kwargs={"middleware": ...})``);
    with ``blocks`` (the page), its server-function calls are checked too."""
    from starlette.middleware import Middleware

    guards = [
        Middleware(HostGuard, hosts=hosts),
        Middleware(NoUploads),
        Middleware(LoginThrottle, throttle=throttle),
        Middleware(BodyLimit, cap=cap),
    ]
    if blocks is not None:
        guards.append(Middleware(ServerFunctionCalls, blocks=lambda scope: blocks))
    return guards

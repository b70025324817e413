"""The gate service (`hill gates serve`): one web server for every gate that waits with no process.

A run that suspends at a gate leaves a ticket; this service serves that gate's page at the
stable address ``/<run>/gate/<epoch>?token=...`` the run announced, records the decision
through the page's one recorder and resumes the flow run (:mod:`pipelines.gate_service.registry`).

Routes:
    GET  /                                   index of open gates (no tokens)
    GET  /healthz                            "ok"
    GET  /api/gates                          open gates as JSON (no tokens)
    *    /<run>/gate/<epoch>/...             the gate page: one Gradio app for every gate (token)
    GET  /<run>/gate/<epoch>/api/snapshot    the snapshot and context as JSON (token)
    POST /<run>/gate/<epoch>/api/decision    record a decision (token; source "page")
    GET  /<run>/gate/<epoch>/api/page/script the page's script (token; browser-cached)
    POST /<run>/gate/<epoch>/api/page/<call> the page script's opening, readout, status and
                                             item (token; interaction_app/page_calls.py)

Access (:mod:`pipelines.gate_service.auth`): a gate's paths need its token; the rest needs HTTP
Basic auth when auth is configured, which it must be to bind anything but loopback. In front of
that, :mod:`interaction_app.http_safety`'s guards, as on the in-process page: a Host allow-list,
no upload routes, and each gate's body cap (64 KiB + 256 B per point) before anything is read.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from interaction_app.http_safety import (
    LOOPBACK_HOSTS,
    BodyLimit,
    HostGuard,
    NoUploads,
    ServerFunctionCalls,
    Throttle,
    body_cap,
    error_response,
)
from pipelines.gate_service.api import ApiError, parse_body, read_body
from pipelines.gate_service.auth import EPOCH, GATE_PATH, GateAccess
from pipelines.gate_service.registry import BUILD_LOCK, CLOSE_AFTER_S, REFRESH_S, GateService, log

API_SOURCE = "page"  # the JSON API is the page's own API: same recorder, same source
PAGE_MOUNT = "/{run}/gate/{epoch}"  # the page app's path; GateAccess has checked run and epoch
# Browser sessions the page app keeps state for, all gates together (least recently used
# dropped): a few tabs for each of a team's open gates. Each holds copies of the page's
# components (~10 KiB: nothing of a gate is in them).
PAGE_SESSIONS = 1024


def create_app(
    run_dir: str | Path,
    basic: tuple[str, str] | None = None,
    refresh_s: float = REFRESH_S,
    close_after_s: float = CLOSE_AFTER_S,
    resume=None,
    hosts: Iterable[str] = LOOPBACK_HOSTS,
    secure_cookie: bool = False,
    throttle: Throttle | None = None,
) -> FastAPI:
    """The service as an ASGI app (run it with uvicorn).

    Args:
        basic: (user, password) for the index and /api/gates, or None.
        refresh_s: seconds between background scans of ``run_dir``.
        close_after_s: how long a decided page stays up, read-only.
        resume: ``resume(ticket, decided)``, called in a thread after each decision; default
            resumes the ticket's Prefect flow run.
        hosts: the Host names it answers (:func:`interaction_app.http_safety.allowed_hosts`).
        secure_cookie: mark the token cookie Secure (``gate.service_url`` is https).
        throttle: failed Basic logins per client IP (default: 5 in 60 s, then 60 s of 429).
    """
    gates = GateService(run_dir, refresh_s, close_after_s, resume)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        gates.start_resumes()  # imports and Prefect clients made now, before any editor
        freeze_start_up_heap()
        task = asyncio.create_task(refresh_forever(gates))
        try:
            yield
        finally:
            task.cancel()
            await gates.close_all()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    gates.app = app
    app.state.gates = gates
    # add_middleware puts each in front of the last: Host, uploads, access, the body cap, then
    # the check of a page's server-function calls (its body capped).
    page_app = app.state.page_app = mount_page_app(app, gates)
    app.add_middleware(
        ServerFunctionCalls, blocks=lambda scope: page_app if gate_of(gates, scope) else None
    )
    app.add_middleware(BodyLimit, cap=lambda scope: gate_body_cap(gates, scope))
    app.add_middleware(
        GateAccess, gates=gates, basic=basic, throttle=throttle, secure_cookie=secure_cookie
    )
    app.add_middleware(NoUploads)
    app.add_middleware(HostGuard, hosts=hosts)
    return app


def freeze_start_up_heap() -> None:
    """Leave the objects start-up made (the web stack, torch, pandas: ~500,000) out of every
    later garbage collection. Python's full collections walk every tracked object: ~220 ms
    each with this heap, on the event loop, several times a minute under 50 editors, and every
    request waited for them (the load benchmark's p95 tail; measured with gc.callbacks).
    Collected first, so start-up's own garbage is not frozen with it."""
    import gc

    gc.collect()
    gc.freeze()


def mount_page_app(app: FastAPI, gates: GateService):
    """Build the page app once and mount it at every gate's path, after the service's own
    routes (they match first). A gate's first visit then costs its state, not a Gradio app:
    ~80 ms of CPU per gate and ~85 routes each, the largest share of the service's work with
    100 gates (benchmarks/gate_service_load.py, profiled)."""
    import gradio as gr

    from interaction_app.app import build_page_app
    from interaction_app.server import theme

    add_routes(app, gates)
    with BUILD_LOCK:
        page_app = build_page_app(gates.page_for, sessions=PAGE_SESSIONS)
        gr.mount_gradio_app(
            app,
            page_app,
            path=PAGE_MOUNT,
            ssr_mode=False,  # no Node server: one process, one port
            theme=theme(),
            footer_links=["api"],
            mcp_server=False,
            pwa=False,
            enable_monitoring=False,
        )
    return page_app


def gate_body_cap(gates: GateService, scope) -> int:
    """The cap for a request: its gate's (by snapshot size; GateAccess has let only live gates
    through), else the envelope alone (the service's own routes take no body)."""
    gate = gate_of(gates, scope)
    return body_cap(len(gate.page.snapshot) if gate else 0)


def gate_of(gates: GateService, scope):
    """The live gate a request's path is under, None when it has none."""
    match = GATE_PATH.match(scope["path"])
    if match and EPOCH.fullmatch(match["epoch"]):
        gate = gates.gates.get((match["run"], int(match["epoch"])))
        return gate if gate is not None and gate.live else None
    return None


async def refresh_forever(gates: GateService) -> None:
    while True:
        try:
            await gates.refresh()
        except Exception as err:  # noqa: BLE001 - a failed scan is retried at the next one
            log.error(f"gate scan of {gates.run_dir} failed: {type(err).__name__}: {err}")
        await asyncio.sleep(gates.refresh_s)


def add_routes(app: FastAPI, gates: GateService) -> None:
    """The service's own routes; registered before any page, so they match first."""
    from interaction_app import page_calls  # imports Gradio: only once a service starts

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    @app.get("/api/gates")
    async def list_gates() -> list[dict]:
        await gates.refresh()
        now = time.time()
        return [
            {
                "run": g.ticket.run_name,
                "epoch": g.ticket.epoch,
                "deadline": g.ticket.deadline,
                "seconds_left": max(0.0, round(g.ticket.deadline - now, 1)),
                "path": g.ticket.page_path(),
                "page_built": g.live,  # built on its first request, freed once decided
            }
            for g in gates.open_gates()
        ]

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        await gates.refresh()
        return index_html(gates, time.time())

    # The next two on the loop (async): cached bytes (the view's JSON once per gate, ~20 ms at
    # its first ask, shared with the opening), where a thread's hop there and back waited for
    # the busy loop twice (p95 ~200-300 ms under 50 editors; ~100 ms for the page's calls).
    @app.get("/{run}/gate/{epoch:int}/api/snapshot")
    async def snapshot(run: str, epoch: int) -> Response:
        gate = gates.gates.get((run, epoch))
        page = gate.page if gate else None
        if page is None:  # freed between the access check and here
            return error_response(410, f"gate at epoch {epoch} of {run} is decided")
        return Response(snapshot_json(page, gate.ticket.deadline), media_type="application/json")

    @app.get("/{run}/gate/{epoch:int}/api/page/script")
    async def page_script(request: Request) -> Response:
        return page_calls.script_response(request.headers.get("if-none-match"))

    @app.post("/{run}/gate/{epoch:int}/api/page/{name}")
    async def page_call(run: str, epoch: int, name: str, request: Request) -> Response:
        # On the loop: each call is ~1 ms or less (the readout's NumPy), less than a hop to a
        # thread and back costs on a busy machine.
        gate = gates.gates.get((run, epoch))
        page = gate.page if gate else None
        try:
            body = await read_body(request, body_cap(len(page.snapshot) if page else 0))
        except ApiError as err:
            return error_response(err.status, str(err))
        return page_calls.call_response(page, name, body)

    @app.post("/{run}/gate/{epoch:int}/api/decision")
    async def decision(run: str, epoch: int, request: Request) -> JSONResponse:
        gate = gates.gates.get((run, epoch))
        recorder = gate.recorder if gate else None
        if recorder is None:
            return error_response(410, f"gate at epoch {epoch} of {run} is decided")
        try:
            body = await read_body(request, body_cap(len(recorder.snapshot)))
            result = await asyncio.to_thread(record, recorder, body)
        except ApiError as err:
            return error_response(err.status, str(err))
        return JSONResponse(
            {
                "decision": result.decision,
                "edits_path": result.edits_path,
                "edits_sha256": result.edits_sha256,
                "source": result.source,
            }
        )


def snapshot_json(page, deadline: float) -> bytes:
    """The snapshot API's body: the view of the N points as serialized once per gate
    (GatePage.view_json; ~20 ms for 2,000 points, per request before: the largest share of the
    request under load), then the few fields that change, spliced into the same JSON object."""
    from interaction_app.page_state import dumps

    more = {**page.snapshot_fields(), "deadline": deadline}
    return page.view_json()[:-1] + b"," + dumps(more)[1:]  # {view..., more...}


def record(recorder, body: bytes):
    """Parse, validate against the snapshot, and record through the page's recorder."""
    from hill_core.edits import EditsError
    from interaction_app.recorder import GateClosedError
    from interaction_app.rows import rows_to_edits

    decision, rows = parse_body(body)
    try:
        num_classes = len(recorder.context.class_names)
        edit = rows_to_edits(recorder.snapshot, rows, num_classes)
        return recorder.record(
            decision, edit.x, edit.y, edit.moved, API_SOURCE,
            label_after=edit.label_after, excluded=edit.excluded,
        )  # fmt: skip
    except EditsError as err:
        raise ApiError(422, str(err)) from None
    except GateClosedError as err:
        raise ApiError(409, str(err)) from None


def index_html(gates: GateService, now: float) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(g.ticket.run_name)}</td><td>{g.ticket.epoch}</td>"
        f"<td>{time_left(g.ticket.deadline - now)}</td>"
        f"<td><code>{html.escape(g.ticket.page_path())}</code></td></tr>"
        for g in gates.open_gates()
    )
    table = (
        f"<table><tr><th>Run</th><th>Epoch</th><th>Time left</th><th>Page</th></tr>{rows}</table>"
        if rows
        else "<p>No gate is waiting.</p>"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>hill gates</title></head>"
        "<body style='font-family: sans-serif'><h1>Gates waiting for a decision</h1>"
        f"{table}<p>This page shows no tokens: each gate opens only through the link its run "
        "announced (terminal, flow-run logs, the Prefect artifact), which carries the gate's "
        "secret token.</p></body></html>"
    )


def time_left(seconds: float) -> str:
    if seconds <= 0:
        return "timing out"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def serve(cfg, host: str, port: int) -> None:
    """Serve until interrupted, over https when gate.ssl_certfile and gate.ssl_keyfile are set.

    Raises:
        GateServerError: ``host`` is reachable from other machines and no auth is configured,
            the auth setting is unreadable, or a TLS file is missing (one line).
    """
    import uvicorn

    from interaction_app.gate_checks import check_gate
    from interaction_app.http_safety import allowed_hosts

    gate = cfg.gate
    basic = check_gate(gate, host)
    sock = listening_socket(host, port)  # a port in use: one line, before anything is announced
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    scheme = "https" if gate.ssl_certfile else "http"
    shown = f"[{host}]" if ":" in host else host
    print(f"Gate service on {scheme}://{shown}:{sock.getsockname()[1]}/ serving gates under "
          f"{cfg.base.run_dir}")  # fmt: skip
    app = create_app(
        cfg.base.run_dir,
        basic,
        hosts=allowed_hosts(gate, host),
        secure_cookie=gate.service_url.lower().startswith("https:"),
    )
    uvicorn.Server(uvicorn_config(app, gate)).run(sockets=[sock])


def uvicorn_config(app, gate, **more):
    """The service's uvicorn config: quiet, TLS when set, and X-Forwarded-For believed only
    from ``gate.trusted_proxies`` (``more``: host, port, log_config for a test's server)."""
    import uvicorn

    from interaction_app.http_safety import forwarded_allow_ips

    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        ssl_certfile=gate.ssl_certfile or None,
        ssl_keyfile=gate.ssl_keyfile or None,
        forwarded_allow_ips=forwarded_allow_ips(gate),
        **more,
    )


def listening_socket(host: str, port: int):
    """A TCP socket bound to ``host:port`` (0: a free port) for uvicorn to serve on.

    Bound here, not by uvicorn: uvicorn reports a port in use with a traceback and exit code 3
    after the service was announced (defect G); here it is one line, and nothing is announced.
    """
    import socket

    from interaction_app.gate_checks import GateServerError

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed one in TIME_WAIT
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise GateServerError(
            f"gate service: cannot listen on {host}:{port} ({err.strerror or err}): another "
            "process has the port; pick another with --port"
        ) from None
    sock.set_inheritable(True)
    return sock

"""Serving a gate page: loopback by default, auth required elsewhere, never shared, quiet."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from fastapi import Depends, Request, Response

from hill_core.config import Config, GateConfig
from hill_core.edits import EditsError, read_snapshot
from hill_core.loop import gate_file
from hill_core.losses import LossWeights
from interaction_app import page_calls
from interaction_app.app import build_gate_app
from interaction_app.context import GateContext, GateDecision
from interaction_app.gate_checks import (  # noqa: F401  (server's names for its callers)
    GateServerError,
    check_gate,
    free_port,
    is_loopback,
    resolve_auth,
)
from interaction_app.http_safety import (
    Throttle,
    allowed_hosts,
    body_cap,
    page_guards,
    trust_proxies_of_pages,
)
from interaction_app.page_state import snapshot_note
from interaction_app.recorder import GateClosedError

# After a decision: the longest the page stays up for its open tabs to lock. Tabs poll every
# 1.5 s and lock within a poll or two; a loaded machine delays polls by seconds, and a tab whose
# server closed first never learns the decision.
GRACE_S = 30.0
MIN_GRACE_S = 0.3  # the shortest, for a reply still on its way out


class GateServer:
    """A running gate page. ``url`` is its address; ``close()`` (or leaving ``with``) stops it.

    Once a decision is recorded, closing first lets it reach every open page: the reply to the
    click that decided, and a lock with the decision on every other tab (see :meth:`close`).
    """

    def __init__(self, demo: gr.Blocks, url: str):
        self.demo = demo
        self.url = url

    def decide(self, decision: str, source: str) -> GateDecision:
        """Record a decision made outside the page (``source``: timeout, prefect) through the
        page's own lock; the unedited layout is written.

        Raises:
            GateClosedError: the person decided first; their decision stands.
        """
        return self.demo.gate_recorder.record(decision, None, None, None, source)

    @property
    def decision(self) -> GateDecision | None:
        """The recorded decision, None while the gate waits."""
        return self.demo.gate_recorder.decision

    def close(self, grace_s: float = GRACE_S) -> None:
        """Stop serving. With a decision recorded, first wait (at most ``grace_s``) until every
        reply has left and every page heard from in the last few seconds has locked on the
        decision; a tab that went quiet (closed, or asleep in the background) finds the page
        gone at its next poll and locks then. Without a decision, or ``grace_s=0``: at once.
        """
        if grace_s > 0 and self.decision is not None:
            self.linger(grace_s)
        with contextlib.redirect_stdout(io.StringIO()):  # Gradio prints "Closing server..."
            self.demo.close()

    def linger(self, grace_s: float = GRACE_S) -> float:
        """Wait until replies are out and the pages open now have locked (at most ``grace_s``);
        returns the seconds waited."""
        start = time.monotonic()
        presence = self.demo.gate_presence
        while (waited := time.monotonic() - start) < grace_s:
            if waited >= MIN_GRACE_S and not presence.waiting(start) and _replies_sent(self.demo):
                break
            time.sleep(0.05)
        return time.monotonic() - start

    def __enter__(self) -> GateServer:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(GRACE_S if exc_type is None else 0.0)


def _replies_sent(demo: gr.Blocks) -> bool:
    """True when no event of the page's queue is waiting to run or for its result to be sent.

    Gradio drops an event id from ``pending_event_ids_session`` once its stream has passed the
    completion message on; if that internal changes, this reports True and the grace period
    rests on the pages' locks alone.
    """
    pending = getattr(getattr(demo, "_queue", None), "pending_event_ids_session", None)
    return not isinstance(pending, dict) or not any(pending.values())


def launch_gate(
    snapshot: pd.DataFrame,
    context: GateContext,
    on_decision: Callable[[GateDecision], None],
    gate: GateConfig,
) -> GateServer:
    """Build and start the gate page without blocking, behind :mod:`interaction_app.http_safety`'s
    guards (Host allow-list, no uploads, login throttling, a body cap from the snapshot's size).

    Raises:
        GateServerError: a non-loopback host without auth, an unreadable auth setting, a
            missing TLS file, or a snapshot the page cannot show (one line each).
    """
    auth = check_gate(gate)
    try:
        demo = build_gate_app(snapshot, context, on_decision)
    except EditsError as err:  # e.g. an empty snapshot: say so now, not at the timeout
        raise GateServerError(
            f"gate at epoch {context.gate_epoch} cannot be served: {err}"
        ) from None
    port = gate.port or free_port(gate.host)
    guards = page_guards(allowed_hosts(gate), body_cap(len(snapshot)), Throttle(), demo)
    trust_proxies_of_pages(gate)
    tls = bool(gate.ssl_certfile)
    app, url, _ = demo.launch(
        server_name=gate.host,
        server_port=port,
        auth=auth,
        prevent_thread_lock=True,
        share=False,
        quiet=True,
        inbrowser=False,
        ssr_mode=False,  # no Node server: one process, one port
        mcp_server=False,
        state_session_capacity=demo.state_session_capacity,  # launch() resets it
        pwa=False,
        enable_monitoring=False,
        theme=theme(),
        footer_links=["api"],
        app_kwargs={"middleware": guards},  # inside Gradio's CORS: before any route reads
        ssl_certfile=gate.ssl_certfile or None,
        ssl_keyfile=gate.ssl_keyfile or None,
        # Gradio calls its own startup route at https://<bind address>, a name the certificate
        # need not carry; that one local call skips verification, browsers do not.
        ssl_verify=not tls,
    )
    add_page_calls(app, demo.gate_page)
    return GateServer(demo, url)


def add_page_calls(app, page) -> None:
    """The page's script and its calls (:mod:`interaction_app.page_calls`) at ``/api/page/``,
    behind Gradio's own login check, as its routes are: the app is already serving, and
    Starlette reads its route list per request, so the route answers from here on (the link
    is printed only after this returns)."""
    login_check = gradio_login_check(app)

    async def page_call(name: str, request: Request) -> Response:
        # the body is capped already: page_guards' BodyLimit
        return page_calls.call_response(page, name, await request.body())

    async def page_script(request: Request) -> Response:
        return page_calls.script_response(request.headers.get("if-none-match"))

    for path, endpoint, method in (("script", page_script, "GET"), ("{name}", page_call, "POST")):
        app.add_api_route(
            f"/{page_calls.ROUTE}{path}",
            endpoint,
            methods=[method],
            dependencies=[Depends(login_check)],
            include_in_schema=False,
        )


def gradio_login_check(app):
    """The dependency that guards Gradio's own routes (its ``/gradio_api/login_check``): None
    without auth, 401 without a signed-in cookie. FastAPI keeps an included router as a
    route of its own (``original_router``), so the search walks into them."""
    routers = [app.router]
    while routers:
        for route in routers.pop().routes:
            if getattr(route, "name", "") == "login_check":
                return route.endpoint
            if getattr(route, "original_router", None) is not None:
                routers.append(route.original_router)
    raise RuntimeError("Gradio's login_check route is missing: the page's calls need it")


def theme() -> gr.themes.Base:
    """Gradio's default look with fonts served by this server: the page fetches nothing remote."""
    font = gr.themes.LocalFont("Source Sans Pro")
    mono = gr.themes.LocalFont("IBM Plex Mono")
    return gr.themes.Default(
        font=[font, "ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=[mono, "ui-monospace", "monospace"],
    )


def serve_snapshot_file(path: Path, cfg: Config, out_dir: Path) -> None:
    """``hill gate --snapshot FILE``: serve a saved snapshot until a decision, then stop.

    Writes the decision's edits under ``out_dir``; on ``gate.timeout_s`` without a decision it
    records ``gate.on_timeout``. Prints the link and the outcome.
    """
    snapshot, meta = read_snapshot(path)
    context = snapshot_context(snapshot, meta, Path(path), cfg, Path(out_dir))
    note = snapshot_note(len(snapshot), context)
    if note:
        print(f"Note: {note}", flush=True)
    done = threading.Event()
    with launch_gate(snapshot, context, lambda _: done.set(), cfg.gate) as server:
        print(f"Gate page for {path}: {server.url}", flush=True)
        if not done.wait(cfg.gate.timeout_s):
            try:
                server.decide(cfg.gate.on_timeout, source="timeout")
                print(f"No decision within {cfg.gate.timeout_s} s: {cfg.gate.on_timeout}.")
            except GateClosedError:
                pass  # the person decided in the last moment; that decision stands
        result = server.decision
    print(f"Decision: {result.decision}; edits written to {result.edits_path}", flush=True)


def snapshot_context(
    snapshot: pd.DataFrame, meta: dict[str, str], path: Path, cfg: Config, out_dir: Path
) -> GateContext:
    """A context for a snapshot served on its own: no training history, names from the table."""
    gate_epoch = int(meta.get("gate_epoch") or 0)
    return GateContext(
        run_name=f"snapshot {path.name}",
        run_id=meta.get("run_id") or path.stem,
        gate_epoch=gate_epoch,
        edits_path=gate_file(out_dir, gate_epoch),
        config_hash=cfg.hash(),
        class_names=class_names_of(snapshot),
        val_accuracy=[],
        per_class_accuracy=[],
        confusion=[],
        weights=LossWeights.from_config(cfg.hill),
        baseline_val_accuracy=[],  # served alone: no paired baseline
        last_edit_epoch=None,
        next_steps={  # no run waits on a snapshot served alone
            d: f"the edits are in {gate_file(out_dir, gate_epoch)}; no run waits on this "
            "snapshot, so this page closes"
            for d in ("approve", "skip", "stop")
        },
        snapshot_size=cfg.hill.snapshot_size,
    )


def class_names_of(snapshot: pd.DataFrame) -> list[str]:
    """Names indexed by label, from the snapshot's own class_name column (gaps get the label)."""
    labels = snapshot["label"].to_numpy(np.int64)
    names = [str(k) for k in range(int(labels.max()) + 1)] if len(labels) else []
    for label, name in zip(labels, snapshot["class_name"], strict=True):
        names[label] = str(name)
    return names

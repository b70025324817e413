"""The gate page: ``build_page_app(pages) -> gr.Blocks``, one app for every gate it serves, and
``build_gate_app(snapshot, context, on_decision)``, that app serving one gate.

The page holds nothing of a gate (:class:`~interaction_app.page_state.GatePage` does): each
callback asks ``pages(request)`` for its gate. The scatter is a ``gr.HTML`` whose own script
(static/gate_*.js) draws on a canvas and keeps the edit state in the browser. Python sees that
state three ways: the live readout (a call the script makes while dragging, page_calls.py), the
decision buttons (whose ``js`` hook reads the script's rows), and the ``snapshot``/``submit``
API endpoints for scripts and tests. Every decision goes through the gate's one
:class:`GateRecorder`, so it is validated, written and reported once.
"""

from __future__ import annotations

import inspect
import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from hill_core.edits import EditsError, edits_summary, make_edits, snapshot_state
from interaction_app.context import DECISIONS, UNEDITED_APPROVE, GateContext, GateDecision
from interaction_app.page_state import GatePage
from interaction_app.recorder import GateClosedError, GateRecorder
from interaction_app.rows import PageEdit, rows_to_edits

STATIC = Path(__file__).parent / "static"
# Gradio keeps a SessionState (~45 KiB: a config copy of every block, whatever the snapshot's
# size) for each session hash it sees, up to 10,000 by default; each API call without one
# (/call/submit, a rejected one too) is a new session, so 3,000 small calls held ~130 MiB. A
# gate page has one person and a few tabs: past this count the least recently used session
# is dropped (~3 MiB held at most). An open tab's status poll (every 1.5 s) keeps its own
# session recent; one dropped all the same asks its Confirm again.
SESSIONS = 64
QUEUE_IDLE_S = 0.01
PLOT_ID = "hill-plot"
# One scope, joined in this order; gate_start.js last, once every part has declared its state.
JS_PARTS = (
    "gate_state.js",
    "gate_draw.js",
    "gate_sprites.js",
    "gate_ui.js",
    "gate_labels.js",
    "gate_suspects.js",
    "gate_start.js",
)
CONTEXT_ID = "hill-context"
GONE = "this gate is decided and its page closed; it no longer accepts edits"
# The page's calls (interaction_app/page_calls.py): a POST of the argument as JSON to
# <page>/api/page/<name>, on the page's own path (the service serves a gate under
# /<run>/gate/<epoch>/, a page alone at /); a refusal rejects with the server's one line.
CALL_JS = """const PAGE_API = location.pathname.replace(/\\/?$/, "/") + "api/page/";
const pageCall = (name, data) => fetch(PAGE_API + name, {
  method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
  body: data === undefined ? "" : JSON.stringify(data),
}).then(async (reply) => {
  const body = await reply.json().catch(() => null);
  if (!reply.ok) throw new Error((body && body.error) || `${name}: HTTP ${reply.status}`);
  return body;
});
"""
# The page's script: the parts above in one scope, run once the gate's opening has arrived
# (gate_state.js reads ``page``: its points, side panel and title); if the gate is gone by
# then, the plot's status line says so. ~70 KB: served by the page's host at
# <page>/api/page/script (browser-cached; page_calls.script_response), not held in the page's
# config, which Gradio copies and encodes at every page load and /config request.
PAGE_SCRIPT = (
    CALL_JS
    + "pageCall('opening').then((page) => {\n"
    + "\n".join((STATIC / name).read_text() for name in JS_PARTS)
    + "\n}, (err) => {\n"
    "  const line = element.querySelector('.hill-status');\n"
    "  const why = (err && err.message) || err;\n"
    "  if (line) line.textContent = `This gate's page could not open: ${why}`;\n"
    "});\n"
)
# The plot's js_on_load: fetch the page's script and run it with the names Gradio gives
# js_on_load (element, trigger, props, server, upload, watch).
LOAD_JS = """const where = location.pathname.replace(/\\/?$/, "/") + "api/page/script";
const failed = (err) => {
  const line = element.querySelector('.hill-status');
  if (line) line.textContent = `This gate's page could not open: ${(err && err.message) || err}`;
};
fetch(where, { credentials: "same-origin" })
  .then((reply) => {
    if (!reply.ok) throw new Error(`its script: HTTP ${reply.status}`);
    return reply.text();
  })
  .then((source) => {
    const run = new Function("element", "trigger", "props", "server", "upload", "watch", source);
    run(element, trigger, props, server, upload, watch);
  })
  .catch(failed);
"""
PLOT_TEMPLATE = """
<div class="hill-root" tabindex="0">
  <div class="hill-toolbar">
    <button class="hill-undo" title="Ctrl+Z, anywhere but in a text field">Undo</button>
    <button class="hill-reset">Reset</button>
    <button class="hill-fit">Fit view</button>
    <span>Scale of</span><select class="hill-scale-class" title="the class the slider scales">
    </select>
    <input class="hill-scale" type="range" min="0" max="3" step="0.05" value="1">
    <span class="hill-scale-val">1.00×</span>
    <label class="hill-moveonly" title="drops move points without relabelling (or hold Shift)">
      <input type="checkbox" class="hill-moveonly-box"> move only</label>
  </div>
  <div class="hill-status">Drag a centre to move its class (drop it on another to merge). Drop a
    point on another class to relabel it; Shift-drop to move it alone. Click a point for its
    card; over a point, 0-9 relabel and X excludes. Wheel zooms, dragging the background pans.
  </div>
  <div class="hill-lock"></div>
  <div class="hill-note"></div>
  <div class="hill-main">
    <div class="hill-stage"><canvas class="hill-canvas"></canvas>
      <div class="hill-tip"></div><div class="hill-card"></div>
    </div>
    <div class="hill-suspects" tabindex="0"></div>
  </div>
  <div class="hill-similar"></div>
  <div class="hill-legend"></div>
  <div class="hill-readout hill-muted">Edit the layout to see what it asks of the model.</div>
</div>
"""
# Gradio's js= hook on a button: replace the first input with the plot's edited rows.
READ_EDITS_JS = f"""(edits, ...rest) => {{
  const root = document.querySelector('#{PLOT_ID} .hill-root');
  return [root && root.hill ? root.hill.payload() : null, ...rest];
}}"""
# After Confirm: the reply carries the decision's lines (time, where the run went, the file),
# so this page locks on them at once and tells the other tabs of this browser. No status poll
# is needed first: on a loaded machine that poll came after the server had closed (issue 18).
LOCK_JS = f"""(decided) => {{
  const root = document.querySelector('#{PLOT_ID} .hill-root');
  if (root && root.hill) {{
    if (decided && decided.decided) {{ root.hill.decidedHere(decided); return; }}
    root.hill.lock('Decision recorded: this gate no longer accepts edits.', false);
    root.hill.checkNow();
  }}
}}"""
# The context panel's confusion cells and top-confusion entries highlight their points on the
# plot; each carries its validation count, which the page states beside the snapshot's.
CONFUSION_JS = f"""
element.addEventListener('click', (e) => {{
  const cell = e.target.closest('[data-true][data-pred]');
  const root = document.querySelector('#{PLOT_ID} .hill-root');
  if (cell && root && root.hill) root.hill.highlight(Number(cell.dataset.true),
    Number(cell.dataset.pred), Number(cell.dataset.count));
}});
"""
JSON_TYPES = {type(None): "null", dict: "an object", str: "a string", bool: "a boolean"}
CONFIRM_TEXT = {
    "approve": "**Approve?** {edit}",
    "skip": "**Skip?** This page's edits are dropped; training resumes with the previous teacher "
    "(kept or cleared as `hill.on_skip` says). An unedited table is saved with decision *skip*.",
    "stop": "**Stop the run?** Training ends at this gate; the run is finalised with what it has. "
    "An unedited table is saved with decision *stop*.",
}


def build_gate_app(
    snapshot: pd.DataFrame,
    context: GateContext,
    on_decision: Callable[[GateDecision], None],
) -> gr.Blocks:
    """Build (not launch) the page of one gate: the page app (:func:`build_page_app`) serving
    this gate alone, whatever the request's path.

    Args:
        snapshot: the gate's snapshot table (sample_id, label, class_name, pred, x, y), N rows.
        context: what the person needs to decide and where the decision goes.
        on_decision: called once, after the edits Parquet is written, with the decision.
    """
    page = GatePage(snapshot, context, on_decision)
    demo = build_page_app(lambda request: page, title=page.title)
    demo.gate_page = page  # the page script's calls (page_calls.py), on launch_gate's route
    demo.gate_recorder = page.recorder  # GateServer.decide records timeouts through the same lock
    demo.gate_presence = page.presence  # GateServer.close waits for open pages to lock
    return demo


def build_page_app(
    pages: Callable[[gr.Request], GatePage | None],
    title: str = "hill gate",
    sessions: int = SESSIONS,
) -> gr.Blocks:
    """Build (not launch) the gate page app: one Blocks for every gate it serves.

    Nothing of a gate is built into the page: each callback asks ``pages(request)`` for the
    gate of the request (None: it is gone, answered 410), and the page's script opens with the
    gate's points, side panel and title from the ``opening`` call (page_calls.py). So the gate
    service builds one app at start-up, and a first visit of a gate costs its state
    (:class:`GatePage`), not a Gradio app (~80 ms of CPU and ~85 routes each, the largest share
    of the service's load with 100 gates).

    Args:
        pages: the gate a request is for (its path names it in the service).
        title: the browser tab's title until the script sets the gate's own.
        sessions: browser sessions Gradio keeps state for (least recently used dropped).
    """
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                _plot()
            with gr.Column(scale=1, min_width=320):
                _decision_panel(pages)
                gr.HTML(
                    '<div class="hill-context"></div>',
                    elem_id=CONTEXT_ID,
                    css_template=_css(),
                    js_on_load=CONFUSION_JS,
                )
        _api(pages)
        # No load event: a tab opened after the decision learns it from the script's first
        # status call (gate_ui.js pollStatus -> panel), which hides the buttons; a Gradio load
        # event did the same through its queue, ~0.5-1.6 s a page load under 50 editors.

    demo.state_session_capacity = sessions  # read when an app is made of it (mounted)
    # One app serves every gate of the service, and Gradio runs each event listener one call at
    # a time by default: every tab's load event, and every gate's Confirm, waited for all the
    # others (the load event's p95 was 1.6 s under 50 editors). Each gate's recorder has its own
    # lock, and the rest of a call is read-only, so they run side by side (in Gradio's threads).
    demo.queue(default_concurrency_limit=None)
    # Gradio's queue looks for new events every 1 ms while it has none: ~1,000 wake-ups a
    # second, 2-3 % of a core for a gate service that waits all day. Every 10 ms (as its
    # progress loop already does) costs a click at most 10 ms more.
    demo._queue.sleep_when_free = QUEUE_IDLE_S
    _name_missing_inputs(demo)
    _forget_finished_calls(demo)
    return demo


def _event_page(pages, request: gr.Request) -> GatePage:
    """The gate of an event (a button, the page load, an API call); gone: one gr.Error."""
    page = pages(request)
    if page is None:
        raise gr.Error(GONE, print_exception=False)
    return page


def _name_missing_inputs(demo: gr.Blocks) -> None:
    """Gradio refuses a call with too few inputs by a bare ValueError, which an API client sees
    as ``{"error": null}``; say instead which inputs the endpoint takes (one line)."""
    validate = demo.validate_inputs

    def validate_inputs(block_fn, inputs) -> None:
        try:
            validate(block_fn, inputs)
        except ValueError:
            names = list(inspect.signature(block_fn.fn).parameters) if block_fn.fn else []
            wanted = f" ({', '.join(names)})" if names else ""
            raise gr.Error(
                f"{block_fn.api_name or block_fn.name}: expected {len(block_fn.inputs)} "
                f"inputs{wanted}, got {len(inputs)}",
                print_exception=False,
            ) from None

    demo.validate_inputs = validate_inputs


def _forget_finished_calls(demo: gr.Blocks, keep: int = SESSIONS) -> None:
    """Drop what Gradio keeps of a finished one-shot API call once ``keep`` newer ones finished.

    A ``/call/<api>`` without a session hash is its own session (hash = event id). Gradio keeps
    its message queue, event-id set and SessionState until the caller reads the result stream,
    and the queue even after that: a client that only POSTs (3,000 malformed submits) left ~30
    KiB each. Browser sessions (their own hash) are untouched; a caller who reads its result
    within ``keep`` later calls still gets it.
    """
    from gradio.server_messages import ProcessCompletedMessage

    queue, finished = demo._queue, OrderedDict()  # event id -> None, oldest first
    send_message = queue.send_message

    def send_and_forget(event, message) -> None:
        send_message(event, message)
        one_shot = event.session_hash == event._id
        if one_shot and isinstance(message, ProcessCompletedMessage):
            finished[event._id] = None
            while len(finished) > keep:
                _forget_session(demo, finished.popitem(last=False)[0])

    queue.send_message = send_and_forget
    queue.ANALYTICS_MAX_EVENTS = keep  # per-event timings for monitoring (off): 10,000


def _forget_session(demo: gr.Blocks, session: str) -> None:
    queue = demo._queue
    queue.pending_messages_per_session.pop(session, None)
    queue.pending_event_ids_session.pop(session, None)
    holder = getattr(demo, "state_holder", None)  # set when the app is made
    if holder is not None:
        with holder.lock:
            holder.session_data.pop(session, None)
            holder.time_last_used.pop(session, None)


def _css() -> str:
    return (STATIC / "gate.css").read_text()


def _plot() -> gr.HTML:
    """The canvas scatter; its script opens with the gate's ``opening`` and calls the readout,
    status and item previews while the person works, each a POST to the page host's own route
    (:mod:`interaction_app.page_calls`), not a Gradio server function."""
    return gr.HTML(
        html_template=PLOT_TEMPLATE,
        css_template=_css(),
        js_on_load=LOAD_JS,
        elem_id=PLOT_ID,
    )


def _decision_panel(pages) -> tuple[gr.Markdown, gr.Row]:
    """Approve / Skip / Stop, each through a confirmation step; returns status line and buttons."""
    pending = gr.State(None)  # the decision awaiting confirmation, per browser session
    status = gr.Markdown("**Waiting for your decision.**", elem_id="hill-decision-status")
    with gr.Row(elem_id="hill-decision-buttons") as buttons:
        asks = [
            (gr.Button("Approve", variant="primary"), "approve"),
            (gr.Button("Skip"), "skip"),
            (gr.Button("Stop run", variant="stop"), "stop"),
        ]
    with gr.Group(visible=False, elem_id="hill-decision-confirm") as confirm_box:
        confirm_text = gr.Markdown()
        with gr.Row():
            confirm = gr.Button("Confirm", variant="primary")
            cancel = gr.Button("Cancel")
    edits = gr.JSON(visible=False)  # carrier for the plot's rows (filled by READ_EDITS_JS)
    decided = gr.JSON(visible=False)  # carrier of the decision's lines to LOCK_JS
    panel = [confirm_box, buttons]
    for button, decision in asks:
        button.click(
            _asker(pages, decision),
            inputs=edits,
            outputs=[pending, confirm_text, *panel],
            js=READ_EDITS_JS,
            api_visibility="private",
        )
    cancel.click(
        lambda: (None, gr.Group(visible=False), gr.Row(visible=True)),
        outputs=[pending, *panel],
        api_visibility="private",
    )

    def confirm_fn(edits: Any, pending: str | None, request: gr.Request):
        """Record the pending decision with the plot's current edits."""
        recorder = _event_page(pages, request).recorder
        if pending not in DECISIONS:
            raise gr.Error("Nothing to confirm: press Approve, Skip or Stop run first.")
        _record(recorder, pending, edits)
        lines = decided_lines(recorder)
        return _decided_text(recorder), lines, gr.Group(visible=False), gr.Row(visible=False)

    confirm.click(
        confirm_fn,
        inputs=[edits, pending],
        outputs=[status, decided, *panel],
        js=READ_EDITS_JS,
        api_visibility="private",
    ).success(None, inputs=decided, js=LOCK_JS)
    return status, buttons


def _asker(pages, decision: str):
    """The click of ``decision``'s button: show what it will do; for approve, check the edits
    first and size them. (A closure, not a partial: Gradio finds gr.Request by annotation.)"""

    def ask(edits: Any, request: gr.Request):
        recorder = _event_page(pages, request).recorder
        edit = ""
        if decision == "approve":
            edit = _describe(recorder, _edit(recorder, edits))
        text = CONFIRM_TEXT[decision].format(edit=edit)
        return decision, text, gr.Group(visible=True), gr.Row(visible=False)

    return ask


def decided_lines(recorder: GateRecorder) -> dict[str, Any]:
    """The status reply of a decided gate: what every page locks on (see :func:`_lines`) and
    the recorded layout every page then shows, whatever it had itself (gate_ui.js
    ``showRecorded``)."""
    return {
        "decided": True,
        "decision": recorder.decision.decision,
        **_lines(recorder),
        "layout": recorder.recorded_layout(),
    }


def _lines(recorder: GateRecorder) -> dict[str, str]:
    """What every page shows of the recorded decision: ``message`` (the banner: when, by whom,
    where the run went) and ``detail`` (the file)."""
    d = recorder.decision
    return {
        "message": f"{recorder.announcement()} This gate no longer accepts edits.",
        "detail": f"Wrote {d.edits_path} (sha256 {d.edits_sha256[:12]}…).",
    }


def _decided_text(recorder: GateRecorder) -> str:
    d = recorder.decision
    return (
        f"**Decision recorded: {d.decision}.** {recorder.announcement()} Wrote "
        f"`{d.edits_path}` (sha256 `{d.edits_sha256[:12]}…`). This gate no longer accepts edits."
    )


def _edit(recorder: GateRecorder, edits: Any) -> PageEdit:
    try:
        rows = edits if edits is not None else []
        return rows_to_edits(recorder.snapshot, rows, len(recorder.context.class_names))
    except EditsError as err:
        raise gr.Error(str(err), print_exception=False) from None


def _describe(recorder: GateRecorder, edit: PageEdit) -> str:
    ctx = recorder.context
    x, y, moved, label_after, excluded = edit
    table = make_edits(recorder.snapshot, x, y, moved, "", ctx.gate_epoch, label_after, excluded)
    s = edits_summary(table)
    if not s["points_displaced"]:
        # hill_core.loop.after_gate: an approval that moves nothing sets no teacher
        text = f"{UNEDITED_APPROVE[0].upper()}{UNEDITED_APPROVE[1:]}."
    else:
        text = (
            "The edited layout becomes the teacher from the next epoch on. "
            f"{int(s['points_displaced'])} of {len(edit.x)} points displaced "
            f"({int(s['points_moved'])} moved one by one), mean displacement "
            f"{s['mean_displacement']:.3g} view units."
        )
    return f"{text} {_corrections_line(recorder, edit, s)}".strip()


def _corrections_line(recorder: GateRecorder, edit: PageEdit, summary: dict) -> str:
    """What the approve does to labels: items changed at this gate, and all corrections in force
    (earlier gates' included), as the file will state them."""
    state = snapshot_state(recorder.snapshot)
    changed = (edit.label_after != state["current_label"].to_numpy()) | (
        edit.excluded != state["excluded"].to_numpy()
    )
    relabelled, excluded = int(summary["items_relabelled"]), int(summary["items_excluded"])
    if not changed.any() and not relabelled and not excluded:
        return ""
    return (
        f"Labels: {int(changed.sum())} item(s) changed at this gate; in force after it: "
        f"{relabelled} relabelled, {excluded} excluded."
    )


def _record(recorder: GateRecorder, decision: str, edits: Any) -> GateDecision:
    """Validate and record; every failure becomes one clear gr.Error and writes nothing.

    The rows are checked for every decision, as the service's JSON API does, so a malformed
    request never records anything; skip and stop then record the unedited layout (and the
    corrections of earlier gates, unchanged).
    """
    x, y, moved, label_after, excluded = _edit(recorder, edits)
    if decision != "approve":
        x, y, moved, label_after, excluded = None, None, None, None, None
    try:
        return recorder.record(decision, x, y, moved, label_after=label_after, excluded=excluded)
    except (EditsError, GateClosedError) as err:
        raise gr.Error(str(err), print_exception=False) from None


def _api(pages) -> None:
    """``/snapshot``, ``/submit`` and ``/item``: drive a gate from a script, without a browser."""

    def snapshot_api(request: gr.Request) -> dict:
        """The gate's snapshot (one list per column) and its context."""
        page = _event_page(pages, request)
        return {**json.loads(page.view_json()), **page.snapshot_fields()}

    def submit_api(rows: list[dict], decision: str, request: gr.Request) -> dict:
        """Record a decision. rows: [{sample_id, x, y, moved?, label?, label_after?, excluded?}],
        the points you changed.

        Points not listed keep their snapshot position and state. label_after: the item's
        class after this gate (a relabel; its given label undoes an earlier one); excluded:
        true takes it out of training ("not a valid item"). decision: approve, skip or stop.
        Returns {decision, edits_path, edits_sha256}.
        """
        recorder = _event_page(pages, request).recorder
        if not isinstance(rows, list):  # None too: "no rows" is [] here, as in the JSON API
            raise gr.Error(
                f"rows must be a list of {{sample_id, x, y, moved}} objects, got "
                f"{JSON_TYPES.get(type(rows), type(rows).__name__)}",
                print_exception=False,
            )
        result = _record(recorder, decision, rows)
        return {
            "decision": result.decision,
            "edits_path": result.edits_path,
            "edits_sha256": result.edits_sha256,
        }

    def item_api(sample_id: int, request: gr.Request) -> dict:
        """One item's preview: {sample_id, item}; item is a data: URL of a small image (image
        data, a signal's sparkline) or a line of text (a table row), None when the snapshot
        has none."""
        return {"sample_id": sample_id, "item": _event_page(pages, request).items.get(sample_id)}

    gr.api(snapshot_api, api_name="snapshot")
    gr.api(submit_api, api_name="submit")
    gr.api(item_api, api_name="item")

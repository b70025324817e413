"""The page script's calls, answered from a gate's state: ``opening``, ``readout``, ``status``
and ``item``.

The script itself comes from ``GET <page>/api/page/script`` (:func:`script_response`). It POSTs
each call as JSON to ``<page>/api/page/<name>`` (the body is the call's one
argument; ``opening`` takes none), a route of the page's own host: the gate service's
(pipelines/gate_service/service.py) or the in-process page's (interaction_app/server.py).
They were Gradio server functions, and Gradio's ``/component_server`` route costs ~1 ms of
CPU per call before the function runs (route matching over the mounted app, a SessionState
per tab, dependency solving): with 50 editors, most of the gate service's load, as the
readout alone is ~40 % of the page's requests (benchmarks/gate_service_load.py, profiled).

Every refusal is a :class:`CallError`: its HTTP status and one line naming the field, answered
as ``{"error": line}`` before the gate's state is touched.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import Response

from hill_core.edits import EditsError
from interaction_app.app import GONE, PAGE_SCRIPT, decided_lines
from interaction_app.http_safety import error_response
from interaction_app.ops import OpsError, check_ops, check_sample_id
from interaction_app.page_state import GatePage
from interaction_app.presence import PollError, check_poll

CALLS = ("opening", "readout", "status", "item")
ROUTE = "api/page/"  # under the page's path: ``/api/page/readout``, ``/<run>/gate/4/api/page/item``


SCRIPT = PAGE_SCRIPT.encode()
# The script's version: a tab revalidates it (Cache-Control no-cache) and gets 304 while it is
# the same, so an upgraded hill is never served from a stale cache.
SCRIPT_ETAG = f'"{hashlib.sha256(SCRIPT).hexdigest()[:32]}"'
SCRIPT_HEADERS = {"Cache-Control": "private, no-cache", "ETag": SCRIPT_ETAG}


def script_response(if_none_match: str | None) -> Response:
    """``GET <page>/api/page/script``, for either host: the page's script, or 304 when the tab
    holds this version (``If-None-Match``)."""
    if if_none_match and SCRIPT_ETAG in if_none_match:
        return Response(b"", 304, SCRIPT_HEADERS, "text/javascript")
    return Response(SCRIPT, 200, SCRIPT_HEADERS, "text/javascript")


def call_response(page: GatePage | None, name: str, body: bytes) -> Response:
    """A call route's answer, for either host: :func:`answer`'s JSON, or its refusal as one
    line ``{"error": ...}``."""
    try:
        return Response(answer(page, name, body), media_type="application/json")
    except CallError as err:
        return error_response(err.status, err)


class CallError(Exception):
    """A call the page refuses: its HTTP status and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def answer(page: GatePage | None, name: str, body: bytes) -> bytes:
    """The JSON body that answers call ``name`` with ``body`` (the argument, JSON; empty: none).

    Raises:
        CallError: an unknown call (404), a gate gone (410), a body or argument the page never
            sends (400, naming the field).
    """
    if name not in CALLS:
        raise CallError(404, f"{name[:40]!r} is not a call of the page ({', '.join(CALLS)})")
    if page is None:
        raise CallError(410, f"{name}: {GONE}")
    if name == "opening":  # serialized once per gate: ~20 ms of encoding for 2,000 points
        return page.opening()
    return json.dumps(CALLERS[name](page, argument(name, body))).encode()


def argument(name: str, body: bytes) -> Any:
    """The call's argument: the body as JSON, None when empty. NaN and Infinity literals are
    read as floats, which every check below refuses by field."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except RecursionError:
        raise CallError(400, f"{name}: body is not acceptable JSON (nested too deeply)") from None
    except ValueError as err:  # JSONDecodeError, bad UTF-8, over-long integers
        raise CallError(400, f"{name}: body is not JSON ({str(err)[:120]})") from None


def readout(page: GatePage, ops: Any) -> dict[str, float]:
    """What the edit state asks of the model (~1 ms of NumPy: page_state.Readout)."""
    try:
        checked = check_ops(ops, len(page.context.class_names))
    except OpsError as err:
        raise CallError(400, f"readout: {err}") from None
    try:
        return page.readout(checked)
    except (EditsError, ValueError) as err:  # finite, but past float32 once combined
        raise CallError(400, f"readout: ops: {err}") from None


def status(page: GatePage, info: Any) -> dict[str, Any]:
    """The decision, once recorded; the poll counts the tab as open (presence)."""
    try:
        check_poll(info)
    except PollError as err:  # never counted
        raise CallError(400, f"status: {err}") from None
    page.presence.seen(info)
    if page.recorder.decision is None:
        return {"decided": False, "message": ""}
    return decided_lines(page.recorder)


def item(page: GatePage, sample_id: Any) -> dict[str, Any]:
    """An item's preview (None when the snapshot has no such id)."""
    try:
        sample_id = check_sample_id(sample_id)
    except OpsError as err:
        raise CallError(400, f"item: {err}") from None
    return {"sample_id": sample_id, "item": page.items.get(sample_id)}


CALLERS = {"readout": readout, "status": status, "item": item}

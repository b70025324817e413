"""The gate service's JSON decision API: read a bounded body, parse it strictly, say what is wrong.

``POST /<run>/gate/<epoch>/api/decision`` takes ``{"decision": "approve"|"skip"|"stop",
"rows": [{"sample_id": int, "x": float, "y": float, "moved": bool, "label"?: int,
"label_after"?: int, "excluded"?: bool}]}``; rows not listed keep their snapshot position and
label state (``label_after``: the class the item is from this gate on; ``excluded``: out of
training), and skip and stop record the unedited layout (their
rows are still checked, so a malformed request never records anything). Each problem is an
:class:`ApiError`, answered as one line of JSON before the recorder is reached.
"""

from __future__ import annotations

import json
from typing import Any

from hill_core.edits import DECISIONS

ROW_SHAPE = "{sample_id, x, y, moved[, label_after, excluded]}"  # a row of the API

KEYS = ("decision", "rows")


class ApiError(Exception):
    """A request the API refuses: its HTTP status and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_body(request, cap: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``cap`` bytes, declared or streamed."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "Content-Length is not a number")
        if int(declared) > cap:
            raise ApiError(413, f"body of {declared} bytes is over this gate's {cap} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise ApiError(413, f"body is over this gate's {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(body: bytes) -> tuple[str, list[Any]]:
    """``(decision, rows)`` from a JSON body; rows default to none (approve the layout as is)."""
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise ApiError(400, 'body must be a JSON object {"decision": ..., "rows": [...]}')
    unknown = sorted(set(payload) - set(KEYS))
    if unknown:
        raise ApiError(400, f"unknown key {unknown[0][:40]!r} (expected decision and rows)")
    decision = payload.get("decision")
    if not isinstance(decision, str) or decision not in DECISIONS:
        raise ApiError(422, f"decision must be one of {', '.join(DECISIONS)}")
    rows = payload.get("rows", [])
    if not isinstance(rows, list):
        raise ApiError(422, f"rows must be a list of {ROW_SHAPE} objects")
    found = _first_constant(rows, "rows")
    if found is not None:
        where, name = found
        raise ApiError(400, f"{where} is {name}, which is not a JSON number (send a finite one)")
    return decision, rows


def parse_json(body: bytes) -> Any:
    """Strict JSON: NaN and Infinity literals (which Python's json accepts) are parsed as
    :class:`_Constant` markers, never numbers; :func:`parse_body` refuses them by path
    (``rows[0].x is NaN``) once the body's shape is checked, so every refusal names a field."""
    try:
        return json.loads(body, parse_constant=_Constant)
    except RecursionError:
        raise ApiError(400, "body is not acceptable JSON (nested too deeply)") from None
    except ValueError as err:  # JSONDecodeError, bad UTF-8, over-long integers
        raise ApiError(400, f"body is not JSON ({str(err)[:120]})") from None


class _Constant:
    """Stands in for a NaN / Infinity literal until :func:`_first_constant` says where it is."""

    def __init__(self, name: str):
        self.name = name


def _first_constant(value: Any, path: str) -> tuple[str, str] | None:
    """The path (``rows[0].x``) and name of the first NaN / Infinity literal, in body order.

    Iterative: the parser already refused anything nested deeper than the recursion limit.
    """
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _Constant):
            return path, value.name
        if isinstance(value, dict):
            stack.extend(reversed([(f"{path}.{k[:40]}", v) for k, v in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(value)]))
    return None

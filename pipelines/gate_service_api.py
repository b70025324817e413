"""The gate service's JSON decision API: read a bounded body, parse it strictly, say what is wrong.

``POST /<run>/gate/<epoch>/api/decision`` takes ``{"decision": "approve"|"skip"|"stop",
"rows": [{"sample_id": int, "x": float, "y": float, "moved": bool, "label"?: int}]}``; rows
not listed keep their snapshot position, and skip and stop record the unedited layout (their
rows are still checked, so a malformed request never records anything). Each problem is an
:class:`ApiError`, answered as one line of JSON before the recorder is reached.
"""

from __future__ import annotations

import json
from typing import Any

from hill_core.edits import DECISIONS

BODY_BASE_BYTES = 64 * 1024  # headroom for the envelope and a pretty-printed body
BODY_BYTES_PER_ROW = 256  # a full row, pretty-printed, is about 110 bytes
KEYS = ("decision", "rows")


class ApiError(Exception):
    """A request the API refuses: its HTTP status and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def body_cap(n_rows: int) -> int:
    """The largest body a gate of ``n_rows`` points accepts, in bytes: every row, twice over."""
    return BODY_BASE_BYTES + BODY_BYTES_PER_ROW * n_rows


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
        raise ApiError(422, "rows must be a list of {sample_id, x, y, moved} objects")
    return decision, rows


def parse_json(body: bytes) -> Any:
    """Strict JSON: NaN and Infinity literals are refused (Python's json accepts them)."""
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise ApiError(400, "body is not acceptable JSON (nested too deeply)") from None
    except ValueError as err:  # JSONDecodeError, bad UTF-8, over-long integers
        raise ApiError(400, f"body is not JSON ({str(err)[:120]})") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")

"""Submitted rows -> a gate's edit, aligned with the snapshot rows, validated row by row.

The page's script, the ``submit`` endpoint and the gate service's JSON API send plain JSON rows;
these functions turn them into arrays for :class:`~interaction_app.recorder.GateRecorder`, and
name the first bad row in one line (:class:`~hill_core.edits.EditsError`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from hill_core.edits import EditsError, snapshot_state


class PageEdit(NamedTuple):
    """A gate's edit, aligned with the snapshot rows: targets x, y (N,) float64, moved (N,)
    bool, label_after (N,) int64 and excluded (N,) bool (the last two: the item's state after
    the gate, the snapshot's current state where the rows say nothing)."""

    x: np.ndarray
    y: np.ndarray
    moved: np.ndarray
    label_after: np.ndarray
    excluded: np.ndarray


def rows_to_edits(snapshot: pd.DataFrame, rows: Any, num_classes: int = 0) -> PageEdit:
    """Apply submitted rows to the snapshot: positions, moved flags and label corrections.

    Args:
        rows: list of ``{"sample_id", "x", "y", "moved"?, "label"?, "label_after"?,
            "excluded"?}``; rows not listed keep their snapshot position and state. ``label``,
            when given, must match the snapshot; ``label_after`` is a class id, ``excluded``
            true or false (absent: the snapshot's current state, earlier gates' corrections).
        num_classes: C; when > 0 every ``label_after`` must lie in [0, C).
    Raises:
        EditsError: one line naming the first bad row.
    """
    if isinstance(rows, dict) and "rows" in rows:
        rows = rows["rows"]
    if not isinstance(rows, list):
        raise EditsError(f"edits: expected a list of rows, got {type(rows).__name__}")
    index = {int(s): i for i, s in enumerate(snapshot["sample_id"])}
    labels = snapshot["label"].to_numpy(np.int64)
    state = snapshot_state(snapshot)
    edit = PageEdit(
        snapshot["x"].to_numpy(np.float64).copy(),
        snapshot["y"].to_numpy(np.float64).copy(),
        np.zeros(len(snapshot), bool),
        state["current_label"].to_numpy(np.int64).copy(),
        state["excluded"].to_numpy(bool).copy(),
    )
    seen: set[int] = set()
    for k, row in enumerate(rows):
        sid, px, py, is_moved, label = _parse_row(k, row)
        if sid not in index:
            raise EditsError(f"edits: unknown sample id {sid}")
        if sid in seen:
            raise EditsError(f"edits: sample id {sid} appears more than once")
        seen.add(sid)
        i = index[sid]
        if label is not None and label != labels[i]:
            raise EditsError(f"edits: sample {sid} has label {label}, snapshot says {labels[i]}")
        edit.x[i], edit.y[i], edit.moved[i] = px, py, is_moved
        after, out = _parse_correction(row, sid, num_classes)
        if after is not None:
            edit.label_after[i] = after
        if out is not None:
            edit.excluded[i] = out
    return edit


def rows_to_positions(
    snapshot: pd.DataFrame, rows: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Target x, y (N,) and moved (N,) of submitted rows, for callers that record positions
    only. Rows that carry a label correction are refused rather than silently dropped: such a
    caller must use :func:`rows_to_edits` and pass ``label_after``/``excluded`` on."""
    for k, row in enumerate(rows if isinstance(rows, list) else []):
        if isinstance(row, dict) and ("label_after" in row or "excluded" in row):
            raise EditsError(
                f"edits: row {k} carries label_after/excluded, which this endpoint does not "
                "record yet (rows_to_edits does)"
            )
    x, y, moved, _, _ = rows_to_edits(snapshot, rows)
    return x, y, moved


def _parse_row(k: int, row: Any) -> tuple[int, float, float, bool, int | None]:
    """One submitted row as typed values; NaN/inf/missing are errors, not silently dropped."""
    if not isinstance(row, dict):
        raise EditsError(f"edits: row {k} is not an object")
    try:
        sid = _integer(row["sample_id"], f"sample_id of row {k}")
        px, py = _finite(row, "x", sid), _finite(row, "y", sid)
    except KeyError as err:
        raise EditsError(f"edits: row {k} has no {err.args[0]}") from None
    moved = row.get("moved", False)
    if not isinstance(moved, bool):
        raise EditsError(f"edits: moved of sample {sid} must be true or false")
    label = row.get("label")
    return sid, px, py, moved, None if label is None else _integer(label, f"label of sample {sid}")


def _parse_correction(row: dict, sid: int, num_classes: int) -> tuple[int | None, bool | None]:
    """A row's ``label_after`` (a known class id) and ``excluded`` (a bool); None where absent."""
    after, out = row.get("label_after"), row.get("excluded")
    if after is not None:
        after = _integer(after, f"label_after of sample {sid}")
        if after < 0 or (num_classes > 0 and after >= num_classes):
            known = f"[0, {num_classes})" if num_classes > 0 else "non-negative"
            raise EditsError(
                f"edits: label_after of sample {sid} is {after}, not a known class id ({known})"
            )
    if out is not None and not isinstance(out, bool):
        raise EditsError(f"edits: excluded of sample {sid} must be true or false")
    return after, out


def _integer(value: Any, what: str) -> int:
    """An id or label: an int64, or a float with no fraction (JavaScript may send 3 as 3.0).

    Strings, booleans, NaN, 3.5 and integers beyond int64 are errors rather than silently
    truncated or coerced.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    raise EditsError(f"edits: {what} is {_short(value)} (must be a 64-bit integer)")


def _finite(row: dict, key: str, sid: int) -> float:
    value = row[key]
    try:
        if isinstance(value, bool):
            raise TypeError(key)
        number = float(value)
    except (TypeError, ValueError):
        raise EditsError(
            f"edits: {key} of sample {sid} is {_short(value)} (must be a number)"
        ) from None
    except OverflowError:  # an int beyond float's range
        number = math.inf
    if not math.isfinite(number):
        raise EditsError(f"edits: {key} of sample {sid} is {number} (must be finite)")
    return number


def _short(value: Any, limit: int = 40) -> str:
    """A value for an error message: one line, at most ``limit`` characters of its repr."""
    if isinstance(value, int) and abs(value) >= 2**63:
        return "an integer beyond 64 bits"  # (repr of a huge int can itself raise)
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"

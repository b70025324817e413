"""Pure functions between the snapshot table and what the page and the API exchange.

Nothing here knows about Gradio: the page's JavaScript and API clients send plain JSON, and
these functions turn it into validated position arrays (aligned with the snapshot rows) or
the live L_human readout.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from hill_core.edits import EditsError, make_edits
from hill_core.losses import (
    LossWeights,
    class_stats,
    frame_of,
    human_components,
    layout_loss,
    moved_in_batch,
)
from hill_core.teacher import (
    SCALE_TOLERANCE,
    SHIFT_TOLERANCE,
    Teacher,
    _float32,
    _nearest_class,
    layout_stats,
    teacher_from_edits,
)

# Tableau-10 then 10 lighter companions: distinct on white for up to 20 classes.
PALETTE = [
    *("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"),
    *("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"),
    *("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5"),
    *("#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"),
]


def class_colors(num_classes: int) -> list[str]:
    """One colour per class; beyond the palette, evenly spaced hues."""
    extra = [f"hsl({round(360 * k / num_classes)}, 60%, 45%)" for k in range(num_classes)]
    return [PALETTE[k] if k < len(PALETTE) else extra[k] for k in range(num_classes)]


def view_payload(snapshot: pd.DataFrame, class_names: list[str]) -> dict[str, Any]:
    """The snapshot as the page's script and the ``snapshot`` API endpoint see it (JSON-able)."""
    return {
        "sample_id": snapshot["sample_id"].astype(int).tolist(),
        "label": snapshot["label"].astype(int).tolist(),
        "pred": snapshot["pred"].astype(int).tolist(),
        "x": snapshot["x"].astype(float).tolist(),
        "y": snapshot["y"].astype(float).tolist(),
        "class_names": list(class_names),
        "colors": class_colors(len(class_names)),
    }


def rows_to_positions(
    snapshot: pd.DataFrame, rows: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply submitted rows to the snapshot: target x, y (N,) and moved (N,), snapshot-aligned.

    Args:
        rows: list of ``{"sample_id", "x", "y", "moved"?, "label"?}``; rows not listed keep their
            snapshot position. ``label``, when given, must match the snapshot.
    Raises:
        EditsError: one line naming the first bad row.
    """
    if isinstance(rows, dict) and "rows" in rows:
        rows = rows["rows"]
    if not isinstance(rows, list):
        raise EditsError(f"edits: expected a list of rows, got {type(rows).__name__}")
    index = {int(s): i for i, s in enumerate(snapshot["sample_id"])}
    labels = snapshot["label"].to_numpy(np.int64)
    x = snapshot["x"].to_numpy(np.float64).copy()
    y = snapshot["y"].to_numpy(np.float64).copy()
    moved = np.zeros(len(snapshot), bool)
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
        x[i], y[i], moved[i] = px, py, is_moved
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


class Readout:
    """Live L_human of an edited layout against the current one, for the page while dragging.

    The page sends its edit state, not 10,000 positions: per-class offsets and scales about the
    original class centres, plus the absolute positions of individually moved points. The
    same rule draws the points in the browser (static/gate_state.js, ``recompute``).

    What does not change between drags is computed once: the gate layout's class centres,
    spreads and radius (the teacher's "before" side) and the current layout's class centres
    and spreads (all the frame and the centre and spread terms read of it). A call then costs
    the edited layout's class statistics and the moved points, not a pass over a 10,000-row
    table and its (N, C) one-hot. ``reference`` computes the same numbers the long way
    (hill_core's ``teacher_from_edits`` and ``layout_loss``); the tests tie the two.
    """

    def __init__(self, snapshot: pd.DataFrame, num_classes: int, weights: LossWeights):
        self.snapshot = snapshot
        self.num_classes = num_classes
        self.weights = weights
        self.labels = snapshot["label"].to_numpy(np.int64)  # (N,)
        self.xy = snapshot[["x", "y"]].to_numpy(np.float64)  # (N, 2)
        self.ids = snapshot["sample_id"].to_numpy(np.int64)  # (N,)
        self.index = {int(s): i for i, s in enumerate(self.ids)}
        # The gate ("before") side of every teacher: the snapshot's own layout.
        centers, spreads, present, rms = layout_stats(self.xy, self.labels, num_classes)
        self.centers, self.spreads, self.present = centers, spreads, present  # (C, 2), (C,), (C,)
        self.radius = max(rms, 1e-6)
        self.current = torch.tensor(self.xy, dtype=torch.float32)
        self.labels_t = torch.tensor(self.labels)
        self.ids_t = torch.tensor(self.ids)
        # The current layout's class statistics, as a stand-in batch of two points per class
        # (mu_c +- (s_c, 0)): its centres and spreads are the whole layout's, so the frame and
        # L_center / L_spread come out as over all N points, at the cost of 2C.
        onehot = F.one_hot(self.labels_t, num_classes).to(torch.float32)
        mu, s = class_stats(self.current, onehot)
        here = onehot.sum(0) > 0  # (C,)
        cls = torch.arange(num_classes)[here]
        offset = torch.stack([s[here], torch.zeros_like(s[here])], dim=1)
        self.stand_in = torch.cat([mu[here] + offset, mu[here] - offset])  # (2C', 2)
        self.stand_in_labels = torch.cat([cls, cls])
        never = int(self.ids.min()) - 1 if self.ids.min() > -(2**63) else int(self.ids.max()) + 1
        self.stand_in_ids = torch.full((len(self.stand_in),), never, dtype=torch.int64)
        self.mu, self.here = mu, here

    def positions(self, ops: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Edited positions (N, 2) and moved flags (N,) from the page's edit state."""
        offsets = np.asarray(ops.get("offsets") or np.zeros((self.num_classes, 2)), np.float64)
        scales = np.asarray(ops.get("scales") or np.ones(self.num_classes), np.float64)
        c = self.centers[self.labels]  # (N, 2)
        # x0 + T + (S - 1)(x0 - C0), as gate_state.js computes it: exact x0 for untouched classes.
        q = self.xy + offsets[self.labels] + (scales[self.labels, None] - 1.0) * (self.xy - c)
        moved = np.zeros(len(q), bool)
        for sid, px, py in ops.get("moved") or []:
            i = self.index.get(int(sid))
            if i is not None:
                q[i] = (px, py)
                moved[i] = True
        return q, moved

    def teacher(self, q: np.ndarray, moved: np.ndarray) -> Teacher:
        """The teacher of edited positions q (N, 2), as ``teacher_from_edits`` reads them.

        hill_core/teacher.py's ``class_edits`` rule, with the gate's side precomputed: a class
        is shifted and scaled by its points that were not moved one by one (all of them, when
        every point of the class was moved one by one).
        """
        labels, num_classes = self.labels, self.num_classes
        whole = ~moved
        has_whole = np.bincount(labels[whole], minlength=num_classes) > 0
        use = whole | ~has_whole[labels]  # (N,) the points that speak for their class
        if use.all():
            c0, s0 = self.centers, self.spreads
            c1, s1, _, _ = layout_stats(q, labels, num_classes)
        else:
            c0, s0, _, _ = layout_stats(self.xy[use], labels[use], num_classes)
            c1, s1, _, _ = layout_stats(q[use], labels[use], num_classes)
        present = self.present
        shift = np.where(has_whole[:, None], c1 - c0, 0.0)
        ratio = np.divide(s1, s0, out=np.ones(num_classes), where=s0 > 0)
        ratio = np.where(has_whole, ratio, 1.0)
        shifted = present & (np.linalg.norm(shift, axis=1) > SHIFT_TOLERANCE)
        scaled = present & (np.abs(ratio - 1.0) > SCALE_TOLERANCE) & (s0 > 0)
        shifts = np.where(shifted[:, None], shift, 0.0)
        targets = self.centers + shifts
        rows = np.flatnonzero(moved)
        rows = rows[np.argsort(self.ids[rows], kind="stable")]
        moved_q = q[rows]
        home = _nearest_class(moved_q, targets, present)
        return Teacher(
            gate_centers=_float32("gate_centers", self.centers),
            gate_spreads=_float32("gate_spreads", self.spreads),
            shifts=_float32("shifts", shifts),
            shifted=torch.tensor(shifted),
            scales=_float32("scales", np.where(scaled, ratio, 1.0)),
            scaled=torch.tensor(scaled),
            anchors=torch.tensor(present & ~shifted & ~scaled),
            moved_ids=torch.tensor(self.ids[rows]),
            moved_targets=_float32("moved_targets", moved_q),
            moved_home=torch.tensor(home, dtype=torch.int64),
            target_centers=_float32("target_centers", targets),
            gate_radius=_float32("gate_radius", np.float64(self.radius)),
        )

    def __call__(self, ops: dict[str, Any]) -> dict[str, float]:
        """L_center, L_spread, L_point and L_human of the current layout against the edit."""
        q, moved = self.positions(ops)
        if not np.isfinite(q).all():
            raise ValueError("readout: edit state holds a non-finite position")
        teacher = self.teacher(q, moved)
        with torch.no_grad():
            parts = human_components(
                self.stand_in, self.stand_in_labels, self.stand_in_ids, teacher
            )
            rows = torch.from_numpy(np.flatnonzero(moved))
            if len(rows):  # L_point over the moved points alone: the others add nothing
                frame = frame_of(self.mu, self.here, teacher)
                p = self.current[rows]
                _, target = moved_in_batch(p, self.ids_t[rows], teacher, self.mu, self.here, frame)
                parts["l_point"] = (((p - target) / frame.unit) ** 2).sum(1).mean()
            l_human = torch.stack(list(parts.values())) @ self.weights.vector(self.current)
        values = {k: float(v) for k, v in parts.items()}
        values.update(l_human=float(l_human))
        return values

    def reference(self, ops: dict[str, Any]) -> dict[str, float]:
        """The same readout the long way: an edits table, ``teacher_from_edits``, then
        ``layout_loss`` over all N points (what the tests check ``__call__`` against)."""
        q, moved = self.positions(ops)
        edits = make_edits(self.snapshot, q[:, 0], q[:, 1], moved, "", 0)
        teacher = teacher_from_edits(edits, self.num_classes)
        return layout_loss(self.current, self.labels_t, self.ids_t, teacher, self.weights)

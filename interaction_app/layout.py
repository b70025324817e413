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

from hill_core.edits import (
    SNAPSHOT_COLUMNS,
    EditsError,
    correction_counts,
    make_edits,
    snapshot_state,
)
from hill_core.losses import MIN_FRAME_CLASSES, TINY, LossWeights, layout_loss
from hill_core.teacher import (
    SCALE_TOLERANCE,
    SHIFT_TOLERANCE,
    Teacher,
    _float32,
    _nearest_class,
    layout_stats,
    teacher_from_edits,
)
from interaction_app.rows import PageEdit, rows_to_edits, rows_to_positions  # noqa: F401 (API)

# Tableau-10, then 10 picked greedily from Kelly's and Trubetskoy's sets for the largest
# smallest CIELAB distance to those before them, none near white (the canvas) or black (rings).
# Any two of the 20 differ by ΔE76 >= 26 and each from white by >= 45 (Tableau's own light
# companions: 16.6 between two of them, 18.8 from white); tests/test_app_many_classes.py.
PALETTE = [
    *("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"),
    *("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"),
    *("#f032e6", "#f99379", "#924900", "#008856", "#004949"),
    *("#b66dff", "#006ddb", "#b3446c", "#800000", "#808000"),
]
GOLDEN_ANGLE = 137.508  # degrees: successive hues past the palette never repeat a neighbour's


def class_colors(num_classes: int) -> list[str]:
    """One colour per class; past the palette's 20, golden-angle hues in two lightnesses."""
    extra = [
        f"hsl({GOLDEN_ANGLE * k % 360:.0f}, 65%, {38 if k % 2 else 52}%)"
        for k in range(len(PALETTE), num_classes)
    ]
    return (PALETTE + extra)[:num_classes]


def view_payload(snapshot: pd.DataFrame, class_names: list[str]) -> dict[str, Any]:
    """The snapshot as the page's script and the ``snapshot`` API endpoint see it (JSON-able).

    With the snapshot's state (hill_core.edits.snapshot_state, defaults for older files): the
    label training uses now, whether the item is excluded, and the suspects ranking; a score
    that is NaN (not scored) is sent as null, since JSON has no NaN.
    """
    state = snapshot_state(snapshot)
    score = state["suspect_score"].to_numpy(np.float64)
    return {
        "sample_id": snapshot["sample_id"].astype(int).tolist(),
        "label": snapshot["label"].astype(int).tolist(),
        "pred": snapshot["pred"].astype(int).tolist(),
        "x": snapshot["x"].astype(float).tolist(),
        "y": snapshot["y"].astype(float).tolist(),
        "current_label": state["current_label"].astype(int).tolist(),
        "excluded": state["excluded"].astype(bool).tolist(),
        "suspect_score": [float(v) if math.isfinite(v) else None for v in score],
        "suspect_pred": state["suspect_pred"].astype(int).tolist(),
        "class_names": list(class_names),
        "colors": class_colors(len(class_names)),
    }


class Readout:
    """Live L_human of an edited layout against the current one, for the page while dragging.

    The page sends its edit state, not 10,000 positions: per-class offsets and scales about the
    original class centres, plus the absolute positions of individually moved points. The
    same rule draws the points in the browser (static/gate_state.js, ``recompute``).

    A call is NumPy on float64, no torch: the loss terms act on per-class statistics (C rows),
    and torch's matmul on tensors that small still wakes MKL's thread team, which on a busy
    2-core machine waits for whole scheduler slices (the torch version took 4 to 15 ms a call
    in the median at 10,000 points, in steps of ~4 ms; this one ~1 ms). What does not change
    between drags is computed once: the gate layout's class centres, spreads and radius (the
    teacher's "before" side), which are also the current layout's (the page scores the gate's
    own layout). A call then costs one bincount pass over the N points for the edited layout's
    class statistics, and the moved points.

    ``reference`` computes the same numbers the long way (hill_core's ``teacher_from_edits``
    and ``layout_loss`` over all N points, float32); the tests tie the two.
    """

    def __init__(self, snapshot: pd.DataFrame, num_classes: int, weights: LossWeights):
        self.snapshot = snapshot
        self.num_classes = num_classes
        self.weights = weights
        self.labels = snapshot["label"].to_numpy(np.int64)  # (N,)
        self.xy = snapshot[["x", "y"]].to_numpy(np.float64)  # (N, 2)
        self.ids = snapshot["sample_id"].to_numpy(np.int64)  # (N,)
        self.index = {int(s): i for i, s in enumerate(self.ids)}
        state = snapshot_state(snapshot)  # earlier gates' corrections: the page's start
        self.current_label = state["current_label"].to_numpy(np.int64)  # (N,)
        self.excluded = state["excluded"].to_numpy(bool)  # (N,)
        self._derived: tuple[bytes, Readout] | None = None  # the readout of corrected labels
        # The gate ("before") side of every teacher: the snapshot's own layout. The current
        # layout is the same table, so its class centres mu and spreads s are these too.
        self.centers, self.spreads, self.present = class_stats_np(self.xy, self.labels, num_classes)
        everyone = np.zeros(len(self.xy), np.int64)  # one class: the layout's RMS radius
        self.radius = max(layout_stats(self.xy, everyone, 1)[3], 1e-6)
        self.weight_vector = np.array([weights.w_center, weights.w_spread, weights.w_point])
        # Only for ``reference``: the current layout as layout_loss takes it.
        self.current = torch.tensor(self.xy, dtype=torch.float32)
        self.labels_t = torch.tensor(self.labels)
        self.ids_t = torch.tensor(self.ids)

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

    def corrections(self, ops: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Labels after (N,) and excluded (N,) from the page's ``labels``: ``[sample_id,
        label_after, excluded]`` of every item whose state differs from the snapshot's."""
        label_after, excluded = self.current_label.copy(), self.excluded.copy()
        for sid, label, out in ops.get("labels") or []:
            i = self.index.get(int(sid))
            if i is not None:
                label_after[i], excluded[i] = int(label), bool(out)
        return label_after, excluded

    def latent(self, ops: dict[str, Any]) -> tuple[Readout, np.ndarray, np.ndarray]:
        """The edit as the teacher reads it (hill_core.teacher's ``latent_rows``): the readout of
        the items kept in training, in their corrected classes, and their targets (K, 2) and
        moved flags (K,). An excluded item leaves; a relabelled one counts in its new class at
        its gate position and asks nothing of the layout. Without corrections: self, as is.

        The corrected readout is built once per set of corrections (they change on a key
        press; positions change on every drag move), so a drag still costs ~1 ms.
        """
        q, moved = self.positions(ops)
        label_after, excluded = self.corrections(ops)
        relabelled = (label_after != self.labels) & ~excluded
        if not relabelled.any() and not excluded.any():
            return self, q, moved
        q[relabelled], moved[relabelled] = self.xy[relabelled], False
        keep = ~excluded
        key = label_after.tobytes() + excluded.tobytes()
        derived = self._derived
        if derived is None or derived[0] != key:
            table = self.snapshot[list(SNAPSHOT_COLUMNS)][keep].reset_index(drop=True)
            table["label"] = label_after[keep]
            derived = self._derived = (key, Readout(table, self.num_classes, self.weights))
        return derived[1], q[keep], moved[keep]

    def edit_arrays(self, q: np.ndarray, moved: np.ndarray) -> dict[str, np.ndarray]:
        """The teacher of edited positions q (N, 2) as float64/bool/int64 arrays (the fields of
        :class:`Teacher`), as ``teacher_from_edits`` reads them.

        hill_core/teacher.py's ``class_edits`` rule, with the gate's side precomputed: a class
        is shifted and scaled by its points that were not moved one by one (all of them, when
        every point of the class was moved one by one).
        """
        labels, num_classes = self.labels, self.num_classes
        whole = ~moved
        has_whole = np.bincount(labels[whole], minlength=num_classes) > 0  # (C,)
        use = whole | ~has_whole[labels]  # (N,) the points that speak for their class
        if use.all():
            c0, s0 = self.centers, self.spreads
            c1, s1, _ = class_stats_np(q, labels, num_classes)
        else:
            c0, s0, _ = class_stats_np(self.xy[use], labels[use], num_classes)
            c1, s1, _ = class_stats_np(q[use], labels[use], num_classes)
        present = self.present
        shift = np.where(has_whole[:, None], c1 - c0, 0.0)  # (C, 2)
        ratio = np.divide(s1, s0, out=np.ones(num_classes), where=s0 > 0)
        ratio = np.where(has_whole, ratio, 1.0)
        shifted = present & (np.linalg.norm(shift, axis=1) > SHIFT_TOLERANCE)
        scaled = present & (np.abs(ratio - 1.0) > SCALE_TOLERANCE) & (s0 > 0)
        shifts = np.where(shifted[:, None], shift, 0.0)
        targets = self.centers + shifts  # (C, 2)
        rows = np.flatnonzero(moved)
        rows = rows[np.argsort(self.ids[rows], kind="stable")]  # by sample id, as the teacher
        moved_q = q[rows]  # (M, 2)
        return {
            "gate_centers": self.centers,
            "gate_spreads": self.spreads,
            "shifts": shifts,
            "shifted": shifted,
            "scales": np.where(scaled, ratio, 1.0),
            "scaled": scaled,
            "anchors": present & ~shifted & ~scaled,
            "moved_rows": rows,
            "moved_targets": moved_q,
            "moved_home": _nearest_class(moved_q, targets, present),
            "target_centers": targets,
            "gate_radius": np.float64(self.radius),
        }

    def teacher(self, q: np.ndarray, moved: np.ndarray) -> Teacher:
        """:meth:`edit_arrays` as the :class:`Teacher` ``teacher_from_edits`` builds (float32
        tensors, refused unless finite): what the tests compare field by field."""
        a = self.edit_arrays(q, moved)
        fields = {
            k: torch.tensor(v) if v.dtype == bool else _float32(k, v)
            for k, v in a.items()
            if k not in ("moved_rows", "moved_home")
        }
        return Teacher(
            **fields,
            moved_ids=torch.tensor(self.ids[a["moved_rows"]]),
            moved_home=torch.tensor(a["moved_home"], dtype=torch.int64),
        )

    def __call__(self, ops: dict[str, Any]) -> dict[str, float]:
        """L_center, L_spread, L_point and L_human of the current layout against the edit, and
        the corrections in force after it (items_relabelled, items_excluded; the teacher's
        terms do not depend on them: class statistics use the given labels)."""
        latent, q, moved = self.latent(ops)
        if not np.isfinite(q).all():
            raise ValueError("readout: edit state holds a non-finite position")
        a = latent.edit_arrays(q, moved)
        for name in ("shifts", "scales", "moved_targets", "target_centers"):
            _check_float32(name, a[name])  # as the teacher would refuse them
        parts = latent.components(a)
        values = {k: float(v) for k, v in parts.items()}
        values.update(l_human=float(np.array(list(parts.values())) @ self.weight_vector))
        label_after, excluded = self.corrections(ops)
        relabelled = (label_after != self.labels) & ~excluded
        values["items_relabelled"] = float(relabelled.sum())
        values["items_excluded"] = float(excluded.sum())
        return values

    def components(self, a: dict[str, np.ndarray]) -> dict[str, float]:
        """hill_core/losses.py's ``human_components`` of the current layout (all N points, by
        its class statistics) against the teacher ``a`` (:meth:`edit_arrays`), in float64."""
        mu, s, here = self.centers, self.spreads, self.present  # the current layout's (C, ...)
        origin, origin0, growth = self.frame(a["anchors"])
        unit = growth * a["gate_radius"]
        expected = origin + growth * (a["gate_centers"] - origin0)  # (C, 2)
        # L_center: progress along the shift, beyond where the frame expects the class.
        length = np.linalg.norm(a["shifts"], axis=1)  # (C,)
        direction = a["shifts"] / np.maximum(length, TINY)[:, None]
        progress = ((mu - expected) * direction).sum(1)
        short = np.maximum(growth * length - progress, 0.0) / unit
        l_center = _masked_mean(short**2, here & a["shifted"])
        # L_spread: one-sided, in the direction the person scaled.
        target = a["scales"] * a["gate_spreads"] * growth
        sign = np.where(a["scales"] < 1, 1.0, -1.0)
        excess = np.maximum(sign * (s - target), 0.0) / unit
        l_spread = _masked_mean(excess, here & a["scaled"])
        # L_point over the moved points (the others add nothing): each goes to its
        # target, which follows its home class (every class is present in the whole layout).
        home = a["moved_home"]  # (M,)
        centre = np.where(here[:, None], mu, expected + growth * a["shifts"])[home]  # (M, 2)
        goal = centre + growth * (a["moved_targets"] - a["target_centers"][home])
        p = self.xy[a["moved_rows"]]  # (M, 2) where the moved points are now
        # Summed over the moved points, averaged over all N items, as cross-entropy is (the
        # loss's L_point: a moved point weighs as much as one item).
        l_point = float((((p - goal) / unit) ** 2).sum() / max(len(self.xy), 1))
        return {"l_center": l_center, "l_spread": l_spread, "l_point": l_point}

    def frame(self, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """hill_core/losses.py's ``frame_of`` of the current layout: origin (2,) now, origin0 (2,)
        at the gate, and growth, fitted on the untouched classes (every class present when
        fewer than MIN_FRAME_CLASSES are untouched)."""
        use = self.present & anchors
        if use.sum() < MIN_FRAME_CLASSES:
            use = self.present
        n = max(float(use.sum()), 1.0)
        mu, c0 = self.centers[use], self.centers[use]  # current and gate: the same layout
        origin, origin0 = mu.sum(0) / n, c0.sum(0) / n
        radius = np.sqrt(((mu - origin) ** 2).sum() / n)
        radius0 = np.sqrt(((c0 - origin0) ** 2).sum() / n)
        growth = radius / max(radius0, TINY) if radius0 > TINY else 1.0
        return origin, origin0, float(growth)

    def reference(self, ops: dict[str, Any]) -> dict[str, float]:
        """The same readout the long way: an edits table, ``teacher_from_edits``, then
        ``layout_loss`` over all N points (what the tests check ``__call__`` against)."""
        q, moved = self.positions(ops)
        label_after, excluded = self.corrections(ops)
        edits = make_edits(self.snapshot, q[:, 0], q[:, 1], moved, "", 0, label_after, excluded)
        teacher = teacher_from_edits(edits, self.num_classes)
        now = self.latent(ops)[0]  # the current layout as training sees it: corrected, kept
        values = layout_loss(now.current, now.labels_t, now.ids_t, teacher, self.weights)
        return {**values, **correction_counts(edits)}


def class_stats_np(
    xy: np.ndarray, labels: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class centres (C, 2), spreads (C,) and presence (C,) of points xy (N, 2), as
    hill_core's ``layout_stats`` (zeros where absent), in one bincount pass instead of C masks."""
    counts = np.bincount(labels, minlength=num_classes)  # (C,)
    per = np.maximum(counts, 1)
    cx = np.bincount(labels, weights=xy[:, 0], minlength=num_classes) / per
    cy = np.bincount(labels, weights=xy[:, 1], minlength=num_classes) / per
    dist = np.hypot(xy[:, 0] - cx[labels], xy[:, 1] - cy[labels])  # (N,)
    spreads = np.bincount(labels, weights=dist, minlength=num_classes) / per
    return np.stack([cx, cy], axis=1), spreads, counts > 0


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``values`` (C,) where ``mask``; 0 when nothing is masked in (as the loss)."""
    return float(values[mask].sum() / max(float(mask.sum()), 1.0))


def _check_float32(name: str, values: np.ndarray) -> None:
    """Refuse what the teacher refuses: a value not finite once cast to the loss's float32."""
    with np.errstate(over="ignore"):
        if not np.isfinite(np.asarray(values, np.float32)).all():
            raise EditsError(
                f"teacher: {name} is not finite in float32 (edited positions too large)"
            )

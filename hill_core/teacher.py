"""The teacher: what an approved edit *changed*, as relative requests in the view.

An edit is read as three kinds of change against the gate's own layout (docs/method.md,
"Teacher"): a class moved as a whole (a shift), a class scaled about its centre (a scale), and
single points moved one by one. Classes the person did not touch carry no request at all, so an
unedited approval teaches nothing and training goes on as plain cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from hill_core.edits import EditsError

# A class counts as shifted when its centre moved more than this (view units; the view's RMS
# radius is 1 at the freeze), and as scaled when its spread changed by more than this fraction.
# Below these, float noise from the page's arithmetic is not an edit.
SHIFT_TOLERANCE = 1e-3
SCALE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Teacher:
    """The relative requests of one approved edit (tensors on one device).

    Attributes:
        gate_centers: (C, 2) class centres mu0_c at the gate (zeros where absent).
        gate_spreads: (C,) mean distance s0_c of the class's points from mu0_c.
        shifts: (C, 2) how far the person moved each class centre (zeros where not shifted).
        shifted: (C,) bool, classes moved as a whole.
        scales: (C,) spread factor k_c = s*_c / s0_c (1 where not scaled).
        scaled: (C,) bool, classes scaled about their centre.
        anchors: (C,) bool, classes present at the gate and neither shifted nor scaled: the
            reference frame that says how the layout drifts on its own while training goes on.
        moved_ids: (M,) int64 sorted sample ids of points moved one by one.
        moved_targets: (M, 2) their targets q_i at the gate.
        moved_home: (M,) int64 the class whose edited centre is nearest each q_i: the target
            follows that class as it moves (the person dropped the point into it).
        target_centers: (C, 2) edited class centres mu0_c + shift_c.
        gate_radius: () RMS distance of the gate layout's points from their mean: the length
            the loss measures in (times the layout's growth since).
    """

    gate_centers: torch.Tensor
    gate_spreads: torch.Tensor
    shifts: torch.Tensor
    shifted: torch.Tensor
    scales: torch.Tensor
    scaled: torch.Tensor
    anchors: torch.Tensor
    moved_ids: torch.Tensor
    moved_targets: torch.Tensor
    moved_home: torch.Tensor
    target_centers: torch.Tensor
    gate_radius: torch.Tensor

    @property
    def edited(self) -> bool:
        """False for an unedited approval: nothing to teach, training stays plain CE."""
        return bool(self.shifted.any() or self.scaled.any() or self.moved_ids.numel())

    def to(self, device: torch.device | str) -> Teacher:
        return Teacher(**{k: v.to(device) for k, v in self.__dict__.items()})


def layout_stats(
    xy: np.ndarray, labels: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Class centres (C, 2), spreads (C,), presence (C,) and RMS radius of a layout (N, 2)."""
    centers = np.zeros((num_classes, 2))
    spreads = np.zeros(num_classes)
    present = np.zeros(num_classes, bool)
    for c in np.unique(labels):
        points = xy[labels == c]
        centers[c] = points.mean(axis=0)
        spreads[c] = np.linalg.norm(points - centers[c], axis=1).mean()
        present[c] = True
    rms = float(np.sqrt(((xy - xy.mean(axis=0)) ** 2).sum(axis=1).mean())) if len(xy) else 0.0
    return centers, spreads, present, rms


def class_edits(edits: pd.DataFrame, num_classes: int) -> dict[str, np.ndarray]:
    """Gate statistics of every class, and its shift and scale as the person edited it.

    The shift and scale come from the class's points that were not moved one by one; a class
    whose points were all moved one by one counts as neither shifted nor scaled (its points
    carry the request). The gate centres and spreads come from all points, as batches see them.
    """
    labels = edits["label"].to_numpy(np.int64)
    before = edits[["x_before", "y_before"]].to_numpy(np.float64)
    after = edits[["x_after", "y_after"]].to_numpy(np.float64)
    whole = ~edits["moved"].to_numpy(bool)
    has_whole = np.bincount(labels[whole], minlength=num_classes) > 0
    use = whole | ~has_whole[labels]  # (N,) the points that speak for their class
    gate_centers, gate_spreads, present, _ = layout_stats(before, labels, num_classes)
    c0, s0, _, _ = layout_stats(before[use], labels[use], num_classes)
    c1, s1, _, _ = layout_stats(after[use], labels[use], num_classes)
    shift = np.where(has_whole[:, None], c1 - c0, 0.0)
    ratio = np.divide(s1, s0, out=np.ones(num_classes), where=s0 > 0)
    ratio = np.where(has_whole, ratio, 1.0)
    shifted = present & (np.linalg.norm(shift, axis=1) > SHIFT_TOLERANCE)
    scaled = present & (np.abs(ratio - 1.0) > SCALE_TOLERANCE) & (s0 > 0)
    return {
        "gate_centers": gate_centers,
        "gate_spreads": gate_spreads,
        "shifts": np.where(shifted[:, None], shift, 0.0),
        "shifted": shifted,
        "scales": np.where(scaled, ratio, 1.0),
        "scaled": scaled,
        "anchors": present & ~shifted & ~scaled,
    }


def teacher_from_edits(edits: pd.DataFrame, num_classes: int) -> Teacher:
    """Turn a validated edits table into the teacher; pure, no I/O, float64 arithmetic.

    Every number is computed in float64 and checked to be finite in the float32 the loss uses,
    so an edit that slipped past validation fails here in one line rather than as a NaN loss.

    Args:
        edits: the table :func:`hill_core.edits.validate_edits` returns.
        num_classes: C, the data set's number of classes.
    Raises:
        EditsError: a teacher value that is not finite in float32.
    """
    edits = latent_rows(edits)
    labels = edits["label"].to_numpy(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"edits hold labels outside [0, {num_classes})")
    per_class = class_edits(edits, num_classes)
    targets = per_class["gate_centers"] + per_class["shifts"]  # (C, 2)
    moved = edits[edits["moved"].to_numpy(bool)].sort_values("sample_id")
    q = moved[["x_after", "y_after"]].to_numpy(np.float64)  # (M, 2)
    present = per_class["anchors"] | per_class["shifted"] | per_class["scaled"]
    home = _nearest_class(q, targets, present)
    as_tensor = {
        k: torch.tensor(v) if v.dtype == bool else _float32(k, v) for k, v in per_class.items()
    }
    return Teacher(
        **as_tensor,
        moved_ids=torch.tensor(moved["sample_id"].to_numpy(np.int64)),
        moved_targets=_float32("moved_targets", q),
        moved_home=torch.tensor(home, dtype=torch.int64),
        target_centers=_float32("target_centers", targets),
        gate_radius=_float32("gate_radius", np.float64(max(_rms_radius(edits), 1e-6))),
    )


def latent_rows(edits: pd.DataFrame) -> pd.DataFrame:
    """The rows of an edits table as the latent teacher reads them, in training's labels.

    Excluded items leave (training never sees them). A relabelled item counts in its new
    class, at its position before the gate, and is no latent request: its correction reaches
    training as a label (docs/method.md, "Label corrections"), and where it was dropped says
    only which class it joined.
    """
    if "label_after" not in edits:  # a table built before label corrections (tests, tools)
        return edits
    kept = edits[~edits["excluded"].to_numpy(bool)]
    relabelled = (kept["label_after"] != kept["label"]).to_numpy()
    if not relabelled.any():
        return kept
    out = kept.copy()
    out["label"] = kept["label_after"]
    out.loc[relabelled, "x_after"] = kept.loc[relabelled, "x_before"]
    out.loc[relabelled, "y_after"] = kept.loc[relabelled, "y_before"]
    out.loc[relabelled, "moved"] = False
    return out


def _float32(name: str, values: np.ndarray) -> torch.Tensor:
    """float64 ``values`` as a float32 tensor, refused unless finite in both (max ~3.4e38)."""
    tensor = torch.tensor(values, dtype=torch.float32)
    if not (np.isfinite(values).all() and torch.isfinite(tensor).all()):
        raise EditsError(f"teacher: {name} is not finite in float32 (edited positions too large)")
    return tensor


def _rms_radius(edits: pd.DataFrame) -> float:
    xy = edits[["x_before", "y_before"]].to_numpy(np.float64)
    return layout_stats(xy, np.zeros(len(xy), np.int64), 1)[3]


def _nearest_class(q: np.ndarray, centers: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(M,) index of the present class centre nearest each target q (M, 2)."""
    if not len(q) or not present.any():
        return np.zeros(len(q), np.int64)
    d = np.linalg.norm(q[:, None] - centers[None], axis=2)  # (M, C)
    d[:, ~present] = np.inf
    return d.argmin(axis=1).astype(np.int64)

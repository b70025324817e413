"""The teacher: what an approved edit asks of the model, as per-class targets in the view."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch


@dataclass(frozen=True)
class Teacher:
    """Targets derived from an edited layout (HILL.md, "The gate").

    Attributes:
        centers: (C, 2) mu*_c, mean target position of class c (zeros where absent).
        spreads: (C,) s*_c, mean distance of class c's targets from mu*_c.
        present: (C,) bool, classes that have items in the edited layout.
        moved_ids: (M,) int64 sorted sample ids of explicitly moved points.
        moved_targets: (M, 2) their target positions q_i.
        rms_radius: R*, RMS distance of all targets from their overall mean (view units).
        margins: (C, C) separation margins m_cc' = min(s*_c + s*_c', |mu*_c - mu*_c'|), 0 on the
            diagonal and between merged classes; fixed per teacher, so computed once.
    """

    centers: torch.Tensor
    spreads: torch.Tensor
    present: torch.Tensor
    moved_ids: torch.Tensor
    moved_targets: torch.Tensor
    rms_radius: float
    margins: torch.Tensor

    def to(self, device: torch.device | str) -> Teacher:
        return Teacher(
            *(t.to(device) for t in (self.centers, self.spreads, self.present)),
            self.moved_ids.to(device),
            self.moved_targets.to(device),
            self.rms_radius,
            self.margins.to(device),
        )


# Teacher centres closer than this (view units; the view's RMS radius is 1 at the freeze) count
# as merged: their separation margin is 0, so float noise cannot push a merged pair apart.
MERGE_TOLERANCE = 1e-3


def separation_margins(centers: np.ndarray, spreads: np.ndarray) -> np.ndarray:
    """(C, C) capped margins; the cap stops L_sep from fighting a merge (HILL.md)."""
    gap = np.linalg.norm(centers[:, None] - centers[None], axis=2)
    margins = np.minimum(spreads[:, None] + spreads[None], gap)
    margins[gap < MERGE_TOLERANCE] = 0.0  # the diagonal and merged pairs
    return margins


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


def teacher_from_edits(edits: pd.DataFrame, num_classes: int) -> Teacher:
    """Turn a validated edits table into the teacher; pure, no I/O.

    Args:
        edits: the table :func:`hill_core.edits.validate_edits` returns.
        num_classes: C, the data set's number of classes.
    """
    xy = edits[["x_after", "y_after"]].to_numpy(np.float64)
    labels = edits["label"].to_numpy(np.int64)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"edits hold labels outside [0, {num_classes})")
    centers, spreads, present, rms = layout_stats(xy, labels, num_classes)
    moved = edits[edits["moved"]].sort_values("sample_id")
    return Teacher(
        centers=torch.tensor(centers, dtype=torch.float32),
        spreads=torch.tensor(spreads, dtype=torch.float32),
        present=torch.tensor(present),
        moved_ids=torch.tensor(moved["sample_id"].to_numpy(np.int64)),
        moved_targets=torch.tensor(moved[["x_after", "y_after"]].to_numpy(np.float32)),
        rms_radius=max(rms, 1e-8),
        margins=torch.tensor(separation_margins(centers, spreads), dtype=torch.float32),
    )

"""Simulated users (HILL.md, "Simulated users"): pure functions from a snapshot to target positions.

Each strategy takes the snapshot table, the validation confusion matrix (C, C) and a numpy
Generator, and returns ``(x_after (N,), y_after (N,), moved (N,) bool)``. ``simulated_edits``
wraps one into an edits table.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from hill_core.edits import make_edits

Targets = tuple[np.ndarray, np.ndarray, np.ndarray]

COMPACT_FACTOR = 0.5  # compactness: each cluster shrinks to half its spread
SEPARATE_FACTOR = 1.5  # separation: centres move 1.5x as far from the overall centroid
MERGE_SHARE = 0.5  # merge: the two classes meet halfway between their centres
ADVERSARIAL_SCALE = 1.0  # adversarial: random offsets of about one view unit


def _xy(snapshot: pd.DataFrame) -> np.ndarray:
    return snapshot[["x", "y"]].to_numpy(np.float64)


def _class_centres(xy: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    return {int(c): xy[labels == c].mean(axis=0) for c in np.unique(labels)}


def _split(xy: np.ndarray, moved: np.ndarray) -> Targets:
    return xy[:, 0].copy(), xy[:, 1].copy(), moved


def compactness(snapshot, confusion, rng, factor: float = COMPACT_FACTOR) -> Targets:
    """Scale every cluster about its centre by ``factor`` < 1."""
    xy, labels = _xy(snapshot), snapshot["label"].to_numpy()
    centres = _class_centres(xy, labels)
    out = xy.copy()
    for c, mu in centres.items():
        out[labels == c] = mu + factor * (xy[labels == c] - mu)
    return _split(out, np.zeros(len(xy), bool))


def separation(snapshot, confusion, rng, factor: float = SEPARATE_FACTOR) -> Targets:
    """Push every class centre away from the overall centroid; clusters move rigidly."""
    xy, labels = _xy(snapshot), snapshot["label"].to_numpy()
    centroid = xy.mean(axis=0)
    out = xy.copy()
    for c, mu in _class_centres(xy, labels).items():
        out[labels == c] += (factor - 1.0) * (mu - centroid)
    return _split(out, np.zeros(len(xy), bool))


def most_confused_pair(confusion: np.ndarray, present: list[int]) -> tuple[int, int]:
    """The two classes (among ``present``) most often mistaken for each other."""
    sym = confusion + confusion.T
    best, pair = -1, (present[0], present[1])
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            if sym[a, b] > best:
                best, pair = sym[a, b], (a, b)
    return pair


def merge(snapshot, confusion, rng, share: float = MERGE_SHARE) -> Targets:
    """Bring the two most confused classes together (each moves ``share`` of the way)."""
    xy, labels = _xy(snapshot), snapshot["label"].to_numpy()
    centres = _class_centres(xy, labels)
    a, b = most_confused_pair(np.asarray(confusion), sorted(centres))
    meet = centres[a] + share * (centres[b] - centres[a])
    out = xy.copy()
    out[labels == a] += meet - centres[a]
    out[labels == b] += meet - centres[b]
    return _split(out, np.zeros(len(xy), bool))


def fix_outliers(snapshot, confusion, rng) -> Targets:
    """Move each misclassified point (pred != label) onto its true class centre."""
    xy, labels = _xy(snapshot), snapshot["label"].to_numpy()
    centres = _class_centres(xy, labels)
    wrong = snapshot["pred"].to_numpy() != labels
    out = xy.copy()
    for i in np.flatnonzero(wrong):
        out[i] = centres[int(labels[i])]
    return _split(out, wrong)


def adversarial(snapshot, confusion, rng, scale: float = ADVERSARIAL_SCALE) -> Targets:
    """Conflicting random moves: random class shifts plus random single-point moves."""
    xy, labels = _xy(snapshot), snapshot["label"].to_numpy()
    out = xy.copy()
    for c in np.unique(labels):
        out[labels == c] += rng.normal(0.0, scale, size=2)
    moved = rng.random(len(xy)) < 0.1
    out[moved] = rng.normal(0.0, 2.0 * scale, size=(int(moved.sum()), 2))
    return _split(out, moved)


STRATEGIES: dict[str, Callable[..., Targets]] = {
    "compactness": compactness,
    "separation": separation,
    "merge": merge,
    "fix-outliers": fix_outliers,
    "adversarial": adversarial,
}


def simulated_edits(
    strategy: str,
    snapshot: pd.DataFrame,
    confusion: np.ndarray,
    seed: int,
    run_id: str,
    gate_epoch: int,
) -> pd.DataFrame:
    """The edits table a simulated user with ``strategy`` makes at a gate."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    rng = np.random.default_rng([seed, gate_epoch])
    x_after, y_after, moved = STRATEGIES[strategy](snapshot, confusion, rng)
    return make_edits(snapshot, x_after, y_after, moved, run_id, gate_epoch)

"""Deterministic stratified sampling of item positions."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted positions of about ``size`` items with the class shares of ``labels``.

    Every class keeps at least one item where ``size`` allows; all items when size >= N.
    """
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    if size >= len(labels):
        return rows
    classes = np.unique(labels)
    size = max(size, len(classes))
    picked, _ = train_test_split(rows, train_size=size, stratify=labels, random_state=seed)
    return np.sort(picked)

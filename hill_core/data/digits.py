"""scikit-learn's bundled 8x8 digits: the default data set, works offline."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from hill_core.data.base import (
    DataBundle,
    check_class_sizes,
    in_memory_bundle,
    stratified_split,
    tensor_dataset,
)


def load_digits_bundle(seed: int, val_fraction: float, test_fraction: float) -> DataBundle:
    """1,797 grey images (1, 8, 8) scaled to [0, 1]; sample id = row in scikit-learn's array."""
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    labels = digits.target.astype(np.int64)
    ids = np.arange(len(labels), dtype=np.int64)
    names = [str(d) for d in range(10)]
    check_class_sizes(labels, names, "digits", "items")
    splits = stratified_split(labels, val_fraction, test_fraction, seed, "digits")
    return in_memory_bundle("digits", tensor_dataset(x, labels, ids), splits, names, (1, 8, 8))

"""A data set factory: the train, validation and test ``Dataset``s, the class names and a
preview for the gate page. The items are scikit-learn's bundled 8x8 digits (no download)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset


class Digits(Dataset):
    """Items ``(x (1, 8, 8) float in [0, 1], y)``, as any map-style dataset gives them."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images = torch.tensor(images / 16.0, dtype=torch.float32)[:, None]  # (N, 1, 8, 8)
        self.targets = torch.tensor(labels, dtype=torch.int64)  # read once by hill, no pass

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.images[i], int(self.targets[i])


def digit_splits(seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15):
    """hill calls this with ``seed`` (``base.seed``) and ``data.kwargs``; ``root`` is not
    taken, so it is not passed. Returns (train, val, test, class_names, preview)."""
    digits = load_digits()
    rows = np.arange(len(digits.target))
    rest, test = train_test_split(rows, test_size=test_fraction, stratify=digits.target,
                                  random_state=seed)  # fmt: skip
    share = val_fraction / (1 - test_fraction)
    train, val = train_test_split(rest, test_size=share, stratify=digits.target[rest],
                                  random_state=seed)  # fmt: skip
    splits = [Digits(digits.images[r], digits.target[r]) for r in (train, val, test)]
    return (*splits, [str(d) for d in range(10)], preview)


def preview(x: torch.Tensor) -> torch.Tensor:
    """What the gate page shows for an item: the digit, ink dark on white, (1, 8, 8) in [0, 1]."""
    return 1.0 - x

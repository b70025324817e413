"""What every data set returns: items ``(x, y, sample_id)`` plus class names and splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from hill_core.errors import HillError


class DataError(HillError):
    """A data folder or file that cannot be loaded; the message says what is wrong, in one line."""


class IndexedDataset(Dataset):
    """Items ``(x, y, sample_id)``: the id is stable across runs, so an edit can name a sample.

    Args:
        get_x: index -> input tensor (the raw item, before ``transform``).
        labels: (N,) int64 labels. ids: (N,) int64 stable sample ids.
        transform: applied to the input on every access (augmentation for training).
    """

    def __init__(
        self,
        get_x: Callable[[int], torch.Tensor],
        labels: np.ndarray,
        ids: np.ndarray,
        transform: Callable | None = None,
    ):
        self.get_x = get_x
        self.labels = np.asarray(labels, np.int64)
        self.ids = np.asarray(ids, np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = self.get_x(i)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i]), int(self.ids[i])

    def subset(self, rows: np.ndarray, transform: Callable | None = None) -> IndexedDataset:
        """The items at ``rows`` (positions, not ids), with another transform if given."""
        rows = np.asarray(rows, np.int64)
        return IndexedDataset(
            lambda i: self.get_x(int(rows[i])), self.labels[rows], self.ids[rows], transform
        )


def tensor_dataset(x: torch.Tensor, labels: np.ndarray, ids: np.ndarray, transform=None):
    """An :class:`IndexedDataset` over a tensor already in memory, x (N, ...)."""
    return IndexedDataset(lambda i: x[i], labels, ids, transform)


@dataclass
class DataBundle:
    """The splits of one data set.

    Attributes:
        train: training items, with augmentation where the data set has one.
        train_eval: the same items without augmentation (fitting P, snapshots).
        val, test: evaluation splits.
        class_names: C names, index = label.
        input_shape: shape of one x, e.g. (1, 8, 8).
    """

    name: str
    train: IndexedDataset
    train_eval: IndexedDataset
    val: IndexedDataset
    test: IndexedDataset
    class_names: list[str]
    input_shape: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int, where: str = "data"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic stratified train/val/test row positions (sorted) for a seed.

    Raises:
        DataError: too few items for the fractions asked, naming ``where``.
    """
    rows = np.arange(len(labels))
    try:
        if test_fraction > 0:
            rest, test = train_test_split(
                rows, test_size=test_fraction, stratify=labels, random_state=seed
            )
        else:
            rest, test = rows, rows[:0]
        val_share = val_fraction / (1.0 - test_fraction)
        train, val = train_test_split(
            rest, test_size=val_share, stratify=labels[rest], random_state=seed
        )
    except ValueError as err:  # sklearn: a split would lack a class
        raise DataError(f"{where}: cannot split: {err}") from None
    return np.sort(train), np.sort(val), np.sort(test)


MIN_PER_CLASS = 3  # a stratified three-way split needs one item of each class per split


def check_class_sizes(labels: np.ndarray, class_names: list[str], where: str, unit: str) -> None:
    """Every class needs :data:`MIN_PER_CLASS` items; the error names the smallest class."""
    counts = np.bincount(labels, minlength=len(class_names))
    if counts.min() < MIN_PER_CLASS:
        small = class_names[int(counts.argmin())]
        raise DataError(f"{where}: class {small!r} has {counts.min()} {unit}, need {MIN_PER_CLASS}")


def in_memory_bundle(
    name: str,
    full: IndexedDataset,
    splits: tuple[np.ndarray, np.ndarray, np.ndarray],
    class_names: list[str],
    input_shape: tuple[int, ...],
    train_transform=None,
) -> DataBundle:
    """A bundle whose splits are row positions of one dataset; augmentation only on ``train``."""
    train, val, test = splits
    return DataBundle(
        name=name,
        train=full.subset(train, train_transform),
        train_eval=full.subset(train),
        val=full.subset(val),
        test=full.subset(test),
        class_names=class_names,
        input_shape=input_shape,
    )

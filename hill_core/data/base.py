"""What every data set returns: items ``(x, y, sample_id)`` plus class names and splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset
from torch.utils.weak import WeakIdKeyDictionary

from hill_core.errors import HillError


class DataError(HillError):
    """A data folder or file that cannot be loaded; the message says what is wrong, in one line."""


class IndexedDataset(Dataset):
    """Items ``(x, y, sample_id)``: the id is stable across runs, so an edit can name a sample.

    Two ways to read it, tied by tests: item by item (``ds[i]``, the readable reference, what
    a ``DataLoader`` uses) and whole batches (:meth:`batch`, what training and evaluation use:
    one gather and one transform call per batch instead of one per item).

    Args:
        get_x: index -> raw input tensor (before ``augment`` and ``transform``).
        labels: (N,) int64 labels. ids: (N,) int64 stable sample ids.
        transform: deterministic, applied to an item or to a batch (B, ...) alike, e.g. uint8
            pixels -> normalised floats.
        get_batch: rows (B,) int64 -> raw inputs (B, ...), equal to stacking ``get_x`` of each
            row; None stacks ``get_x``.
        augment: random augmentation of a raw batch, ``augment(x (B, ...), generator)``
            (training only); an item is augmented as a batch of one.
    """

    def __init__(
        self,
        get_x: Callable[[int], torch.Tensor],
        labels: np.ndarray,
        ids: np.ndarray,
        transform: Callable | None = None,
        get_batch: Callable[[torch.Tensor], torch.Tensor] | None = None,
        augment: Callable | None = None,
    ):
        self.get_x = get_x
        self.labels = np.asarray(labels, np.int64)
        self.ids = np.asarray(ids, np.int64)
        self.transform = transform
        self.get_batch = get_batch
        self.augment = augment
        self._labels_t = torch.tensor(self.labels)  # copies: the arrays may be read-only
        self._ids_t = torch.tensor(self.ids)
        # Set for items held as one tensor in memory (tensor_dataset and its subsets): the
        # tensor (N, ...) and this dataset's rows in it (None: all), so .to(device) can move it.
        self.tensor: torch.Tensor | None = None
        self.rows: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = self.get_x(i)
        if self.augment is not None:
            x = self.augment(x[None], None)[0]
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i]), int(self.ids[i])

    def raw_batch(self, rows: torch.Tensor) -> torch.Tensor:
        """Raw inputs (B, ...) of ``rows`` (B,) int64 positions, before augment and transform."""
        if self.get_batch is not None:
            return self.get_batch(rows)
        return torch.stack([self.get_x(int(i)) for i in rows])

    def batch(
        self, rows: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Items ``rows`` (B,) as tensors: x (B, ...), y (B,) int64, ids (B,) int64.

        ``generator`` draws the augmentation (None: the global torch RNG).
        """
        x = self.raw_batch(rows)
        if self.augment is not None:
            x = self.augment(x, generator)
        if self.transform is not None:
            x = self.transform(x)
        return x, self._labels_t[rows], self._ids_t[rows]

    def subset(
        self, rows: np.ndarray, transform: Callable | None = None, augment: Callable | None = None
    ) -> IndexedDataset:
        """The items at ``rows`` (positions, not ids), with the transform and augmentation given
        (not this dataset's: None means raw items)."""
        rows = np.asarray(rows, np.int64)
        rows_t = torch.from_numpy(rows)
        get_batch = None
        if self.get_batch is not None:
            parent = self.get_batch
            get_batch = lambda r: parent(rows_t[r])  # noqa: E731
        sub = IndexedDataset(
            lambda i: self.get_x(int(rows[i])),
            self.labels[rows],
            self.ids[rows],
            transform,
            get_batch,
            augment,
        )
        if self.tensor is not None:
            sub.tensor = self.tensor
            sub.rows = rows_t if self.rows is None else self.rows[rows_t]
        return sub

    def relabelled(self, labels: np.ndarray) -> IndexedDataset:
        """The same items with ``labels`` (N,) int64 instead of their own (label corrections)."""
        labels = np.asarray(labels, np.int64)
        if labels.shape != self.labels.shape:
            raise ValueError(f"{len(labels)} labels for {len(self)} items")
        out = IndexedDataset(self.get_x, labels, self.ids, self.transform, self.get_batch,
                             self.augment)  # fmt: skip
        out.tensor, out.rows = self.tensor, self.rows
        return out

    def to(self, device: torch.device) -> IndexedDataset:
        """This dataset gathering its batches on ``device`` (labels and ids too).

        Items held as one tensor are copied there once per process and device (shared by every
        split over that tensor), so training on a GPU does not copy each batch from the host.
        Other datasets gather on the host and copy each batch.
        """
        labels, ids = self._labels_t.to(device), self._ids_t.to(device)
        if self.tensor is None:
            host = self.raw_batch
            moved = IndexedDataset(self.get_x, self.labels, self.ids, self.transform,
                                   lambda r: host(r).to(device), self.augment)  # fmt: skip
        else:
            x = device_copy(self.tensor, device)
            rows = None if self.rows is None else self.rows.to(device)
            moved = tensor_dataset(x, self.labels, self.ids, self.transform, self.augment, rows)
        moved._labels_t, moved._ids_t = labels, ids
        return moved


def labels_by_id(
    ids: np.ndarray, given: np.ndarray, known_ids: np.ndarray, known_labels: np.ndarray
) -> np.ndarray:
    """``given`` (N,) with the label of each item of ``ids`` (N,) that ``known_ids`` (K,),
    sorted, lists replaced by its ``known_labels`` (K,); a new int64 array."""
    out = np.asarray(given, np.int64).copy()
    if len(known_ids):
        pos = np.searchsorted(known_ids, ids).clip(max=len(known_ids) - 1)
        hit = known_ids[pos] == ids
        out[hit] = known_labels[pos[hit]]
    return out


def tensor_dataset(
    x: torch.Tensor, labels: np.ndarray, ids: np.ndarray, transform=None, augment=None, rows=None
) -> IndexedDataset:
    """An :class:`IndexedDataset` over a tensor already in memory: x (N, ...), or the items
    ``rows`` (M,) of it (then ``labels`` and ``ids`` are those of the M items)."""
    if rows is None:
        ds = IndexedDataset(lambda i: x[i], labels, ids, transform, lambda r: x[r], augment)
    else:
        at = lambda r: x[rows[r.to(rows.device)]]  # noqa: E731
        ds = IndexedDataset(lambda i: x[rows[i]], labels, ids, transform, at, augment)
    ds.tensor, ds.rows = x, rows
    return ds


# tensor -> {device: its copy there}; a copy lives as long as the tensor it was made from.
_device_copies = WeakIdKeyDictionary()  # by identity: tensors compare by value


def device_copy(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``, copied once per process."""
    copies = _device_copies.setdefault(x, {})
    if str(device) not in copies:
        copies[str(device)] = x.to(device)
    return copies[str(device)]


@dataclass
class DataBundle:
    """The splits of one data set.

    Attributes:
        train: training items, with augmentation where the data set has one.
        train_eval: the same items without augmentation (fitting P, snapshots).
        val, test: evaluation splits.
        class_names: C names, index = label.
        input_shape: shape of one x, e.g. (1, 8, 8).
        truth: the true labels of items whose labels ``data.label_noise`` flipped
            (``hill_core.data.noise.LabelTruth``), for simulated users only; None otherwise.
        preview: the data set's own ``preview(x)`` for the gate page (a user's factory may
            give one); None: ``hill_core.snapshot.item_preview``.
    """

    name: str
    train: IndexedDataset
    train_eval: IndexedDataset
    val: IndexedDataset
    test: IndexedDataset
    class_names: list[str]
    input_shape: tuple[int, ...]
    truth: Any = None
    preview: Callable | None = None

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
    transform=None,
    augment=None,
) -> DataBundle:
    """A bundle whose splits are row positions of one dataset; augmentation only on ``train``."""
    train, val, test = splits
    return DataBundle(
        name=name,
        train=full.subset(train, transform, augment),
        train_eval=full.subset(train, transform),
        val=full.subset(val, transform),
        test=full.subset(test, transform),
        class_names=class_names,
        input_shape=input_shape,
    )

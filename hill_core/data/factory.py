"""A user's data set: ``data.name: "package.module:factory"``.

The factory is called with ``root`` (``data.root``) and ``seed`` (``base.seed``) where its
signature takes them, and with ``data.kwargs``. It returns the splits and the class names::

    def my_data(root: str, seed: int) -> tuple:
        return train, val, test, class_names            # torch.utils.data.Dataset each
        return train, val, test, class_names, preview   # preview(x) for the gate page

or a mapping with those keys. Each item ``ds[i]`` is ``(x, y, ...)``: x a tensor, numpy array
or PIL image, y an int label in ``range(len(class_names))``. Item ids are the dataset indices.
``preview(x)`` gets an item's x and returns a picture (PIL image, or an array (C, H, W) or
(H, W) in [0, 1] or uint8) or text; without it, image-shaped items (C, H, W) get pictures and
anything else the row preview.

Everything is checked before any training, and each failure is one line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from hill_core.config import DataConfig
from hill_core.data.base import DataBundle, DataError, IndexedDataset
from hill_core.imports import call_factory, import_object, one_line

SPLITS = ("train", "val", "test")


def load_factory(cfg: DataConfig, seed: int) -> DataBundle:
    """The bundle of the factory ``cfg.name`` names."""
    factory = import_object(cfg.name, "data.name")
    made = call_factory(factory, "data.name", {"root": cfg.root, "seed": seed}, cfg.kwargs)
    splits, class_names, preview = _unpack(made, cfg.name)
    indexed = {name: _indexed(ds, name, cfg.name, class_names) for name, ds in splits.items()}
    shape = _input_shape(indexed, cfg.name)
    if preview is not None:
        _check_preview(preview, indexed["train"], cfg.name)
    return DataBundle(
        name=cfg.name,
        train=indexed["train"],
        train_eval=indexed["train"],  # the user's Dataset augments, if at all, in its own items
        val=indexed["val"],
        test=indexed["test"],
        class_names=class_names,
        input_shape=shape,
        preview=preview,
    )


def _unpack(made: Any, name: str) -> tuple[dict[str, Dataset], list[str], Callable | None]:
    """The factory's return value as (splits by name, class names, preview or None)."""
    if isinstance(made, Mapping):
        made = tuple(made.get(k) for k in (*SPLITS, "class_names", "preview"))
    if not isinstance(made, tuple | list) or len(made) not in (4, 5):
        raise DataError(
            f"data.name: {name} returned {type(made).__name__}; return (train, val, test, "
            "class_names) or (train, val, test, class_names, preview)"
        )
    *datasets, class_names = made[:4]
    preview = made[4] if len(made) == 5 else None
    for split, ds in zip(SPLITS, datasets, strict=True):
        if not (hasattr(ds, "__getitem__") and hasattr(ds, "__len__")):
            raise DataError(
                f"data.name: {name}'s {split} split is a {type(ds).__name__}, "
                "not a torch.utils.data.Dataset with __len__"
            )
    names = list(class_names) if isinstance(class_names, list | tuple) else None
    if not names or len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise DataError(f"data.name: {name}'s class names must be a list of 2 or more strings")
    if preview is not None and not callable(preview):
        raise DataError(f"data.name: {name}'s preview is a {type(preview).__name__}, not callable")
    return dict(zip(SPLITS, datasets, strict=True)), names, preview


def _indexed(ds: Dataset, split: str, name: str, class_names: list[str]) -> IndexedDataset:
    """``ds`` as hill's items ``(x, y, id)``: ids are its indices, labels read once."""
    if len(ds) == 0:
        raise DataError(f"data.name: {name}'s {split} split is empty")
    labels = _labels(ds, split, name)
    bad = np.flatnonzero((labels < 0) | (labels >= len(class_names)))
    if len(bad):
        raise DataError(
            f"data.name: {name}'s {split} split has label {labels[bad[0]]} at index {bad[0]}, "
            f"outside its {len(class_names)} class names (0..{len(class_names) - 1})"
        )
    return IndexedDataset(lambda i: _item_x(ds, i, split, name), labels, np.arange(len(ds)),
                          transform=_as_float)  # fmt: skip


def _labels(ds: Dataset, split: str, name: str) -> np.ndarray:
    """(N,) int64: the ``targets`` a torchvision-style dataset keeps, else each item's y."""
    targets = getattr(ds, "targets", None)
    if targets is not None and len(targets) == len(ds):
        raw = targets
    else:
        raw = [_item(ds, i, split, name)[1] for i in range(len(ds))]
    try:
        labels = np.asarray(torch.as_tensor(np.asarray(raw)), dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        labels = np.array([np.nan])
    if labels.ndim != 1 or not np.all(np.isfinite(labels)) or np.any(labels % 1):
        raise DataError(f"data.name: {name}'s {split} labels must be whole numbers, one per item")
    return labels.astype(np.int64)


def _item(ds: Dataset, i: int, split: str, name: str) -> tuple:
    try:
        item = ds[i]
    except Exception as err:
        raise DataError(f"data.name: {name}'s {split}[{i}] raised {one_line(err)}") from None
    if not isinstance(item, tuple | list) or len(item) < 2:
        raise DataError(f"data.name: {name}'s {split}[{i}] must be (x, y, ...), got {item!r:.80}")
    return item


def _item_x(ds: Dataset, i: int, split: str, name: str) -> torch.Tensor:
    """Item ``i``'s x as a tensor (a PIL image: float (C, H, W) in [0, 1])."""
    x = _item(ds, i, split, name)[0]
    if isinstance(x, torch.Tensor):
        return x
    if hasattr(x, "getbands"):  # a PIL image
        from torchvision.transforms.functional import to_tensor

        return to_tensor(x)
    return torch.as_tensor(np.asarray(x))


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """What the network takes: float32 (a uint8 image or a float64 row would not do)."""
    return x.to(torch.float32)


def _check_preview(preview: Callable, train: IndexedDataset, name: str) -> None:
    """The page's preview works on the first item (not first at a gate, after training)."""
    from hill_core.snapshot import user_preview

    try:
        user_preview(preview, train.get_x(0))
    except Exception as err:
        raise DataError(f"data.name: {name}'s preview raised {one_line(err)}") from None


def _input_shape(indexed: dict[str, IndexedDataset], name: str) -> tuple[int, ...]:
    """The shape of one x, the same in every split (checked on each split's first item)."""
    shapes = {split: tuple(ds.get_x(0).shape) for split, ds in indexed.items()}
    if len(set(shapes.values())) > 1:
        shown = ", ".join(f"{split} {shape}" for split, shape in shapes.items())
        raise DataError(f"data.name: {name}'s splits have items of different shapes ({shown})")
    return shapes["train"]

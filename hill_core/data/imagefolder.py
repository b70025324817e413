"""Bring-your-own images: a folder with one sub-folder per class (torchvision ImageFolder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from hill_core.config import DataConfig
from hill_core.data.augment import CropFlip
from hill_core.data.base import (
    DataBundle,
    DataError,
    IndexedDataset,
    check_class_sizes,
    in_memory_bundle,
    stratified_split,
)


def load_imagefolder(cfg: DataConfig, seed: int) -> DataBundle:
    """RGB images resized to (3, S, S) with S = ``cfg.image_size``, pixels in [0, 1].

    Images are decoded on access, not held in memory. Sample id = position in ImageFolder's
    sorted list of files, so it is stable while the folder's content is. Class names are the
    sub-folder names, sorted.

    Args:
        cfg: ``root`` is the folder; ``val_fraction`` and ``test_fraction`` size the stratified
            split; ``augment`` adds a padded random crop and a horizontal flip to ``train``.
        seed: draws the split.
    """
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(f"imagefolder: {root} is not a folder (want one sub-folder per class)")
    try:
        folder = ImageFolder(str(root))
    except (FileNotFoundError, OSError) as e:
        raise DataError(f"imagefolder: {root}: {e}") from e
    labels = np.asarray(folder.targets, np.int64)
    check_class_sizes(labels, list(folder.classes), f"imagefolder {root}", "images")
    splits = stratified_split(
        labels, cfg.val_fraction, cfg.test_fraction, seed, f"imagefolder {root}"
    )
    full = IndexedDataset(_decoder(folder, cfg.image_size), labels, np.arange(len(labels)))
    augment = CropFlip(pad=cfg.image_size // 8) if cfg.augment else None
    names = list(folder.classes)
    shape = (3, cfg.image_size, cfg.image_size)
    return in_memory_bundle("imagefolder", full, splits, names, shape, augment=augment)


def _decoder(folder: ImageFolder, size: int):
    """index -> float image (3, size, size) in [0, 1], decoded from disk on every call."""
    to_tensor = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((size, size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )

    def get_x(i: int) -> torch.Tensor:
        path, _ = folder.samples[i]
        # Plain tensor, not tv_tensors.Image: batches then collate like every other data set.
        return to_tensor(folder.loader(path)).as_subclass(torch.Tensor)

    return get_x

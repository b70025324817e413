"""CIFAR-10 from the pickled python batches (``cifar-10-batches-py/``), kept as uint8 in memory.

The batches are read directly rather than through ``torchvision.datasets.CIFAR10``: torchvision
checks the md5 of every file, so a folder holding anything but the exact official files (a
subset, a test fixture) would be refused. torchvision is used only to download.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import v2

from hill_core.config import DataConfig
from hill_core.data.augment import CropFlip
from hill_core.data.base import (
    DataBundle,
    DataError,
    check_class_sizes,
    stratified_split,
    tensor_dataset,
)

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
TEST_ID_OFFSET = 50_000  # test ids = 50000 + row, after the 50,000 official training rows
MEAN = (0.4914, 0.4822, 0.4465)  # per channel, of the official training set, pixels in [0, 1]
STD = (0.2470, 0.2435, 0.2616)


def load_cifar10(cfg: DataConfig, seed: int) -> DataBundle:
    """CIFAR-10 as a :class:`DataBundle` of normalised float images (3, 32, 32).

    The images stay uint8 in memory (150 MB for 50,000); each batch is augmented and
    normalised as it is drawn.

    The official test batch is the test split; val is a stratified ``cfg.val_fraction`` of the
    training batches, drawn by ``seed``. Sample ids: training rows 0..N-1 in batch order
    (data_batch_1 first), test rows 50000 + row.

    Args:
        cfg: ``root`` holds ``cifar-10-batches-py/`` (or is that folder); ``download`` fetches it
            with torchvision when missing; ``augment`` turns on crop and flip for ``train``.
        seed: draws the val split.
    """
    folder = _find_folder(Path(cfg.root), cfg.download)
    names = _read_class_names(folder)
    x_train, y_train = _read_batches(folder, TRAIN_FILES, len(names))  # (N, 3, 32, 32) uint8
    x_test, y_test = _read_batches(folder, (TEST_FILE,), len(names))
    where = f"cifar10 training batches in {folder}"
    check_class_sizes(y_train, names, where, "images")
    train, val, _ = stratified_split(y_train, cfg.val_fraction, 0.0, seed, where)
    full = tensor_dataset(x_train, y_train, np.arange(len(y_train)))
    test_ids = TEST_ID_OFFSET + np.arange(len(y_test))
    to_float = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    # Crop and flip act on the uint8 image, so the 4-pixel padding is black before normalising.
    augment = CropFlip(pad=4) if cfg.augment else None
    return DataBundle(
        name="cifar10",
        train=full.subset(train, to_float, augment),
        train_eval=full.subset(train, to_float),
        val=full.subset(val, to_float),
        test=tensor_dataset(x_test, y_test, test_ids, to_float),
        class_names=names,
        input_shape=(3, 32, 32),
    )


def source_files(root: Path) -> list[Path]:
    """The files :func:`load_cifar10` reads under ``root``; empty when it holds no batches."""
    for folder in (root / FOLDER, root):
        if (folder / META_FILE).is_file():
            return [folder / name for name in (META_FILE, *TRAIN_FILES, TEST_FILE)]
    return []


def _find_folder(root: Path, download: bool) -> Path:
    """The folder holding the batches: ``root/cifar-10-batches-py`` or ``root`` itself."""
    for folder in (root / FOLDER, root):
        if (folder / META_FILE).is_file():
            return folder
    if not download:
        raise DataError(
            f"cifar10: no CIFAR-10 batches in {root / FOLDER} (nor in {root}); "
            "copy cifar-10-batches-py there or set data.download: true"
        )
    from torchvision.datasets import CIFAR10  # only here: the one place that needs the network

    CIFAR10(str(root), train=True, download=True)
    return root / FOLDER


# What a CIFAR batch may name: numpy's array reconstruction and nothing else. Any other global
# (os.system, builtins.eval, ...) is refused, so a crafted batch file cannot run code.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 2 pickles bytes under protocol 2
}


class BatchUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that builds only plain data and numpy arrays."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path, where: str = "cifar10") -> dict:
    """One pickled batch as a dict with str keys (files from Python 2 or 3, str or bytes keys).

    ``where`` starts each error message (the data set's name: CIFAR-100 reads its files here too).
    """
    if not path.is_file():
        raise DataError(f"{where}: missing batch file {path}")
    try:
        with path.open("rb") as f:
            # latin1: the official files come from Python 2; torchvision reads them this way too.
            entry = BatchUnpickler(f, encoding="latin1").load()
    except Exception as e:  # any unpickling failure means the same thing: not a CIFAR batch
        raise DataError(f"{where}: {path} is not a pickled CIFAR batch ({e})") from None
    if not isinstance(entry, dict):
        raise DataError(f"{where}: {path} holds a {type(entry).__name__}, not a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _read_class_names(folder: Path) -> list[str]:
    """The 10 names from ``batches.meta`` (key ``label_names``), index = label."""
    names = _unpickle(folder / META_FILE).get("label_names")
    if not names:
        raise DataError(f"cifar10: {folder / META_FILE} has no label_names")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _read_batches(
    folder: Path,
    files: tuple[str, ...],
    num_classes: int,
    where: str = "cifar10",
    label_key: str = "labels",
) -> tuple[torch.Tensor, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of ``files``, concatenated in order.

    ``label_key``: the labels' key in each batch (CIFAR-100: ``fine_labels``); ``where`` starts
    each error message.
    """
    images, labels = [], []  # uint8 views of each batch: no float or int64 copy of the pixels
    for name in files:
        entry = _unpickle(folder / name, where)
        data = np.asarray(entry.get("data"))
        y = np.asarray(entry.get(label_key, []), np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(y) != len(data) or not len(y):
            raise DataError(
                f"{where}: {folder / name} needs data (N, 3072) and N > 0 {label_key}, "
                f"got data {data.shape} and {len(y)} {label_key}"
            )
        if y.min() < 0 or y.max() >= num_classes:
            raise DataError(f"{where}: {folder / name} has labels outside 0..{num_classes - 1}")
        images.append(data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32))  # R, G, B planes
        labels.append(y)
    return torch.from_numpy(np.concatenate(images)), np.concatenate(labels)

"""torchvision's classic image sets (``data.name: "torchvision:<Dataset>"``) from local files.

hill downloads nothing for these: the files must already lie under ``data.root`` in the layout
and format torchvision uses:

* MNIST, FashionMNIST, KMNIST, EMNIST: the uncompressed idx files in ``<root>/<Name>/raw/``,
  read by torchvision's own dataset classes (which only check that the files exist).
* CIFAR10, CIFAR100: the pickled python files in ``<root>/cifar-10-batches-py/`` and
  ``<root>/cifar-100-python/`` (or ``root`` is that folder), read directly as
  :mod:`hill_core.data.cifar10` does: torchvision's CIFAR classes check the md5 of every file,
  so a subset or a test fixture would be refused.

As CIFAR-10 does, the images stay uint8 in memory, (N, 1, 28, 28) or (N, 3, 32, 32), and each
batch is normalised as it is drawn (crop and flip first, for the training split of the 32 x 32
colour sets only: shifting a 28 x 28 digit by 4 pixels may cut its strokes).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torchvision.transforms import v2

from hill_core.config import DataConfig
from hill_core.data import cifar10
from hill_core.data.augment import CropFlip
from hill_core.data.base import (
    DataBundle,
    DataError,
    check_class_sizes,
    stratified_split,
    tensor_dataset,
)

IDX_SETS = ("MNIST", "FashionMNIST", "KMNIST", "EMNIST")  # 28 x 28 grey, idx files
CIFAR_SETS = ("CIFAR10", "CIFAR100")  # 32 x 32 colour, pickled python batches
EMNIST_SPLIT = "balanced"  # data.kwargs.split when none is given: 47 classes, balanced counts

# Per-channel mean and std of the official training images, pixels in [0, 1]. Constants, not
# computed here (a subset would shift them): MNIST's are those of PyTorch's MNIST example,
# FashionMNIST's, KMNIST's and CIFAR-100's the values commonly quoted for those sets; EMNIST's
# are those quoted for its balanced split (the other splits differ in the third decimal).
NORMALISE: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "MNIST": ((0.1307,), (0.3081,)),
    "FashionMNIST": ((0.2860,), (0.3530,)),
    "KMNIST": ((0.1918,), (0.3483,)),
    "EMNIST": ((0.1751,), (0.3332,)),
    "CIFAR10": (cifar10.MEAN, cifar10.STD),
    "CIFAR100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


class CifarLayout(NamedTuple):
    """The pickled files of a CIFAR set and the keys that matter in them."""

    folder: str  # as extracted from the official archive
    train_files: tuple[str, ...]  # read in this order: training ids 0..N-1
    test_file: str
    meta_file: str
    names_key: str  # of the class names, in the meta file
    label_key: str  # of the labels, in each batch


CIFAR_LAYOUT = {
    "CIFAR10": CifarLayout(
        folder=cifar10.FOLDER,
        train_files=cifar10.TRAIN_FILES,
        test_file=cifar10.TEST_FILE,
        meta_file=cifar10.META_FILE,
        names_key="label_names",
        label_key="labels",
    ),
    "CIFAR100": CifarLayout(
        folder="cifar-100-python",
        train_files=("train",),
        test_file="test",
        meta_file="meta",
        names_key="fine_label_names",  # the 100 classes (not the 20 coarse ones)
        label_key="fine_labels",
    ),
}


def load_torchvision(cfg: DataConfig, seed: int) -> DataBundle:
    """The torchvision set ``cfg.name`` as a :class:`DataBundle` of normalised float images.

    The official test split is the test split; val is a stratified ``cfg.val_fraction`` of the
    official training split, drawn by ``seed``. Sample ids: training rows 0..N-1 in file order,
    test rows N + row.

    Args:
        cfg: ``root`` holds the files (see the module's docstring); ``kwargs`` may give EMNIST's
            ``split`` (default balanced); ``augment`` turns on crop and flip for ``train`` of the
            CIFAR sets; ``download`` must be false.
        seed: draws the val split.

    Raises:
        DataError: in one line, for missing or malformed files and options hill cannot honour.
    """
    name = _set_name(cfg)
    if name in CIFAR_SETS:
        folder, x_train, y_train, x_test, y_test, names = _read_cifar(cfg, name)
    else:
        folder, x_train, y_train, x_test, y_test, names = _read_idx(cfg, name)
    where = f"{cfg.name} training files in {folder}"
    check_class_sizes(y_train, names, where, "images")
    train, val, _ = stratified_split(y_train, cfg.val_fraction, 0.0, seed, where)
    full = tensor_dataset(x_train, y_train, np.arange(len(y_train)))
    test_ids = len(y_train) + np.arange(len(y_test))  # after the training rows, as CIFAR-10's
    mean, std = NORMALISE[name]
    to_float = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
    # Crop and flip act on the uint8 image, so the 4-pixel padding is black before normalising.
    augment = CropFlip(pad=4) if cfg.augment and name in CIFAR_SETS else None
    return DataBundle(
        name=cfg.name,
        train=full.subset(train, to_float, augment),
        train_eval=full.subset(train, to_float),
        val=full.subset(val, to_float),
        test=tensor_dataset(x_test, y_test, test_ids, to_float),
        class_names=names,
        input_shape=tuple(x_train.shape[1:]),
    )


def source_files(cfg: DataConfig) -> list[Path]:
    """The files :func:`load_torchvision` reads for ``cfg``; empty when none of them is there."""
    name = cfg.name.removeprefix("torchvision:")
    if name in CIFAR_SETS:
        folder, layout = _cifar_folder(Path(cfg.root), name), CIFAR_LAYOUT[name]
        names = (layout.meta_file, *layout.train_files, layout.test_file)
        files = [folder / f for f in names] if folder else []
    elif name in IDX_SETS:
        split = cfg.kwargs.get("split", EMNIST_SPLIT)
        folder = idx_folder(Path(cfg.root), name)
        files = [folder / f for f in idx_files(name, split if isinstance(split, str) else "")]
    else:
        return []
    return files if any(f.is_file() for f in files) else []


# --- checks shared by every set ---


def _set_name(cfg: DataConfig) -> str:
    """The torchvision class name of ``cfg.name``, after refusing what hill cannot do."""
    name = cfg.name.removeprefix("torchvision:")
    if name not in IDX_SETS + CIFAR_SETS:
        known = ", ".join(f"torchvision:{n}" for n in IDX_SETS + CIFAR_SETS)
        raise DataError(f"{cfg.name}: not a data set hill reads from files (one of {known})")
    if cfg.download:
        raise DataError(
            f"{cfg.name}: hill downloads nothing for torchvision: data sets; copy the files "
            f"under {cfg.root} and set data.download: false"
        )
    allowed = {"split"} if name == "EMNIST" else set()
    if extra := sorted(set(cfg.kwargs) - allowed):
        takes = "only data.kwargs.split" if allowed else "no data.kwargs"
        raise DataError(f"{cfg.name} takes {takes}, got {', '.join(extra)}")
    return name


# --- MNIST, FashionMNIST, KMNIST, EMNIST: idx files ---


def idx_folder(root: Path, name: str) -> Path:
    """Where torchvision looks for the idx files of ``name``: ``<root>/<name>/raw``."""
    return root / name / "raw"


def idx_files(name: str, split: str = EMNIST_SPLIT) -> list[str]:
    """The four uncompressed idx files torchvision reads: train images, train labels, test
    images, test labels (EMNIST: of one ``split``)."""
    if name == "EMNIST":
        return [f"emnist-{split}-{part}-{kind}" for part in ("train", "test")
                for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]  # fmt: skip
    return [f"{part}-{kind}" for part in ("train", "t10k")
            for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]  # fmt: skip


def _read_idx(cfg: DataConfig, name: str):
    """(folder, x_train, y_train, x_test, y_test, class names) of an idx set, read with
    torchvision: images (N, 1, 28, 28) uint8, labels (N,) int64."""
    import torchvision.datasets

    extra = {"split": _emnist_split(cfg)} if name == "EMNIST" else {}
    folder = idx_folder(Path(cfg.root), name)
    _check_idx_files(cfg, name, folder, extra.get("split", ""))
    cls = getattr(torchvision.datasets, name)
    parts = []
    for train in (True, False):
        try:
            ds = cls(root=cfg.root, train=train, download=False, **extra)
        except RuntimeError as e:
            if "Dataset not found" in str(e):  # a file went away since the check above
                _check_idx_files(cfg, name, folder, extra.get("split", ""))
            raise _unreadable(cfg, folder, train, e) from None
        except (AssertionError, TypeError, ValueError, KeyError) as e:  # torchvision's parser
            raise _unreadable(cfg, folder, train, e) from None
        parts.append(_idx_arrays(cfg, name, folder, ds))
    names = _idx_class_names(name, list(ds.classes))  # EMNIST: those of its split
    (x_train, y_train), (x_test, y_test) = parts
    if extra.get("split") == "letters":
        y_train, y_test = y_train - 1, y_test - 1  # labels 1..26; class 0 "N/A" is never used
    _check_labels(cfg, folder, y_train, "training", len(names))
    _check_labels(cfg, folder, y_test, "test", len(names))
    return folder, x_train, y_train, x_test, y_test, names


def _check_labels(cfg: DataConfig, folder: Path, y: np.ndarray, part: str, classes: int) -> None:
    """Labels (N,) must index the class names: torchvision's reader does not check them."""
    if y.min() < 0 or y.max() >= classes:
        raise DataError(
            f"{cfg.name}: the {part} labels in {folder} span {y.min()}..{y.max()}, outside "
            f"the {classes} classes 0..{classes - 1}"
        )


def _idx_class_names(name: str, classes: list[str]) -> list[str]:
    """torchvision's class names, shortened: MNIST's "0 - zero" -> "0"; EMNIST letters' unused
    "N/A" (label 0) dropped, so its labels 1..26 become 0..25."""
    if name == "MNIST":
        return [c.split(" - ")[0] for c in classes]
    return [c for c in classes if c != "N/A"]


def _emnist_split(cfg: DataConfig) -> str:
    from torchvision.datasets import EMNIST

    split = cfg.kwargs.get("split", EMNIST_SPLIT)
    if split not in EMNIST.splits:
        raise DataError(
            f"{cfg.name}: data.kwargs.split {split!r} is not one of torchvision's EMNIST "
            f"splits ({', '.join(EMNIST.splits)})"
        )
    return split


def _check_idx_files(cfg: DataConfig, name: str, folder: Path, split: str) -> None:
    """One line naming the folder and the files expected there, when any is missing."""
    needed = idx_files(name, split)
    missing = [f for f in needed if not (folder / f).is_file()]
    if not missing:
        return
    gzipped = any((folder / f"{f}.gz").is_file() for f in missing)
    how = "gunzip the .gz files there" if gzipped else "copy them there (uncompressed)"
    what = "no idx files" if len(missing) == len(needed) else f"missing {', '.join(missing)}"
    raise DataError(f"{cfg.name}: {what} in {folder} (need {', '.join(needed)}); {how}")


def _unreadable(cfg: DataConfig, folder: Path, train: bool, err: Exception) -> DataError:
    detail = " ".join(f"{type(err).__name__} {err}".split())  # one line, whatever torchvision said
    part = "training" if train else "test"
    return DataError(
        f"{cfg.name}: cannot read the {part} idx files in {folder} ({detail}); they must be the "
        "uncompressed idx files of the official set"
    )


def _idx_arrays(cfg: DataConfig, name: str, folder: Path, ds) -> tuple[torch.Tensor, np.ndarray]:
    """Images (N, 1, 28, 28) uint8 and labels (N,) int64 of a torchvision idx dataset."""
    x, y = ds.data, np.asarray(ds.targets, np.int64)
    part = "training" if ds.train else "test"
    if x.dtype != torch.uint8 or tuple(x.shape[1:]) != (28, 28) or len(x) != len(y) or not len(y):
        raise DataError(
            f"{cfg.name}: the {part} idx files in {folder} need images (N, 28, 28) uint8 and "
            f"N > 0 labels, got images {tuple(x.shape)} {x.dtype} and {len(y)} labels"
        )
    if name == "EMNIST":
        # The official EMNIST files store each image transposed (written column by column), and
        # torchvision keeps them so (pytorch/vision#8783): transposed back, letters stand upright.
        x = x.transpose(1, 2)
    return x.contiguous()[:, None], y


# --- CIFAR10, CIFAR100: pickled python batches ---


def _cifar_folder(root: Path, name: str) -> Path | None:
    """``root/<folder>`` or ``root`` itself, whichever holds the meta file; None if neither."""
    layout = CIFAR_LAYOUT[name]
    for candidate in (root / layout.folder, root):
        if (candidate / layout.meta_file).is_file():
            return candidate
    return None


def _read_cifar(cfg: DataConfig, name: str):
    """(folder, x_train, y_train, x_test, y_test, class names) of a CIFAR set: images
    (N, 3, 32, 32) uint8 (R, G, B planes), labels (N,) int64."""
    layout = CIFAR_LAYOUT[name]
    folder = _cifar_folder(Path(cfg.root), name)
    if folder is None:
        files = ", ".join((layout.meta_file, *layout.train_files, layout.test_file))
        raise DataError(
            f"{cfg.name}: no {layout.folder} files in {Path(cfg.root) / layout.folder} (nor in "
            f"{cfg.root}) (need {files}); copy the extracted {layout.folder} folder there"
        )
    names = cifar10._unpickle(folder / layout.meta_file, cfg.name).get(layout.names_key)
    if not names:
        raise DataError(f"{cfg.name}: {folder / layout.meta_file} has no {layout.names_key}")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]

    def read(files: tuple[str, ...]) -> tuple[torch.Tensor, np.ndarray]:
        return cifar10._read_batches(folder, files, len(names), cfg.name, layout.label_key)

    x_train, y_train = read(layout.train_files)
    x_test, y_test = read((layout.test_file,))
    return folder, x_train, y_train, x_test, y_test, names

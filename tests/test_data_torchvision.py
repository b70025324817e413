"""``data.name: "torchvision:<Dataset>"``: the six sets read from files in torchvision's real
on-disk formats, written here by ``data_writers`` (idx files, Python 2 CIFAR pickles)."""

from __future__ import annotations

import math
import pickle
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from data_writers import (
    CIFAR100_FINE,
    CIFAR_NAMES,
    IDX_FULL,
    idx_arrays,
    write_cifar,
    write_cifar100,
    write_idx,
)

from hill_core.config import Config, DataConfig
from hill_core.data import DataError, load_data
from hill_core.data.torchvision_sets import NORMALISE, source_files

# name -> (data.kwargs, input shape, training items, test items, first class names, classes)
SETS = {
    "MNIST": ({}, (1, 28, 28), 200, 50, ["0", "1", "2"], 10),
    "FashionMNIST": ({}, (1, 28, 28), 200, 50, ["T-shirt/top", "Trouser", "Pullover"], 10),
    "KMNIST": ({}, (1, 28, 28), 200, 50, ["o", "ki", "su"], 10),
    # balanced: 47 classes, so a val split of 15 % needs >= 47 / 0.15 training items
    "EMNIST": ({"split": "balanced"}, (1, 28, 28), 470, 94, ["0", "1", "2"], 47),
    "CIFAR10": ({}, (3, 32, 32), 200, 40, CIFAR_NAMES[:3], 10),
    "CIFAR100": ({}, (3, 32, 32), 1000, 200, CIFAR100_FINE[:3], 100),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One folder holding all six sets, as torchvision lays them out under its root."""
    root = tmp_path_factory.mktemp("torchvision")
    for name in ("MNIST", "FashionMNIST", "KMNIST"):
        write_idx(root, name, *SETS[name][2:4])
    write_idx(root, "EMNIST", 470, 94, split="balanced")
    write_idx(root, "EMNIST", 260, 52, split="letters")
    write_cifar(root, per_batch=40)  # 5 x 40 training images, 40 test
    write_cifar100(root, *SETS["CIFAR100"][2:4])
    return root


def cfg_of(name: str, root: Path, **fields) -> DataConfig:
    return DataConfig(
        name=f"torchvision:{name}", root=str(root), **{"kwargs": SETS[name][0], **fields}
    )


def one_line_error(cfg: DataConfig) -> str:
    with pytest.raises(DataError) as err:
        load_data(cfg, seed=0)
    message = str(err.value)
    assert "\n" not in message and message.startswith(cfg.name)
    return message


# --- every set ---


@pytest.mark.parametrize("name", list(SETS))
def test_each_set_loads_with_shapes_names_ids_and_splits(name, root):
    _, shape, n_train, n_test, first_names, classes = SETS[name]
    cfg = cfg_of(name, root)
    assert Config(data=cfg).data.name == cfg.name  # the config accepts the name
    bundle = load_data(cfg, seed=0)
    assert bundle.name == f"torchvision:{name}" and bundle.input_shape == shape
    assert bundle.class_names[:3] == first_names and bundle.num_classes == classes
    assert len(bundle.val) == math.ceil(0.15 * n_train)  # of the official training split
    assert len(bundle.train) + len(bundle.val) == n_train and len(bundle.test) == n_test
    assert np.array_equal(bundle.train.ids, bundle.train_eval.ids)
    train_ids = np.sort(np.concatenate([bundle.train.ids, bundle.val.ids]))
    assert np.array_equal(train_ids, np.arange(n_train))  # training rows 0..N-1
    assert np.array_equal(bundle.test.ids, n_train + np.arange(n_test))  # then the test rows
    assert bundle.train.tensor.dtype == torch.uint8  # kept as bytes, made float per batch
    for split in (bundle.train, bundle.val, bundle.test):
        x, y, ids = split.batch(torch.arange(len(split)))
        assert x.dtype == torch.float32 and tuple(x.shape) == (len(split), *shape)
        assert torch.isfinite(x).all() and y.dtype == torch.int64 and ids.dtype == torch.int64
        assert int(y.min()) >= 0 and int(y.max()) < classes
        item, label, sample_id = split[0]
        assert torch.equal(item, x[0]) or split is bundle.train  # train items are augmented
        assert (label, sample_id) == (int(y[0]), int(ids[0]))


@pytest.mark.parametrize("name", list(SETS))
def test_the_val_split_follows_the_seed_and_the_test_split_does_not(name, root):
    cfg = cfg_of(name, root)
    first, again, other = (load_data(cfg, seed=s) for s in (3, 3, 4))
    assert np.array_equal(first.val.ids, again.val.ids)
    assert not np.array_equal(first.val.ids, other.val.ids)
    assert np.array_equal(first.test.ids, other.test.ids)
    counts = [np.bincount(b.val.labels, minlength=b.num_classes) for b in (first, other)]
    assert np.abs(counts[0] - counts[1]).max() <= 1  # both stratified


@pytest.mark.parametrize("name", list(SETS))
def test_items_are_the_normalised_pixels_written(name, root):
    """The test split is the official test file in order; x = (pixel / 255 - mean) / std."""
    bundle = load_data(cfg_of(name, root, augment=False), seed=0)
    n = len(bundle.test)
    raw, labels = written_test_split(name, root, n)  # (n, C, H, W) uint8, (n,)
    assert np.array_equal(bundle.test.labels, labels)
    mean, std = (torch.tensor(v)[:, None, None] for v in NORMALISE[name])
    expected = (torch.from_numpy(raw).float() / 255 - mean) / std
    x, _, _ = bundle.test.batch(torch.arange(n))
    assert torch.allclose(x, expected, atol=1e-5)


def written_test_split(name: str, root: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The test images (n, C, H, W) uint8 and labels (n,) as the writers made them."""
    if name in ("CIFAR10", "CIFAR100"):
        path = {"CIFAR10": "cifar-10-batches-py/test_batch", "CIFAR100": "cifar-100-python/test"}
        raw = pickle.loads((root / path[name]).read_bytes(), encoding="latin1")
        labels = raw["labels" if name == "CIFAR10" else "fine_labels"]
        return raw["data"].reshape(n, 3, 32, 32), np.asarray(labels)
    images, labels = idx_arrays(name, n, "test", SETS[name][0].get("split"))
    return images[:, None], labels.astype(np.int64)


def test_mnist_round_trips_the_training_pixels_by_id(root):
    bundle = load_data(cfg_of("MNIST", root), seed=0)
    images, labels = idx_arrays("MNIST", 200, "train")
    for split in (bundle.train_eval, bundle.val):
        raw = split.raw_batch(torch.arange(len(split)))  # before the transform: uint8
        assert raw.dtype == torch.uint8 and raw.shape[1:] == (1, 28, 28)
        assert np.array_equal(raw[:, 0].numpy(), images[split.ids])
        assert np.array_equal(split.labels, labels[split.ids])


def test_emnist_images_stand_upright_though_stored_transposed(root):
    """The official EMNIST files hold each image transposed; torchvision keeps them so."""
    folder = root / "EMNIST" / "raw"
    stored = np.frombuffer((folder / "emnist-balanced-test-images-idx3-ubyte").read_bytes()[16:],
                           np.uint8).reshape(94, 28, 28)  # fmt: skip
    upright, _ = idx_arrays("EMNIST", 94, "test", "balanced")
    assert not np.array_equal(stored, upright)
    bundle = load_data(cfg_of("EMNIST", root), seed=0)
    assert np.array_equal(bundle.test.raw_batch(torch.arange(94))[:, 0].numpy(), upright)


def test_emnist_split_defaults_to_balanced_and_letters_drop_the_unused_class(root):
    plain = load_data(DataConfig(name="torchvision:EMNIST", root=str(root)), seed=0)
    assert plain.num_classes == 47 and len(plain.test) == 94
    letters = load_data(cfg_of("EMNIST", root, kwargs={"split": "letters"}), seed=0)
    assert letters.class_names == [chr(c) for c in range(ord("a"), ord("z") + 1)]
    _, stored = idx_arrays("EMNIST", 52, "test", "letters")  # labels 1..26 on disk
    assert np.array_equal(letters.test.labels, stored.astype(np.int64) - 1)


def test_only_the_colour_sets_augment_and_only_their_train_split(root):
    for name in SETS:
        bundle = load_data(cfg_of(name, root), seed=0)
        colour = name.startswith("CIFAR")
        assert (bundle.train.augment is not None) == colour
        assert bundle.train_eval.augment is None and bundle.val.augment is None
        assert bundle.test.augment is None
        plain = load_data(cfg_of(name, root, augment=False), seed=0)
        assert plain.train.augment is None


def test_source_files_name_what_is_read(root, tmp_path):
    files = source_files(cfg_of("FashionMNIST", root))
    names = [f"{part}-{kind}" for part in ("train", "t10k") for kind in ("images-idx3-ubyte",
             "labels-idx1-ubyte")]  # fmt: skip
    assert [f.name for f in files] == names
    assert all(f.parent == root / "FashionMNIST" / "raw" for f in files)
    letters = source_files(cfg_of("EMNIST", root, kwargs={"split": "letters"}))
    assert letters[0].name == "emnist-letters-train-images-idx3-ubyte"
    assert [f.name for f in source_files(cfg_of("CIFAR100", root))] == ["meta", "train", "test"]
    assert len(source_files(cfg_of("CIFAR10", root))) == 7
    for name in SETS:
        assert source_files(cfg_of(name, tmp_path)) == []


def test_a_rewritten_file_is_read_again(tmp_path):
    write_idx(tmp_path, "KMNIST", 200, 50)
    cfg = cfg_of("KMNIST", tmp_path)
    assert len(load_data(cfg, seed=0).test) == 50
    shutil.rmtree(tmp_path / "KMNIST")
    write_idx(tmp_path, "KMNIST", 200, 60)
    assert len(load_data(cfg, seed=0).test) == 60


# --- errors: one line each, naming the folder ---


@pytest.mark.parametrize("name", list(SETS))
def test_missing_files_name_the_folder_and_the_files(name, tmp_path):
    message = one_line_error(cfg_of(name, tmp_path / "nothing"))
    assert "nothing" in message
    expected = {
        "MNIST": "MNIST/raw (need train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte); copy them there (uncompressed)",
        "EMNIST": "EMNIST/raw (need emnist-balanced-train-images-idx3-ubyte, "
        "emnist-balanced-train-labels-idx1-ubyte, emnist-balanced-test-images-idx3-ubyte",
        "CIFAR10": "cifar-10-batches-py (nor in",
        "CIFAR100": "(need meta, train, test)",
    }
    assert expected.get(name, f"{name}/raw (need train-images-idx3-ubyte") in message


def test_one_missing_idx_file_is_named_and_gzipped_files_get_a_hint(tmp_path):
    folder = write_idx(tmp_path, "FashionMNIST", 200, 50)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    message = one_line_error(cfg_of("FashionMNIST", tmp_path))
    assert f"missing t10k-labels-idx1-ubyte in {folder} (need " in message
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    assert one_line_error(cfg_of("FashionMNIST", tmp_path)).endswith("gunzip the .gz files there")


def test_an_unknown_emnist_split_lists_torchvisions(root):
    message = one_line_error(cfg_of("EMNIST", root, kwargs={"split": "greek"}))
    assert "'greek'" in message
    assert "byclass, bymerge, balanced, letters, digits, mnist" in message


def test_unknown_kwargs_are_refused(root):
    message = one_line_error(cfg_of("MNIST", root, kwargs={"split": "balanced"}))
    assert "takes no data.kwargs, got split" in message


def test_download_is_refused_even_when_files_are_there(root):
    for name in ("FashionMNIST", "CIFAR100"):
        message = one_line_error(cfg_of(name, root, download=True))
        assert "downloads nothing" in message and str(root) in message


def test_labels_outside_the_class_names_are_an_error(tmp_path):
    folder = write_idx(tmp_path, "MNIST", 200, 50)
    labels = folder / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1] + bytes([12]))  # the last test label: 12
    message = one_line_error(cfg_of("MNIST", tmp_path))
    assert f"test labels in {folder} span 0..12, outside the 10 classes 0..9" in message


def test_cifar100_labels_outside_the_class_names_are_an_error(tmp_path):
    folder = write_cifar100(tmp_path, 1000, 200)
    batch = pickle.loads((folder / "test").read_bytes(), encoding="latin1")
    batch["fine_labels"][0] = 100
    (folder / "test").write_bytes(pickle.dumps(batch, protocol=2))
    message = one_line_error(cfg_of("CIFAR100", tmp_path))
    assert f"{folder / 'test'} has labels outside 0..99" in message


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:1000],  # truncated
        lambda b: struct.pack(">I", 0x00000D03) + b[4:],  # float32 pixels, not bytes
        lambda b: struct.pack(">IIII", 0x803, 200, 14, 56) + b[16:],  # 14 x 56 images
    ],
    ids=["truncated", "float-magic", "wrong-size"],
)
def test_a_malformed_idx_file_is_a_one_line_error(damage, tmp_path):
    folder = write_idx(tmp_path, "FashionMNIST", 200, 50)
    images = folder / "train-images-idx3-ubyte"
    images.write_bytes(damage(images.read_bytes()))
    message = one_line_error(cfg_of("FashionMNIST", tmp_path))
    assert str(folder) in message and "training" in message


def test_a_malformed_cifar100_file_names_the_set(tmp_path):
    folder = write_cifar100(tmp_path, 1000, 200)
    (folder / "train").write_bytes(b"not a pickle")
    message = one_line_error(cfg_of("CIFAR100", tmp_path))
    assert f"{folder / 'train'} is not a pickled CIFAR batch" in message


# --- full size ---


@pytest.mark.slow
def test_fashion_mnist_at_full_size_loads(tmp_path):
    """60,000 + 10,000 images in the real format (about 55 MB of idx files)."""
    write_idx(tmp_path, "FashionMNIST", *IDX_FULL)
    start = time.perf_counter()
    bundle = load_data(cfg_of("FashionMNIST", tmp_path), seed=0)
    seconds = time.perf_counter() - start
    assert len(bundle.train) + len(bundle.val) == 60_000 and len(bundle.val) == 9_000
    assert len(bundle.test) == 10_000 and bundle.test.ids[-1] == 69_999
    assert bundle.train.tensor.shape == (60_000, 1, 28, 28)
    assert np.array_equal(np.bincount(bundle.val.labels), np.full(10, 900))
    x, _, _ = bundle.train.batch(torch.arange(512))
    assert x.shape == (512, 1, 28, 28) and torch.isfinite(x).all()
    print(f"full-size FashionMNIST loaded in {seconds:.2f} s")  # no assert: machines differ

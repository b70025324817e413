"""Data tier: tiny files in the real on-disk formats (tests/data_writers.py), loaded through
``load_data``."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from data_writers import CIFAR_NAMES, table_frame, write_cifar, write_imagefolder, write_pamap2

from hill_core.config import DataConfig
from hill_core.data import DataError, load_data
from hill_core.data.cifar10 import MEAN, STD

# --- fixtures: a DataConfig per format ---


@pytest.fixture
def cifar_cfg(tmp_path):
    write_cifar(tmp_path)
    return DataConfig(name="cifar10", root=str(tmp_path))


@pytest.fixture
def pamap2_cfg(tmp_path):
    write_pamap2(tmp_path)
    return DataConfig(name="pamap2", root=str(tmp_path))


@pytest.fixture
def imagefolder_cfg(tmp_path):
    write_imagefolder(tmp_path / "images")
    return DataConfig(name="imagefolder", root=str(tmp_path / "images"), image_size=16)


@pytest.fixture
def csv_cfg(tmp_path):
    table_frame().to_csv(tmp_path / "t.csv", index=False)
    return DataConfig(name="table", root=str(tmp_path / "t.csv"))


@pytest.fixture
def parquet_cfg(tmp_path):
    frame = table_frame()
    frame["label"] = frame["label"].map({"a": 10, "b": 2, "c": 7})  # integer labels
    frame.to_parquet(tmp_path / "t.parquet")
    return DataConfig(name="table", root=str(tmp_path / "t.parquet"))


FORMATS = ["cifar_cfg", "pamap2_cfg", "imagefolder_cfg", "csv_cfg", "parquet_cfg"]


def split_ids(bundle) -> dict[str, np.ndarray]:
    return {s: getattr(bundle, s).ids for s in ("train", "train_eval", "val", "test")}


# --- every format ---


@pytest.mark.parametrize("fmt", FORMATS)
def test_items_have_shape_label_and_unique_ids(fmt, request):
    bundle = load_data(request.getfixturevalue(fmt), seed=0)
    ids = split_ids(bundle)
    assert np.array_equal(ids["train"], ids["train_eval"])
    parts = [ids["train"], ids["val"], ids["test"]]
    assert all(len(p) > 0 for p in parts)
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == len(joined)  # unique ids, disjoint splits
    for split in (bundle.train, bundle.val, bundle.test):
        x, y, sample_id = split[len(split) - 1]
        assert x.dtype == torch.float32 and tuple(x.shape) == bundle.input_shape
        assert torch.isfinite(x).all()
        assert 0 <= y < bundle.num_classes and sample_id == split.ids[-1]
        assert split.labels.max() < bundle.num_classes


@pytest.mark.parametrize("fmt", FORMATS)
def test_split_and_ids_are_stable_for_a_seed(fmt, request):
    cfg = request.getfixturevalue(fmt)
    first, again = split_ids(load_data(cfg, seed=3)), split_ids(load_data(cfg, seed=3))
    assert all(np.array_equal(first[s], again[s]) for s in first)
    other = split_ids(load_data(cfg, seed=4))
    items = [
        np.sort(np.concatenate([ids["train"], ids["val"], ids["test"]])) for ids in (first, other)
    ]
    assert np.array_equal(*items)  # another seed splits the same items differently
    # The split follows the seed, except PAMAP2's split, which is fixed by subject.
    assert np.array_equal(first["val"], other["val"]) == (fmt == "pamap2_cfg")


@pytest.mark.parametrize("name", ["cifar10", "pamap2", "imagefolder", "table"])
def test_missing_input_is_a_one_line_error(name, tmp_path):
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name=name, root=str(tmp_path / "nothing")), seed=0)
    assert "\n" not in str(err.value) and "nothing" in str(err.value)


# --- CIFAR-10 ---


def test_cifar_reads_batches_in_order_with_names_and_test_ids(cifar_cfg):
    bundle = load_data(cifar_cfg, seed=0)
    assert bundle.class_names == CIFAR_NAMES and bundle.input_shape == (3, 32, 32)
    assert len(bundle.train) + len(bundle.val) == 100 and len(bundle.val) == 15
    assert np.array_equal(bundle.test.ids, 50_000 + np.arange(20))
    # The eval transform only normalises: item = (pixel / 255 - mean) / std of the raw batch.
    test_batch = Path(cifar_cfg.root) / "cifar-10-batches-py" / "test_batch"
    raw = pickle.loads(test_batch.read_bytes(), encoding="latin1")  # written as by Python 2
    pixels = torch.from_numpy(raw["data"][7].reshape(3, 32, 32)).float() / 255
    expected = (pixels - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    x, y, _ = bundle.test[7]
    assert torch.allclose(x, expected, atol=1e-5) and y == raw["labels"][7]


def test_cifar_augments_train_only(cifar_cfg):
    bundle = load_data(cifar_cfg, seed=0)
    torch.manual_seed(0)
    assert any(not torch.equal(bundle.train[i][0], bundle.train_eval[i][0]) for i in range(10))
    assert all(torch.equal(bundle.train_eval[i][0], bundle.train_eval[i][0]) for i in range(10))
    plain = load_data(DataConfig(name="cifar10", root=cifar_cfg.root, augment=False), seed=0)
    assert all(torch.equal(plain.train[i][0], plain.train_eval[i][0]) for i in range(10))


def test_cifar_accepts_the_batches_folder_itself(cifar_cfg):
    root = str(Path(cifar_cfg.root) / "cifar-10-batches-py")
    bundle = load_data(DataConfig(name="cifar10", root=root), seed=0)
    assert len(bundle.test) == 20


def test_cifar_missing_folder_says_where_and_how(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py.*data.download: true"):
        load_data(DataConfig(name="cifar10", root=str(tmp_path)), seed=0)


def test_cifar_malformed_batch_is_an_error(cifar_cfg):
    batch = Path(cifar_cfg.root) / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}))
    with pytest.raises(DataError, match="data_batch_3.*3072"):
        load_data(cifar_cfg, seed=0)


# --- PAMAP2 ---


def test_pamap2_windows_labels_and_ids(pamap2_cfg):
    bundle = load_data(pamap2_cfg, seed=0)
    assert bundle.input_shape == (27, 200) and bundle.num_classes == 13
    assert bundle.class_names[0] == "no activity" and bundle.class_names[-1] == "rope jumping"
    # 1000 rows at 100 Hz -> 500 at 50 Hz -> 7 windows; A holds 210 samples: 3 windows A, 4 B.
    for split, subjects in (("train", (1, 2, 4, 5, 8)), ("val", (6,)), ("test", (3, 7))):
        ds = getattr(bundle, split)
        assert np.array_equal(ds.ids, [s * 1_000_000 + w for s in subjects for w in range(7)])
        expected = [[s % 13] * 3 + [(s + 5) % 13] * 4 for s in subjects]
        assert ds.labels.tolist() == sum(expected, [])
    assert not any(i // 1_000_000 == 9 for i in np.concatenate(list(split_ids(bundle).values())))


def test_pamap2_fills_gaps_and_standardises_with_train_stats(pamap2_cfg):
    bundle = load_data(pamap2_cfg, seed=0)
    train = torch.stack([bundle.train[i][0] for i in range(len(bundle.train))])
    val = torch.stack([bundle.val[i][0] for i in range(len(bundle.val))])
    assert torch.isfinite(train).all() and torch.isfinite(val).all()
    assert train[:, 1:].mean().abs() < 0.2  # channel 0 is the ramp; the rest is noise
    assert val[:, 1:].mean() > 5  # subject 6 is offset by 10 and scaled with the train std
    # Window 5 of subject 1 covers the 0.2 s hand dropout: linear interpolation keeps the ramp.
    ramp = bundle.train[5][0][0]
    assert torch.allclose(ramp.diff(), ramp.diff()[0].expand(199), atol=1e-4)


def test_pamap2_missing_split_names_the_files(tmp_path):
    write_pamap2(tmp_path, subjects=(1, 2, 3, 4, 5, 7, 8))
    with pytest.raises(DataError, match="val split.*subject106.dat"):
        load_data(DataConfig(name="pamap2", root=str(tmp_path)), seed=0)


def test_pamap2_malformed_file_is_a_one_line_error(pamap2_cfg):
    path = Path(pamap2_cfg.root) / "PAMAP2_Dataset" / "Protocol" / "subject103.dat"
    path.write_text("1.0 2 NaN 3.0\n" * 10)
    with pytest.raises(DataError, match="subject103.dat.*54") as err:
        load_data(pamap2_cfg, seed=0)
    assert "\n" not in str(err.value)


# --- ImageFolder ---


def test_imagefolder_names_sizes_and_ids(imagefolder_cfg):
    bundle = load_data(imagefolder_cfg, seed=0)
    assert bundle.class_names == ["cat", "dog", "frog"] and bundle.input_shape == (3, 16, 16)
    ids = np.concatenate([bundle.train.ids, bundle.val.ids, bundle.test.ids])
    assert np.array_equal(np.sort(ids), np.arange(24))  # position in ImageFolder's sorted list
    labels = np.concatenate([bundle.train.labels, bundle.val.labels, bundle.test.labels])
    assert np.array_equal(labels[np.argsort(ids)], np.repeat([0, 1, 2], 8))
    x = bundle.test[0][0]
    assert type(x) is torch.Tensor and x.min() >= 0 and x.max() <= 1


def test_imagefolder_small_class_is_an_error(tmp_path):
    write_imagefolder(tmp_path, classes=("a",), per_class=8)
    write_imagefolder(tmp_path, classes=("b",), per_class=2)
    with pytest.raises(DataError, match="'b' has 2 images"):
        load_data(DataConfig(name="imagefolder", root=str(tmp_path)), seed=0)


# --- tables ---


def test_table_labels_ids_and_standardised_features(csv_cfg, parquet_cfg):
    csv, parquet = load_data(csv_cfg, seed=0), load_data(parquet_cfg, seed=0)
    assert csv.class_names == ["a", "b", "c"] and csv.input_shape == (4,)
    assert parquet.class_names == ["2", "7", "10"]  # sorted as numbers, named as strings
    frame = table_frame().set_index("id")
    assert frame.loc[csv.val.ids, "label"].tolist() == [csv.class_names[y] for y in csv.val.labels]
    numbers = frame.loc[parquet.test.ids, "label"].map({"a": "10", "b": "2", "c": "7"}).tolist()
    assert numbers == [parquet.class_names[y] for y in parquet.test.labels]
    train = torch.stack([csv.train[i][0] for i in range(len(csv.train))])
    assert torch.allclose(train.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(train.std(0, unbiased=False), torch.ones(4), atol=1e-4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(f2=f["f2"].astype(str) + "x"), "'f2' .*not numeric"),
        (lambda f: f.assign(f1=f["f1"].where(f.index != 5)), "'f1' .*NaN"),
        (lambda f: f.assign(id=f["id"].where(f.index != 5, f["id"].iloc[0])), "repeats id"),
        (lambda f: f.rename(columns={"label": "target"}), "no label column 'label'"),
        (lambda f: f.assign(label=f["label"].where(f.index != 0, "z")), "'z' .*1 rows"),
    ],
)
def test_table_bad_columns_are_one_line_errors(change, message, tmp_path):
    change(table_frame()).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=message) as err:
        load_data(DataConfig(name="table", root=str(tmp_path / "t.csv")), seed=0)
    assert "\n" not in str(err.value)


def test_table_rejects_unknown_suffix(tmp_path):
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"\.csv, \.parquet"):
        load_data(DataConfig(name="table", root=str(tmp_path / "t.xlsx")), seed=0)


def test_a_crafted_cifar_batch_cannot_run_code(cifar_cfg, tmp_path):
    """A batch whose pickle calls a function is refused in one line; the function never runs."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    folder = Path(cifar_cfg.root) / "cifar-10-batches-py"
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": Payload(), "labels": []}))
    with pytest.raises(DataError, match="refused global"):
        load_data(cifar_cfg, 0)
    assert not marker.exists()


def test_the_projection_is_fitted_on_model_inputs_not_raw_items(cifar_cfg):
    """CIFAR keeps uint8 in memory; P is fitted on the evaluation transform's float inputs."""
    from hill_core.config import Config
    from hill_core.train import fit_state_projection, init_state

    cfg = Config(data=cifar_cfg).replace(
        **{"base.device": "cpu", "hill.projection_sample": 20, "model.name": "cifar_small_cnn"}
    )
    state = init_state(cfg, load_data(cifar_cfg, 0))
    projection = fit_state_projection(state)  # raised on raw uint8 before
    assert projection is not None

"""Data tier: PAMAP2's on-disk cache, the batch path of every loader, and load_data's stamp."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from data_writers import table_frame, write_cifar, write_imagefolder, write_pamap2

from hill_core.config import DataConfig
from hill_core.data import DataError, _source_stamp, load_data, pamap2
from hill_core.data.pamap2 import CACHE_FOLDER, load_pamap2

SPLITS = ("train", "train_eval", "val", "test")


@pytest.fixture
def protocol(tmp_path) -> Path:
    """A small PAMAP2 Protocol folder (9 subjects of 1,000 rows)."""
    return write_pamap2(tmp_path)


@pytest.fixture
def parsed(monkeypatch) -> list[str]:
    """Names of the subject files parsed from text, in order, from now on."""
    names: list[str] = []
    read = pamap2._read_subject

    def counting(path: Path):
        names.append(path.name)
        return read(path)

    monkeypatch.setattr(pamap2, "_read_subject", counting)
    return names


def load(folder: Path):
    """A fresh load from disk (``load_pamap2``, not ``load_data``: no in-process bundle)."""
    return load_pamap2(DataConfig(name="pamap2", root=str(folder)), seed=0)


def cache_files(folder: Path) -> list[str]:
    cache = folder / CACHE_FOLDER
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


def assert_same_bundle(a, b) -> None:
    """Same ids, labels and every window, split by split."""
    for split in SPLITS:
        x, y = getattr(a, split), getattr(b, split)
        assert np.array_equal(x.ids, y.ids) and np.array_equal(x.labels, y.labels)
        rows = torch.arange(len(x))
        assert torch.equal(x.raw_batch(rows), y.raw_batch(rows))


USED = [f"subject{100 + s}.dat" for s in range(1, 9)]  # subject 9 is in no split


# --- PAMAP2 cache ---


def test_cache_is_written_on_first_load_and_used_on_the_second(protocol, parsed):
    first = load(protocol)
    assert parsed == USED
    assert [n.split("-")[0] for n in cache_files(protocol)] == [n[:-4] for n in USED]
    second = load(protocol)
    assert parsed == USED  # nothing parsed again: every subject came from the cache
    assert_same_bundle(first, second)


def test_cache_does_not_need_the_raw_text(protocol):
    """Once cached, the raw files are only stat-ed: text overwritten in place (same size and
    mtime) is not read."""
    expected = load(protocol)
    path = protocol / "subject103.dat"
    stat = path.stat()
    path.write_bytes(b"x" * stat.st_size)  # would be a DataError if parsed
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert_same_bundle(load(protocol), expected)


@pytest.mark.parametrize("change", ["mtime", "content"])
def test_a_changed_raw_file_is_parsed_again(protocol, parsed, change):
    load(protocol)
    path = protocol / "subject103.dat"
    if change == "mtime":
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    else:  # the same file with 400 more rows at 100 Hz: 4 more windows (11, not 7)
        longer = write_pamap2(protocol.parent / "longer", subjects=(3,), rows_per_subject=1400)
        path.write_bytes((longer / path.name).read_bytes())
    bundle = load(protocol)
    assert parsed == [*USED, "subject103.dat"]
    assert len(cache_files(protocol)) == 8  # the old version of subject 103 is removed
    test_ids = bundle.test.ids[bundle.test.ids // 1_000_000 == 3]
    assert len(test_ids) == (7 if change == "mtime" else 11)
    assert_same_bundle(load(protocol), bundle)  # and cached again
    assert parsed == [*USED, "subject103.dat"]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def other_shape(path: Path) -> None:
    np.save(path, np.zeros((3, 3), np.float32))


def fractional_activity(path: Path) -> None:
    data = np.load(path)
    data[0, 7] = 0.5
    np.save(path, data)


@pytest.mark.parametrize(
    "damage", [truncate, garble, other_shape, fractional_activity, lambda p: p.write_bytes(b"")]
)
def test_a_torn_cache_file_is_ignored_and_rewritten(protocol, parsed, damage):
    expected = load(protocol)
    cache = protocol / CACHE_FOLDER / cache_files(protocol)[2]  # subject 103
    whole = cache.read_bytes()
    damage(cache)
    assert_same_bundle(load(protocol), expected)
    assert parsed == [*USED, "subject103.dat"]
    assert cache.read_bytes() == whole


@pytest.mark.parametrize("how", ["read-only folder", "cache name taken by a file"])
def test_an_unwritable_folder_loads_without_a_cache(protocol, parsed, monkeypatch, caplog, how):
    if how == "read-only folder":
        protocol.chmod(0o555)
        if os.geteuid() == 0:  # root writes anyway: fail as the OS fails others
            monkeypatch.setattr(pamap2.Path, "mkdir", permission_denied)
    else:
        (protocol / CACHE_FOLDER).write_text("not a folder")
    try:
        with caplog.at_level(logging.WARNING, logger="hill_core.data.pamap2"):
            first, second = load(protocol), load(protocol)
    finally:
        protocol.chmod(0o755)
    assert parsed == USED + USED  # parsed every time, without an error
    assert_same_bundle(first, second)
    assert len(caplog.records) == 1 and "not caching" in caplog.records[0].getMessage()
    assert not (protocol / CACHE_FOLDER).is_dir() or cache_files(protocol) == []


def permission_denied(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


def test_a_malformed_file_is_an_error_and_is_not_cached(protocol):
    (protocol / "subject103.dat").write_text("1.0 2 NaN 3.0\n" * 10)
    with pytest.raises(DataError, match="subject103.dat.*54") as err:
        load(protocol)
    assert "\n" not in str(err.value)
    # Subjects parsed before the bad file keep their cache; the bad file has none.
    assert [n.split("-")[0] for n in cache_files(protocol)] == ["subject101", "subject102"]


# --- batches equal items, for every loader ---


@pytest.fixture
def bundle(request, tmp_path):
    """A small bundle of each loader that has a batch path."""
    name = request.param
    if name == "pamap2":
        write_pamap2(tmp_path)
        cfg = DataConfig(name="pamap2", root=str(tmp_path))
    elif name == "cifar10":
        write_cifar(tmp_path)
        cfg = DataConfig(name="cifar10", root=str(tmp_path))
    elif name == "table":
        table_frame().to_csv(tmp_path / "t.csv", index=False)
        cfg = DataConfig(name="table", root=str(tmp_path / "t.csv"))
    else:
        cfg = DataConfig(name="digits")
    return load_data(cfg, seed=0)


@pytest.mark.parametrize("bundle", ["pamap2", "cifar10", "digits", "table"], indirect=True)
def test_a_batch_equals_its_items_stacked(bundle):
    generator = torch.Generator().manual_seed(0)
    for split in SPLITS:
        ds = getattr(bundle, split)
        rows = torch.randint(0, len(ds), (17,), generator=generator)
        rows[1] = rows[0]  # a repeated row
        raw = ds.raw_batch(rows)
        assert torch.equal(raw, torch.stack([ds.get_x(int(i)) for i in rows]))
        assert ds.raw_batch(rows[:0]).shape == (0, *raw.shape[1:])
        if ds.augment is None:  # deterministic: the transformed batch equals the items too
            x, y, ids = ds.batch(rows)
            items = [ds[int(i)] for i in rows]
            assert torch.allclose(x, torch.stack([item[0] for item in items]))
            assert y.tolist() == [item[1] for item in items]
            assert ids.tolist() == [item[2] for item in items]


def test_pamap2_batch_is_a_copy_and_no_window_is_kept(tmp_path):
    """Windows are gathered on demand: writing to a batch changes nothing loaded."""
    write_pamap2(tmp_path)
    ds = load_pamap2(DataConfig(name="pamap2", root=str(tmp_path)), 0).train
    rows = torch.tensor([0, 5])
    before = ds.raw_batch(rows).clone()
    ds.raw_batch(rows).fill_(7.0)
    assert torch.equal(ds.raw_batch(rows), before)


# --- load_data: a file rewritten inside an unchanged folder is read again ---


def rewrite_keeping_folder_mtime(path: Path, data: bytes) -> None:
    folder = path.parent.stat()
    path.write_bytes(data)
    os.utime(path.parent, ns=(folder.st_atime_ns, folder.st_mtime_ns))


def test_load_data_sees_a_cifar_batch_rewritten_in_place(tmp_path):
    folder = write_cifar(tmp_path)
    cfg = DataConfig(name="cifar10", root=str(tmp_path))
    first = load_data(cfg, 0)
    assert load_data(cfg, 0) is first
    batch = pickle.loads((folder / "test_batch").read_bytes(), encoding="latin1")
    batch["labels"] = [(y + 1) % 10 for y in batch["labels"]]
    rewrite_keeping_folder_mtime(folder / "test_batch", pickle.dumps(batch, protocol=2))
    again = load_data(cfg, 0)
    assert again is not first
    assert np.array_equal(again.test.labels, (first.test.labels + 1) % 10)


def test_load_data_sees_a_pamap2_subject_rewritten_in_place(tmp_path):
    protocol = write_pamap2(tmp_path)
    cfg = DataConfig(name="pamap2", root=str(tmp_path))
    first = load_data(cfg, 0)
    stamp = _source_stamp(cfg)
    assert [Path(entry[0]).name for entry in stamp] == USED
    longer = write_pamap2(tmp_path / "longer", subjects=(6,), rows_per_subject=1400)
    rewrite_keeping_folder_mtime(
        protocol / "subject106.dat", (longer / "subject106.dat").read_bytes()
    )
    assert _source_stamp(cfg) != stamp
    assert len(load_data(cfg, 0).val) == len(first.val) + 4  # 700 samples at 50 Hz: 11 windows


def test_stamps_of_the_other_loaders(tmp_path):
    assert _source_stamp(DataConfig(name="digits")) is None
    images = write_imagefolder(tmp_path / "images")
    cfg = DataConfig(name="imagefolder", root=str(images))
    stamp = _source_stamp(cfg)
    assert [Path(entry[0]).name for entry in stamp] == ["images", "cat", "dog", "frog"]
    (images / "dog" / "new.png").write_bytes((images / "dog" / "001.png").read_bytes())
    assert _source_stamp(cfg) != stamp  # an image added to a class folder
    missing = _source_stamp(DataConfig(name="table", root=str(tmp_path / "none.csv")))
    assert missing == ((str(tmp_path / "none.csv"), None, None),)

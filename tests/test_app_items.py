"""App tier, no server: what the snapshot carries for the page (item previews, the size note)."""

from __future__ import annotations

import base64
import io
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from app_helpers import synthetic_snapshot
from PIL import Image

from hill_core.config import Config
from hill_core.data import load_data
from hill_core.edits import EditsError, read_snapshot, validate_snapshot, write_snapshot
from hill_core.snapshot import item_preview, size_note, take_snapshot
from hill_core.train import init_state, train_segment


def decode(url: str) -> Image.Image:
    head, data = url.split(",", 1)
    assert head.startswith("data:image/") and head.endswith(";base64")
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_digit_is_a_grey_png_of_its_own_pixels():
    rng = np.random.default_rng(0)
    digit = torch.tensor(rng.integers(0, 17, (1, 8, 8)) / 16.0, dtype=torch.float32)
    url = item_preview(digit)
    assert url.startswith("data:image/png;base64,") and len(url) < 400
    image = decode(url)
    assert image.size == (8, 8) and image.mode == "L"
    expected = np.round(digit[0].numpy() * 255).astype(np.uint8)
    assert np.abs(np.asarray(image).astype(int) - expected).max() <= 1


def test_cifar_image_is_a_small_colour_thumbnail():
    rng = np.random.default_rng(1)
    image = torch.from_numpy(rng.integers(0, 256, (3, 32, 32), dtype=np.uint8))  # raw uint8
    url = item_preview(image)
    thumb = decode(url)
    assert thumb.size == (32, 32) and thumb.mode == "RGB"
    assert url.startswith(("data:image/webp;", "data:image/png;"))


def test_large_imagefolder_image_is_shrunk_to_32_px():
    image = torch.rand(3, 96, 64)  # floats in [0, 1], not square
    thumb = decode(item_preview(image))
    assert max(thumb.size) == 32 and thumb.size == (21, 32)


def test_signal_window_is_a_sparkline():
    t = np.linspace(0, 8 * np.pi, 200)
    window = torch.tensor(np.stack([np.sin(t * (1 + c / 9)) for c in range(27)]))  # (27, 200)
    url = item_preview(window)
    assert url.startswith("data:image/png;base64,") and len(url) < 3000
    image = np.asarray(decode(url).convert("RGB"))
    assert image.shape == (36, 96, 3)
    inked = (image != 255).any(axis=2)
    assert inked.any(axis=0).sum() > 80  # the lines run across the whole width


def test_table_row_is_text_truncated_after_eight_features():
    assert item_preview(torch.tensor([0.5, -1.25, 3.0])) == "features 0.5 · -1.25 · 3"
    long = item_preview(torch.arange(20, dtype=torch.float32))
    assert long.startswith("features 0 · 1 · 2") and long.endswith("… (+12 more)")
    assert item_preview(torch.zeros(2, 2, 2, 2)) is None  # no preview for other shapes


def test_snapshot_keeps_its_previews_through_parquet(tmp_path):
    snapshot = synthetic_snapshot(50)
    snapshot["item"] = [f"features {i}" if i % 7 else None for i in range(50)]
    path = write_snapshot(tmp_path / "s.parquet", snapshot, 3, "r1")
    back, _ = read_snapshot(path)
    assert back["item"].iloc[1] == "features 1" and pd.isna(back["item"].iloc[0])
    without, _ = read_snapshot(
        write_snapshot(tmp_path / "t.parquet", synthetic_snapshot(5), 3, "r")
    )
    assert "item" not in without.columns  # older snapshots: no previews, no column
    snapshot["item"] = [1.5] * 50
    with pytest.raises(EditsError, match="column item must hold text"):
        validate_snapshot(snapshot)


def test_size_note_only_when_asking_for_more_than_there_is():
    assert size_note(500, 1257) == size_note(1257, 1257) == ""
    assert size_note(5000, 1257) == (
        "hill.snapshot_size=5000 is larger than the training set (1257 items): "
        "the snapshot shows all 1257"
    )


@pytest.mark.slow
def test_take_snapshot_beyond_the_training_set_says_so_and_carries_digits(caplog):
    cfg = Config().replace(**{"train.epochs": 2, "hill.gate_epochs": [1]})
    data = load_data(cfg.data, cfg.base.seed)
    state, _ = train_segment(init_state(cfg, data), 1, 1, None)
    train_size = len(data.train_eval)
    with caplog.at_level(logging.WARNING, logger="hill_core.snapshot"):
        snapshot = take_snapshot(state, train_size + 100)
    assert len(snapshot) == train_size
    assert snapshot.attrs["note"] == size_note(train_size + 100, train_size)
    assert snapshot.attrs["note"] in caplog.text
    first = data.train_eval.ids.tolist().index(int(snapshot["sample_id"].iloc[0]))
    pixels = np.asarray(decode(snapshot["item"].iloc[0]))
    raw = data.train_eval.get_x(first)[0].numpy()
    assert np.abs(pixels.astype(int) - np.round(raw * 255)).max() <= 1
    assert take_snapshot(state, 200).attrs.get("note") is None

"""Each fast data path against its readable reference: batches, augmentation, evaluation,
device copies and the compiled model."""

import shutil

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from hill_core.config import Config
from hill_core.data import load_data
from hill_core.data.augment import CropFlip, crop_flip, crop_flip_reference
from hill_core.data.base import tensor_dataset
from hill_core.evaluate import latents_of, latents_of_reference
from hill_core.models import build_model
from hill_core.train import _forward_fn, epoch_batches, epoch_loader, init_state, train_segment


def digits():
    cfg = Config()
    return cfg, load_data(cfg.data, cfg.base.seed)


def test_epoch_batches_equal_the_data_loader_batch_for_batch():
    cfg, data = digits()
    for epoch in (1, 7):
        fast = list(epoch_batches(data.train, 64, cfg.base.seed, epoch))
        slow = list(epoch_loader(data.train, 64, cfg.base.seed, epoch))
        assert len(fast) == len(slow) == -(-len(data.train) // 64)
        for (x, y, ids), (rx, ry, rids) in zip(fast, slow, strict=True):
            assert torch.equal(x, rx) and torch.equal(y, ry) and torch.equal(ids, rids)


def test_batch_augmentation_equals_item_by_item_crop_and_flip():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (33, 3, 32, 32), dtype=torch.uint8, generator=g)
    dx, dy, flip = CropFlip(pad=4).draw(len(images), g)
    assert flip.any() and not flip.all() and dx.min() >= 0 and dx.max() <= 8
    fast = crop_flip(images, dx, dy, flip, pad=4)
    assert fast.dtype == torch.uint8 and torch.equal(
        fast, crop_flip_reference(images, dx, dy, flip, 4)
    )
    floats = images.float() / 255
    assert torch.equal(
        crop_flip(floats, dx, dy, flip, 4), crop_flip_reference(floats, dx, dy, flip, 4)
    )


def test_crop_flip_is_torchvisions_padded_crop_then_flip():
    image = torch.arange(3 * 8 * 8, dtype=torch.uint8).reshape(1, 3, 8, 8)
    dx, dy = torch.tensor([3]), torch.tensor([1])
    for flip in (False, True):
        expected = v2.functional.crop(v2.functional.pad(image[0], [2]), 1, 3, 8, 8)
        expected = v2.functional.horizontal_flip(expected) if flip else expected
        got = crop_flip(image, dx, dy, torch.tensor([flip]), pad=2)[0]
        assert torch.equal(got, expected)


def test_augmented_batches_follow_the_epoch_generator_only():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8, generator=g)
    ds = tensor_dataset(x, np.arange(50) % 5, np.arange(50), augment=CropFlip(4))
    first = [b[0] for b in epoch_batches(ds, 16, seed=3, epoch=2)]
    torch.manual_seed(123)  # the global RNG plays no part
    again = [b[0] for b in epoch_batches(ds, 16, seed=3, epoch=2)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    other = [b[0] for b in epoch_batches(ds, 16, seed=3, epoch=3)]
    assert not torch.equal(first[0], other[0])


def test_latents_of_equals_the_data_loader_path():
    cfg, data = digits()
    model = build_model(cfg.model, data.name, data.input_shape, data.num_classes)
    z, logits = latents_of(model, data.val, torch.device("cpu"))
    rz, rlogits = latents_of_reference(model, data.val, torch.device("cpu"))
    assert z.shape == (len(data.val), model.latent_dim)
    assert torch.equal(z, rz) and torch.equal(logits, rlogits)


def test_a_dataset_moved_to_a_device_gathers_the_same_batches():
    # The CUDA path (data kept on the GPU) on the CPU: the copy and the gather are the same code.
    x = torch.arange(40 * 2, dtype=torch.float32).reshape(40, 2)
    full = tensor_dataset(x, np.arange(40) % 4, 100 + np.arange(40), transform=lambda t: t * 2)
    part = full.subset(np.arange(5, 35), full.transform).subset(np.arange(0, 30, 3), full.transform)
    moved = part.to(torch.device("cpu"))
    assert moved.tensor is not None and moved.tensor is part.to(torch.device("cpu")).tensor
    rows = torch.tensor([0, 9, 4])
    for a, b in zip(part.batch(rows), moved.batch(rows), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(moved.batch(rows)[0], torch.stack([part[i][0] for i in rows.tolist()]))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile needs a C++ compiler")
def test_train_compile_trains_and_computes_what_eager_does():
    # Dropout draws from inductor's own RNG when compiled, so the weights are compared through
    # the outputs of the same weights, and training through its scores.
    cfg = Config().replace(**{"train.epochs": 1, "hill.gate_epochs": [], "train.compile": True})
    _, data = digits()
    state, history = train_segment(init_state(cfg, data), 1, 1, None)
    eager, eager_history = train_segment(
        init_state(cfg.replace(**{"train.compile": False}), data), 1, 1, None
    )
    assert cfg.hash() != eager.config.hash()
    assert abs(history[0]["val_acc"] - eager_history[0]["val_acc"]) < 0.1
    x = data.val.batch(torch.arange(64))[0]
    state.model.eval()
    with torch.no_grad():
        for got, want in zip(_forward_fn(state)(x), state.model.latent_and_logits(x), strict=True):
            assert torch.allclose(got, want, atol=1e-5)
    assert _forward_fn(state) is _forward_fn(state)  # compiled once

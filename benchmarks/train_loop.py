"""hill's segment loop against a minimal hand-written PyTorch loop: same model, data and batches.

Both train whole epochs with Adam and plain CE and score the validation split after each, as any
training loop does; hill's epoch also keeps its per-term sums and metrics. Repetitions are
interleaved (hand, hill, hill, hand, ...) so drift of the machine hits both alike. The figure is
hill's throughput / the hand loop's, the median of the per-pair ratios. Target: >= 0.95.

- digits: the default run (the bundled digits, 1,257 training items, digits_cnn).
- cifar10: full-size CIFAR-10 written in the real pickle format (50,000 synthetic images) and
  loaded by hill's loader, the CPU model (cifar_small_cnn) with crop-and-flip augmentation.
  An epoch of 50,000 images takes minutes on a small CPU, so each repetition trains on
  ``--cifar-items`` of the 42,500 training images (gathered from the whole uint8 tensor) and
  scores 1,000 validation images.

    python benchmarks/train_loop.py [--only digits|cifar10] [--reps 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the data writers

from report import Figure, add_json_argument, emit  # noqa: E402

from hill_core.config import Config  # noqa: E402
from hill_core.data import load_data  # noqa: E402
from hill_core.train import init_state, train_segment  # noqa: E402


def hand_epoch(model, optimizer, x, y, val_x, val_y, batch: int, augment: bool, g) -> float:
    """One epoch the way a careful PyTorch user writes it; returns validation accuracy.

    x: (N, ...) inputs already normalised, or uint8 images (then augmented and normalised here).
    """
    model.train()
    for rows in torch.randperm(len(x), generator=g).split(batch):
        xb = prepare(x[rows], augment, g)
        loss = F.cross_entropy(model(xb), y[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        correct = sum(
            (model(prepare(val_x[r], False, g)).argmax(1) == val_y[r]).sum()
            for r in torch.arange(len(val_x)).split(512)
        )
    return float(correct) / len(val_x)


MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def prepare(xb: torch.Tensor, augment: bool, g) -> torch.Tensor:
    """uint8 images: random 4-pixel-padded crop and flip (per item), then normalise; images
    in channels_last, as PyTorch's performance guide advises."""
    if xb.dim() == 4:
        xb = xb.contiguous(memory_format=torch.channels_last)
    if xb.dtype != torch.uint8:
        return xb
    if augment:
        b, _, h, w = xb.shape
        shift = torch.randint(0, 9, (2, b), generator=g)
        padded = F.pad(xb, (4, 4, 4, 4))
        rows = shift[1][:, None] + torch.arange(h)
        cols = shift[0][:, None] + torch.arange(w)
        cols = torch.where((torch.rand(b, generator=g) < 0.5)[:, None], cols.flip(1), cols)
        xb = padded[torch.arange(b)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        xb = xb.permute(0, 3, 1, 2)
    return (xb.float() / 255 - MEAN) / STD


def hill_setup(cfg: Config, train_items: int | None, val_items: int | None):
    """hill's state after its first epoch (the projection is fitted there), with the splits cut
    to the first ``train_items`` / ``val_items`` items (None: all)."""
    data = load_data(cfg.data, cfg.base.seed)
    if train_items is not None:  # a new bundle: the loaded one is shared and read-only
        t, rows = data.train, np.arange(train_items)
        data = dataclasses.replace(
            data,
            train=t.subset(rows, t.transform, t.augment),
            train_eval=data.train_eval.subset(rows, t.transform),
            val=data.val.subset(np.arange(val_items), data.val.transform),
        )
    state = init_state(cfg, data)
    train_segment(state, 1, 1, None)  # warm-up, and the projection fit
    return state


def hand_setup(state):
    """The hand loop's own copy of the model and optimiser, and its tensors of the same items."""
    data = state.data
    model = copy.deepcopy(state.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=state.config.train.lr)

    def tensors(ds):
        x = ds.raw_batch(torch.arange(len(ds)))
        if x.dtype != torch.uint8 and ds.transform is not None:
            x = ds.transform(x)
        return x, torch.as_tensor(ds.labels)

    return model, optimizer, tensors(data.train), tensors(data.val)


def measure(name: str, cfg: Config, reps: int, items: tuple[int | None, int | None]) -> Figure:
    state = hill_setup(cfg, *items)
    model, optimizer, (x, y), (vx, vy) = hand_setup(state)
    g = torch.Generator().manual_seed(0)
    batch, augment = cfg.train.batch_size, cfg.data.augment and cfg.data.name == "cifar10"
    hand_epoch(model, optimizer, x, y, vx, vy, batch, augment, g)  # warm-up
    ratios, hand_s, hill_s = [], [], []
    for rep in range(reps):
        pair = {}
        for side in ("hand", "hill") if rep % 2 == 0 else ("hill", "hand"):
            start = time.perf_counter()
            if side == "hand":
                hand_epoch(model, optimizer, x, y, vx, vy, batch, augment, g)
            else:
                train_segment(state, state.epoch + 1, state.epoch + 1, None)
            pair[side] = time.perf_counter() - start
        ratios.append(pair["hand"] / pair["hill"])  # throughput ratio = inverse time ratio
        hand_s.append(pair["hand"])
        hill_s.append(pair["hill"])
    n = len(state.data.train)
    detail = (
        f"{reps} interleaved epochs of {n} items; median epoch hill "
        f"{statistics.median(hill_s):.2f} s, hand {statistics.median(hand_s):.2f} s; "
        f"ratios {min(ratios):.3f}..{max(ratios):.3f}"
    )
    return Figure(
        f"segment loop / hand loop throughput, {name}",
        statistics.median(ratios),
        "ratio",
        ">=",
        0.95,
        detail,
    )


def cifar_config(root: Path) -> Config:
    from data_writers import write_cifar

    write_cifar(root, per_batch=10_000)
    return Config().replace(**{"data.name": "cifar10", "data.root": str(root)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["digits", "cifar10"], default=None)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--cifar-items", type=int, default=2560)
    add_json_argument(parser)
    args = parser.parse_args()
    figures = []
    if args.only in (None, "digits"):
        figures.append(measure("digits", Config(), args.reps * 3, (None, None)))
    if args.only in (None, "cifar10"):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = cifar_config(Path(tmp))
            figures.append(measure("cifar10 full-size", cfg, args.reps, (args.cifar_items, 1000)))
    emit(figures, args.json)


if __name__ == "__main__":
    main()

"""Cost of the HILL loss: time of a training step with it / time of one with CE only.

Synthetic tensors, CPU, the default digits model and the CIFAR-10 CPU model. Prints one line
per model: ``<model>: ratio <value>``. Target: <= 1.10.

    python benchmarks/loss_overhead.py [--steps 200] [--batch 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from hill_core.config import Config
from hill_core.edits import make_edits
from hill_core.losses import LossWeights, hill_loss
from hill_core.models import build_model
from hill_core.projection import fit_projection
from hill_core.teacher import teacher_from_edits

MODELS = {"digits_cnn": ("digits", (1, 8, 8)), "cifar_small_cnn": ("cifar10", (3, 32, 32))}
CLASSES = 10


def synthetic_teacher(latent_dim: int, n: int = 1000):
    """A frozen projection and a compacting teacher over n synthetic items (10% moved)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, n)
    projection = fit_projection(rng.normal(size=(n, latent_dim)) + labels[:, None], labels)
    xy = rng.normal(size=(n, 2)) + labels[:, None]
    snap = pd.DataFrame({"sample_id": np.arange(n), "label": labels, "x": xy[:, 0], "y": xy[:, 1]})
    moved = rng.random(n) < 0.1
    edits = make_edits(snap, xy[:, 0] * 0.5, xy[:, 1] * 0.5, moved, "bench", 1)
    return projection, teacher_from_edits(edits, CLASSES)


def step_time(model, optimizer, batches, projection, teacher, steps: int) -> float:
    """Median seconds per optimiser step (forward, loss, backward, step)."""
    weights, times = LossWeights(), []
    model.train()
    for i in range(steps):
        x, y, ids = batches[i % len(batches)]
        start = time.perf_counter()
        z = model.latent(x)
        p = projection(z) if teacher is not None else None
        loss, _ = hill_loss(model.head(z), y, p, ids, teacher, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(preset: str, steps: int, batch: int) -> float:
    data_name, shape = MODELS[preset]
    torch.manual_seed(0)
    cfg = Config().replace(**{"model.name": preset}).model
    model = build_model(cfg, data_name, shape, CLASSES)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    projection, teacher = synthetic_teacher(model.latent_dim)
    batches = [
        (
            torch.randn(batch, *shape),
            torch.randint(0, CLASSES, (batch,)),
            torch.randint(0, 1000, (batch,)),
        )
        for _ in range(16)
    ]
    step_time(model, optimizer, batches, projection, teacher, 20)  # warm-up
    # Interleave rounds so drift of the machine affects both sides alike.
    ce, hill = [], []
    for _ in range(5):
        ce.append(step_time(model, optimizer, batches, projection, None, steps // 5))
        hill.append(step_time(model, optimizer, batches, projection, teacher, steps // 5))
    return float(np.median(hill) / np.median(ce))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for preset in MODELS:
        print(f"{preset}: ratio {measure(preset, args.steps, args.batch):.3f}")


if __name__ == "__main__":
    main()

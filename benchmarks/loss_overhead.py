"""Cost of the HILL loss: time of a training step with it / time of one with CE only.

Synthetic tensors, CPU, the default digits model and the CIFAR-10 CPU model. Each round times a
block of CE steps and a block of HILL steps back to back (alternating which goes first); the
figure is the median of the per-round ratios, so slow drift of a shared machine cancels. With
``--runs 3`` the whole measurement is repeated in three fresh processes and the spread of the
three medians is reported too. Targets: ratio <= 1.10, stable to +-0.03 across three runs.

    python benchmarks/loss_overhead.py [--rounds 40] [--steps 10] [--batch 64] [--runs 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from report import Figure, add_json_argument, emit, read_figures

from hill_core.config import Config
from hill_core.edits import make_edits
from hill_core.losses import LossWeights, hill_loss
from hill_core.models import build_model, memory_format, model_input
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


def run_steps(model, optimizer, batches, projection, teacher, steps: int) -> float:
    """Seconds for ``steps`` optimiser steps (forward, loss, backward, step)."""
    weights = LossWeights()
    model.train()
    start = time.perf_counter()
    for i in range(steps):
        x, y, ids = batches[i % len(batches)]
        z = model.latent(x)
        p = projection(z) if teacher is not None else None
        loss, _ = hill_loss(model.head(z), y, p, ids, teacher, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def measure(preset: str, rounds: int, steps: int, batch: int) -> tuple[float, float]:
    """Median per-round HILL/CE time ratio of one model, and the median CE step (ms)."""
    data_name, shape = MODELS[preset]
    torch.manual_seed(0)
    cfg = Config().replace(**{"model.name": preset}).model
    model = build_model(cfg, data_name, shape, CLASSES).to(memory_format=memory_format(shape))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    projection, teacher = synthetic_teacher(model.latent_dim)
    batches = [
        (
            model_input(torch.randn(batch, *shape), torch.device("cpu")),  # as training has it
            torch.randint(0, CLASSES, (batch,)),
            torch.randint(0, 1000, (batch,)),
        )
        for _ in range(16)
    ]
    for guide in (None, teacher):  # warm-up both paths
        run_steps(model, optimizer, batches, projection, guide, 3 * steps)
    ratios, ce_times = [], []
    for r in range(rounds):
        order = (None, teacher) if r % 2 == 0 else (teacher, None)
        times = {id(g): run_steps(model, optimizer, batches, projection, g, steps) for g in order}
        ratios.append(times[id(teacher)] / times[id(None)])
        ce_times.append(times[id(None)] / steps)
    return float(np.median(ratios)), 1000 * float(np.median(ce_times))


NAMES = {"digits_cnn": "digits model", "cifar_small_cnn": "CIFAR-10 CPU model"}


def one_run(args) -> list[Figure]:
    figures = []
    for preset in MODELS:
        ratio, ce_ms = measure(preset, args.rounds, args.steps, args.batch)
        detail = f"median of {args.rounds} rounds of {args.steps} steps; CE step {ce_ms:.2f} ms"
        figures.append(Figure(f"HILL step / CE step, {NAMES[preset]}", ratio, "ratio", "<=",
                              1.10, detail))  # fmt: skip
    return figures


def repeated(args) -> list[Figure]:
    """The measurement in ``args.runs`` fresh processes; the median run and the spread."""
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run.json"
            command = [sys.executable, __file__, "--runs", "1", "--json", str(out)]
            command += ["--rounds", str(args.rounds), "--steps", str(args.steps)]
            subprocess.run(command + ["--batch", str(args.batch)], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            runs.append(read_figures(out))
    figures = []
    for k, first in enumerate(runs[0]):
        values = [run[k].value for run in runs]
        half_range = (max(values) - min(values)) / 2
        each = ", ".join(f"{v:.3f}" for v in values)
        median = float(np.median(values))
        figures.append(Figure(first.name, median, "ratio", "<=", 1.10,
                              f"median of {args.runs} runs: {each}"))  # fmt: skip
        figures.append(Figure(f"{first.name}, spread across {args.runs} runs", half_range,
                              "ratio", "<=", 0.03, "half the range of the runs"))  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--runs", type=int, default=1)
    add_json_argument(parser)
    args = parser.parse_args()
    emit(one_run(args) if args.runs == 1 else repeated(args), args.json)


if __name__ == "__main__":
    main()

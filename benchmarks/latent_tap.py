"""Cost of reading z with a forward hook: a training step of a user's network (``LatentTap``,
the hook registered and removed around each forward) / the same step of the same network as a
preset (``HillModel``, z handed over directly).

Both wrap one network with the same weights (the preset's backbone and head, called by a plain
module's ``forward``), CPU, synthetic batches. Each round times a block of steps of each, back
to back (alternating which goes first); the figure is the median of the per-round ratios.
Target: ratio <= 1.05 (the hook costs microseconds per step).

    python benchmarks/latent_tap.py [--rounds 30] [--steps 10] [--batch 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from report import Figure, add_json_argument, emit
from torch import nn

from hill_core.config import Config
from hill_core.models import build_model, memory_format, model_input
from hill_core.tapped import LatentTap

MODELS = {"digits_cnn": ("digits", (1, 8, 8)), "cifar_small_cnn": ("cifar10", (3, 32, 32))}
NAMES = {"digits_cnn": "digits model", "cifar_small_cnn": "CIFAR-10 CPU model"}
CLASSES = 10


class Plain(nn.Module):
    """The preset's two parts as a user writes a network: ``forward`` chains them."""

    def __init__(self, backbone: nn.Module, classifier: nn.Module):
        super().__init__()
        self.backbone, self.classifier = backbone, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))


def tapped_twin(preset) -> LatentTap:
    """The preset's own modules (shared, so the weights are the same) read through a hook."""
    return LatentTap(Plain(preset.backbone, preset.classifier), "backbone", preset.latent_dim)


def run_steps(model, optimizer, batches, steps: int) -> float:
    """Seconds for ``steps`` optimiser steps (forward for z and logits, CE, backward, step)."""
    model.train()
    start = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        z, logits = model.latent_and_logits(x)
        loss = nn.functional.cross_entropy(logits, y) + 0.0 * z.sum()  # z in the graph too
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def measure(preset_name: str, rounds: int, steps: int, batch: int) -> tuple[float, float]:
    """Median per-round tapped/direct step-time ratio, and the median direct step (ms)."""
    data_name, shape = MODELS[preset_name]
    torch.manual_seed(0)
    cfg = Config().replace(**{"model.name": preset_name}).model
    preset = build_model(cfg, data_name, shape, CLASSES).to(memory_format=memory_format(shape))
    tapped = tapped_twin(preset)
    optimizer = torch.optim.Adam(preset.parameters(), lr=1e-4)  # one optimiser: shared weights
    batches = [
        (model_input(torch.randn(batch, *shape), torch.device("cpu")),
         torch.randint(0, CLASSES, (batch,)))
        for _ in range(16)
    ]  # fmt: skip
    for model in (preset, tapped):  # warm-up both paths
        run_steps(model, optimizer, batches, 3 * steps)
    ratios, direct = [], []
    for r in range(rounds):
        order = (preset, tapped) if r % 2 == 0 else (tapped, preset)
        times = {id(m): run_steps(m, optimizer, batches, steps) for m in order}
        ratios.append(times[id(tapped)] / times[id(preset)])
        direct.append(times[id(preset)] / steps)
    return float(np.median(ratios)), 1000 * float(np.median(direct))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    add_json_argument(parser)
    args = parser.parse_args()
    figures = []
    for name in MODELS:
        ratio, direct_ms = measure(name, args.rounds, args.steps, args.batch)
        detail = f"median of {args.rounds} rounds of {args.steps} steps; direct {direct_ms:.2f} ms"
        figures.append(Figure(f"hooked step / direct step, {NAMES[name]}", ratio, "ratio", "<=",
                              1.05, detail))  # fmt: skip
    emit(figures, args.json)


if __name__ == "__main__":
    main()

"""The CIFAR-10 paper preset on CUDA: end to end, and the training loop against a hand loop.

``configs/cifar10_paper.yaml`` (50 epochs, gates at 25, 30, 35 and 40 answered by the
compactness autopilot, the lockstep baseline) on full-size synthetic CIFAR-10 in the real pickle
format. Reports the run's wall time (in one process, ``hill_core.loop.run_guided``) with the
gates' own time taken out (the autopilot's edit and its recording), and hill's training
throughput against a minimal hand loop on the same model and batches
(``train_loop.py``'s comparison, on the GPU, one epoch each, interleaved).

Without a CUDA device it measures nothing and says so (every figure is then reported as not
measured); the CUDA-only path it exercises (data kept on the device) is tied to its CPU
reference by tests/test_core_fast_paths.py.

    python benchmarks/cuda_preset.py [--epochs 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from report import Figure, add_json_argument, emit  # noqa: E402

PRESET = Path(__file__).resolve().parents[1] / "configs" / "cifar10_paper.yaml"


NAMES = (
    "CIFAR-10 paper preset on CUDA, end to end excluding gates",
    "CIFAR-10 paper preset on CUDA, segment loop / hand loop throughput",
)


def not_measured(reason: str) -> list[Figure]:
    return [Figure(name, float("nan"), "", "", None, reason) for name in NAMES]


def preset_run(root: Path, epochs: int) -> tuple[float, float]:
    """Seconds of the preset's guided run (and its lockstep baseline), and of its gates."""
    from hill_core.config import load_config
    from hill_core.data import load_data
    from hill_core.loop import autopilot_answers, run_guided

    cfg = load_config(PRESET, [f"data.root={root}", f"train.epochs={epochs}", "base.device=cuda"])
    data = load_data(cfg.data, cfg.base.seed)
    answer, at_gates = autopilot_answers("compactness", root.parent / "edits"), []

    def timed(*args):
        start = time.perf_counter()
        decided = answer(*args)
        at_gates.append(time.perf_counter() - start)
        return decided

    start = time.perf_counter()
    run_guided(cfg, data, timed)
    torch.cuda.synchronize()
    return time.perf_counter() - start, sum(at_gates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    add_json_argument(parser)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        emit(not_measured("no CUDA device on this machine"), args.json)
        return
    from data_writers import write_cifar
    from train_loop import measure

    from hill_core.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cifar"
        write_cifar(root, per_batch=10_000)
        total, gates = preset_run(root, args.epochs)
        cfg = load_config(PRESET, [f"data.root={root}", "base.device=cuda"])
        loop = measure("CIFAR-10 paper preset on CUDA", cfg, 3, (None, None))
    device = torch.cuda.get_device_name(0)
    emit(
        [
            Figure(
                NAMES[0],
                (total - gates) / 60,
                "min",
                "",
                None,
                f"{device}; {args.epochs} epochs, 4 autopilot gates "
                f"({gates:.0f} s at gates, taken out)",
            ),  # fmt: skip
            dataclasses.replace(loop, name=NAMES[1], detail=f"{device}; {loop.detail}"),
        ],
        args.json,
    )


if __name__ == "__main__":
    main()

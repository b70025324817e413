"""Cost of the pipeline: a guided run through the Prefect flow / the same run in one process.

The flow run has everything a real run has except a person: autopilot gates, every task with its
checkpoint hand-over, the lockstep baseline, MLflow (a local store, metrics, artifacts, the
model) and DVC (``dvc add`` per gate). The bare run is ``hill_core.loop.run_guided`` with the
same simulated user and schedule: the same epochs of the same training. Both run in a throw-away
git + DVC project, on full-size data written in the real on-disk formats (synthetic values):

- cifar10: 50,000 + 10,000 images as the five pickled training batches and the test batch;
- pamap2: nine subjects of real-format ``.dat`` text (about 1.3 GB, see tests/data_writers.py).

The data set is loaded once before either side is timed (a process loads it once; its load time
is ``data_load.py``'s figure), and Prefect's temporary server and MLflow's store are started
before too (their start is ``launch.py``'s figure). The two sides run once each, bare first:
at minutes per run, interleaved repetitions would not fit ``make bench``'s 15 minutes. Target:
flow / bare <= 1.05 on a run of at least 5 minutes (the run's length is reported beside it).
An epoch of either data set takes about 20 s on a 2-core CPU, so the default (2 epochs, a gate
after the first, the baseline's 1 epoch: about a minute a side) fits ``make bench``;
``--epochs 12`` gives the 5-minute run.

    python benchmarks/flow_overhead.py [--only cifar10|pamap2] [--epochs 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the data writers

from report import Figure, add_json_argument, emit  # noqa: E402

STRATEGY = "compactness"


def project(root: Path) -> None:
    """A git + DVC repo as the working directory, as a user's checkout would be."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    os.chdir(root)


def write_data(name: str, folder: Path) -> None:
    """Full-size files of ``name`` in ``folder``, unless a finished copy is there."""
    from data_writers import write_cifar, write_pamap2

    done = folder / ".complete"
    if done.is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_cifar(folder, per_batch=10_000) if name == "cifar10" else write_pamap2(folder, full=True)
    done.touch()


def config(name: str, root: Path, epochs: int):
    from hill_core.config import Config

    # Autopilot gates at a third and two thirds (one gate for a short run); the lockstep
    # baseline forks at the first.
    gates = sorted({max(1, epochs // 3), max(1, 2 * epochs // 3)} - {epochs})
    return Config().replace(
        **{
            "data.name": name,
            "data.root": str(root),
            "train.epochs": epochs,
            "hill.gate_epochs": gates,
            "hill.freeze_epoch": 1,
        }  # fmt: skip
    )


def start_services(cfg) -> None:
    """Start Prefect's temporary server and create the MLflow store (not timed)."""
    from prefect import flow

    from pipelines.tracking import client, experiment_id

    @flow
    def nothing() -> None:
        """Starts the ephemeral API server."""

    nothing()
    experiment_id(client(), cfg)


def bare(cfg) -> tuple[float, float]:
    """Seconds and test accuracy of the guided run in one process, no services."""
    from hill_core.data import load_data
    from hill_core.loop import autopilot_answers, run_guided

    answer = autopilot_answers(STRATEGY, Path("bare-edits"))  # records gates as the flow does
    start = time.perf_counter()
    result = run_guided(cfg, load_data(cfg.data, cfg.base.seed), answer)
    return time.perf_counter() - start, result.test.accuracy


def through_flow(cfg, name: str) -> tuple[float, float]:
    """Seconds and test accuracy of the guided run through the flow (services already up)."""
    from pipelines.flow import RunSpec, guided_training

    start = time.perf_counter()
    summary = guided_training(cfg.to_dict(), RunSpec(name=name, autopilot=STRATEGY))
    return time.perf_counter() - start, summary["test_accuracy"]


def measure(name: str, data_root: Path, epochs: int) -> list[Figure]:
    from hill_core.data import load_data

    write_data(name, data_root)
    cfg = config(name, data_root, epochs)
    load_data(cfg.data, cfg.base.seed)  # once per process, before either side
    start_services(cfg)
    bare_s, bare_acc = bare(cfg)
    flow_s, flow_acc = through_flow(cfg, f"bench-{name}")
    detail = (
        f"{epochs} epochs, gates {cfg.hill.gate_epochs}: flow {flow_s:.0f} s, bare "
        f"{bare_s:.0f} s; test acc flow {flow_acc:.3f}, bare {bare_acc:.3f}; one run each"
    )
    return [
        Figure(f"flow / bare loop, {name} full-size", flow_s / bare_s, "ratio", "<=", 1.05, detail),
        Figure(
            f"flow run length, {name} full-size",
            flow_s / 60,
            "min",
            ">=",
            5.0,
            "the ratio's target is for a run of at least 5 minutes",
        ),  # fmt: skip
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["cifar10", "pamap2"], default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="write (or reuse) the data here")
    add_json_argument(parser)
    args = parser.parse_args()
    for key, value in {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }.items():
        os.environ.setdefault(key, value)
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):  # a throw-away local store and server
        os.environ.pop(key, None)
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        data = (args.keep or Path(tmp) / "data").resolve()
        os.environ["PREFECT_HOME"] = str(Path(tmp) / ".prefect")
        project(Path(tmp) / "project")
        for name in [args.only] if args.only else ["cifar10", "pamap2"]:
            figures += measure(name, data / name, args.epochs)
    emit(figures, args.json)


if __name__ == "__main__":
    main()

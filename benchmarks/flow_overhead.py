"""Cost of the pipeline: a guided run through the Prefect flow / the same training in one process.

The flow run has everything a real run has except a person: autopilot gates, every task with
its checkpoint hand-over, MLflow (sqlite, batched metrics, artifacts, the model) and DVC
(``dvc add`` per gate). The bare run is ``hill_core.loop.run_guided`` with the same simulated
user. Both run in a throw-away git + DVC project. One-time start-up (Prefect's temporary server,
MLflow's schema) is timed apart and reported with and without. Target: <= 1.15 on a long run.

The pipeline's cost is about fixed per run, 2 s here: Prefect's task-state round trips and its
flow-run heartbeat thread (joined at the end, up to 1 s), each task reloading data and checkpoint,
``dvc add`` per gate. So the ratio falls as runs get longer; the target is for ``longer``.

    python benchmarks/pipeline_overhead.py [--strategy compactness] [--only digits|long|longer]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = {  # name -> overrides on params.yaml
    "digits": [],  # the default run: 12 epochs of about 0.1 s each on a CPU
    "long": ["train.epochs=60", "hill.gate_epochs=[15, 30, 45]"],
    "longer": ["train.epochs=200", "hill.gate_epochs=[50, 100, 150]"],  # about 20 s of training
}


def project(root: Path) -> None:
    """A git + DVC repo as the working directory, as a user's checkout would be."""
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    os.chdir(root)


def start_services(cfg) -> float:
    """Start Prefect's temporary server and create the MLflow store; returns the seconds."""
    from prefect import flow

    from pipelines.tracking import client, experiment_id

    @flow
    def nothing() -> None:
        """Starts the ephemeral API server."""

    start = time.perf_counter()
    nothing()
    experiment_id(client(), cfg)
    return time.perf_counter() - start


def bare(cfg, strategy: str) -> tuple[float, float]:
    """Seconds and test accuracy of the same guided run in one process, no services."""
    from hill_core.data import load_data
    from hill_core.loop import autopilot_answers, run_guided

    answer = autopilot_answers(strategy, Path("bare-edits"))  # records gates as the flow does
    start = time.perf_counter()
    result = run_guided(cfg, load_data(cfg.data, cfg.base.seed), answer)
    return time.perf_counter() - start, result.test.accuracy


def through_flow(cfg, strategy: str, name: str) -> tuple[float, float]:
    """Seconds and test accuracy of the guided run through the flow (services already up)."""
    from pipelines.flow import RunSpec, guided_training

    start = time.perf_counter()
    summary = guided_training(cfg.to_dict(), RunSpec(name=name, autopilot=strategy))
    return time.perf_counter() - start, summary["test_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="compactness")
    parser.add_argument("--only", choices=sorted(RUNS))
    args = parser.parse_args()
    for key, value in {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }.items():
        os.environ.setdefault(key, value)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    params = Path(__file__).resolve().parents[1] / "params.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PREFECT_HOME"] = str(Path(tmp) / ".prefect")
        project(Path(tmp))
        from hill_core.config import load_config

        startup = None
        # Warm up torch first, so that neither side pays its first-use costs.
        bare(load_config(params, ["train.epochs=2", "hill.gate_epochs=[1]"]), args.strategy)
        for name, overrides in RUNS.items():
            if args.only and name != args.only:
                continue
            cfg = load_config(params, overrides)
            startup = start_services(cfg) if startup is None else startup  # once, as for a user
            bare_s, bare_acc = bare(cfg, args.strategy)
            flow_s, flow_acc = through_flow(cfg, args.strategy, f"bench-{name}")
            print(
                f"{name}: {cfg.train.epochs} epochs, gates {cfg.hill.gate_epochs}: "
                f"bare {bare_s:.1f} s, flow {flow_s:.1f} s, ratio {flow_s / bare_s:.3f} "
                f"({(flow_s + startup) / bare_s:.3f} with the one-time start-up of "
                f"{startup:.1f} s); test acc bare {bare_acc:.4f}, flow {flow_acc:.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()

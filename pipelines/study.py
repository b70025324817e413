"""`hill study`: every simulated strategy against its paired baseline, over several seeds.

One parent Prefect flow run (``hill-study``) and one parent MLflow run; each (seed, strategy) is
a ``guided-training`` flow run with its lockstep baseline, so pairing is exact (same seed, split
and schedule). Seeds run in parallel as tasks on a Dask task runner: a local cluster of
processes by default (each process has its own torch RNG), or an existing cluster's address.
Each finished pair is written to ``runs/<study>/pairs/`` at once, so a study that stopped
halfway resumes without re-running finished pairs.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from hill_core.config import Config, from_dict
from hill_core.errors import HillError
from hill_core.strategy_names import ALL_STRATEGIES as STRATEGIES
from hill_core.study import ROW_COLUMNS, format_summary, summarise
from pipelines.plots import study_png


def parse_seeds(text: str, first: int) -> list[int]:
    """``"5"`` -> first .. first+4; ``"7,1234,31337"`` -> those seeds (at least two, distinct).

    Raises:
        HillError: one line saying what is wrong.
    """
    parts = [p.strip() for p in str(text).split(",")]
    if not all(p.isdigit() for p in parts):
        raise HillError(f"--seeds {text!r}: expected a count (5) or a list of seeds (7,1234,31337)")
    seeds = [first + i for i in range(int(parts[0]))] if len(parts) == 1 else list(map(int, parts))
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise HillError(f"--seeds {text!r}: a study needs at least two distinct seeds")
    if max(seeds) >= 2**32:
        raise HillError(f"--seeds {text!r}: seeds must lie in [0, 2**32)")
    return seeds


def pair_file(folder: Path, seed: int, strategy: str) -> Path:
    return folder / "pairs" / f"seed{seed}-{strategy}.json"


@task(name="study-seed", cache_policy=NO_CACHE)
def run_seed(config: dict[str, Any], seed: int, strategies: list[str], folder: str,
             parent_run_id: str) -> list[dict[str, Any]]:  # fmt: skip
    """Every strategy's guided run (with its lockstep baseline) for one seed; skips done pairs."""
    from pipelines.flow import RunSpec, guided_training

    cfg, rows = from_dict(config).replace(**{"base.seed": seed}), []
    for strategy in strategies:
        path = pair_file(Path(folder), seed, strategy)
        if not path.is_file():
            name = f"{Path(folder).name}-s{seed}-{strategy}"
            spec = RunSpec(name=name, autopilot=strategy, parent_run_id=parent_run_id)
            summary = guided_training(cfg.to_dict(), spec)
            _write_json(path, pair_row(seed, strategy, summary))
        rows.append(json.loads(path.read_text()))
    return rows


def pair_row(seed: int, strategy: str, summary: dict[str, Any]) -> dict[str, Any]:
    """One row of ``study.csv`` from a guided run's summary (which holds its baseline's)."""
    base = summary["baseline"]
    row = {
        "seed": seed,
        "strategy": strategy,
        "test_acc": summary["test_accuracy"],
        "baseline_test_acc": base["test_accuracy"],
        "test_f1": summary["test_macro_f1"],
        "baseline_test_f1": base["test_macro_f1"],
        "reverted": summary.get("guard_reverts", 0),
    }
    assert tuple(row) == ROW_COLUMNS
    return {**row, "run": summary["run_name"], "mlflow_run_id": summary["mlflow_run_id"]}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)  # atomic: a study killed mid-write leaves no half pair behind


@flow(name="hill-study")
def study(config: dict[str, Any], strategies: list[str], seeds: list[int], name: str) -> str:
    """Run the study and write ``study.csv`` and ``study.png``; returns the printed table."""
    from pipelines.tracking import Tracker

    cfg = from_dict(config)
    folder = Path(cfg.base.run_dir) / name
    tags = {"hill.mode": "study", "hill.run_name": name}
    with Tracker.start(cfg, name, tags) as parent:
        futures = [
            run_seed.submit(config, seed, strategies, str(folder), parent.run_id) for seed in seeds
        ]
        rows = pd.DataFrame([row for f in futures for row in f.result()])
        text = write_outputs(rows, folder, cfg, name)
        for artifact in ("study.csv", "summary.csv", "study.png"):
            parent.client.log_artifact(parent.run_id, str(folder / artifact), "study")
    create_markdown_artifact(
        markdown=f"### hill study {name}\n\nΔ against the paired baselines, test split:\n\n"
        f"```\n{text}\n```\n\nRows: `{folder / 'study.csv'}`",
        key="hill-study",
        description=f"{name}: every strategy against its paired baseline",
    )
    return text


def write_outputs(rows: pd.DataFrame, folder: Path, cfg: Config, name: str) -> str:
    """``study.csv`` (one row per pair), ``study.png`` and the summary table as text."""
    control_first = ["noedit", *(s for s in STRATEGIES if s != "noedit")]
    order = {s: i for i, s in enumerate(control_first)}
    rows = rows.sort_values(
        ["strategy", "seed"], key=lambda c: c.map(order) if c.name == "strategy" else c
    )
    rows.to_csv(folder / "study.csv", index=False)
    summary = summarise(rows)
    summary.to_csv(folder / "summary.csv", index=False)
    seeds = ", ".join(map(str, sorted(set(rows["seed"]))))
    title = f"{name}: {cfg.data.name}, seeds {seeds}, guard {cfg.hill.guard}"
    study_png(summary, title, folder / "study.png")
    return format_summary(summary)


def run_study(cfg: Config, strategies: list[str], seeds: list[int], name: str,
              dask_address: str | None) -> str:  # fmt: skip
    """Run :func:`study` on a Dask task runner (local processes, or the cluster at an address)
    over the ``seeds`` given (each one a ``base.seed``)."""
    from prefect_dask import DaskTaskRunner

    if dask_address:
        runner = DaskTaskRunner(address=dask_address)
    else:  # one single-threaded worker process per core: seeds train side by side
        workers = max(1, min(len(seeds), os.cpu_count() or 1))
        runner = DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True}
        )
    with shared_prefect_api():
        return study.with_options(task_runner=runner)(cfg.to_dict(), strategies, seeds, name)


@contextlib.contextmanager
def shared_prefect_api() -> Iterator[None]:
    """One Prefect API for the study and its Dask workers, which inherit PREFECT_API_URL.

    Without a configured API, Prefect's ephemeral mode would start a separate temporary server
    in every worker process, and the seeds' flow runs would not show under the study's parent
    flow run; so one temporary server is started here for all of them.
    """
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    url = get_current_settings().api.url
    if url:
        with _environ("PREFECT_API_URL", url):
            yield
        return
    from prefect._internal.concurrency.services import QueueService
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    try:
        with _environ("PREFECT_API_URL", server.api_url):
            with temporary_settings({PREFECT_API_URL: server.api_url}):
                yield
            # Send what Prefect still queues (logs, events) while the server is up: drained at
            # interpreter exit instead, they would retry a stopped server for minutes.
            QueueService.drain_all(timeout=10, at_exit=False)
    finally:
        server.stop()


@contextlib.contextmanager
def _environ(key: str, value: str) -> Iterator[None]:
    before = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[key]
        else:
            os.environ[key] = before

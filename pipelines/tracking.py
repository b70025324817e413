"""Every MLflow call of hill lives here: one run per flow run, one experiment per data set.

The store is ``sqlite:///mlflow.db`` at the project root with artifacts in ``mlartifacts/``
beside it, unless ``MLFLOW_TRACKING_URI`` points elsewhere. Metrics go out batched (one
``log_batch`` per epoch): per-value calls cost seconds per thousand on the sqlite store.
Runs are addressed by id through an ``MlflowClient``, never through MLflow's global active
run, so the flow's tasks and the gate page's threads cannot end up logging to the wrong run.

A hill run keeps one MLflow run for its whole life: a run re-started from the top (a resumed
gate, a Prefect retry, ``hill resume``) finds its MLflow run by the ``hill.run_name`` tag and
goes on logging there. While it waits at a suspended gate the MLflow run is SCHEDULED; a run
whose process was killed is marked KILLED by the next hill process that looks (see
:func:`reap_dead_runs`), so nothing stays RUNNING forever.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hill_core.config import Config
from hill_core.edits import edits_summary
from pipelines.paths import config_yaml, git_commit
from pipelines.plots import gate_layout_png

# Tags every hill run carries; `hill compare` and the MLflow UI filter on them.
MODE, USER, PAIRED = "hill.mode", "hill.user", "hill.paired_run_id"
SKIPPED_METRICS = {"epoch"}  # the step already says which epoch a value belongs to


def tracking_uri(root: Path | str = ".") -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the project's own sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve()}/mlflow.db"


def client(root: Path | str = "."):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri(root))


def experiment_id(mlflow_client, cfg: Config, root: Path | str = ".") -> str:
    """The id of ``<prefix>-<data set>``, created on first use (artifacts beside a local store)."""
    from mlflow.exceptions import MlflowException

    name = f"{cfg.tracking.experiment_prefix}-{cfg.data.name}"
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if "MLFLOW_TRACKING_URI" not in os.environ:
        location = (Path(root).resolve() / "mlartifacts" / name).as_uri()
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it between our two calls
        return mlflow_client.get_experiment_by_name(name).experiment_id


@dataclass
class Tracker:
    """Logs one hill run to MLflow. Build it with :meth:`start`."""

    client: Any
    run_id: str
    # One writer thread: MLflow writes while training goes on, in the order of the calls.
    # (MLflow's own async logging costs a second at every run's end to shut its queue down.)
    writer: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "mlflow"))
    pending: list[Future] = field(default_factory=list)
    resumed: bool = False  # an existing MLflow run of this hill run, re-opened

    @classmethod
    @contextmanager
    def start(cls, cfg: Config, name: str, tags: dict[str, str]) -> Iterator[Tracker]:
        """Open the run, or re-open this hill run's; close it FINISHED, FAILED on error, or
        SCHEDULED while the flow is suspended at a gate."""
        from prefect.exceptions import Pause

        mlflow_client = client()
        experiment = experiment_id(mlflow_client, cfg)
        reap_dead_runs(mlflow_client, experiment)
        tracker = cls.reopen(mlflow_client, experiment, name)
        if tracker is None:
            all_tags = {**run_tags(cfg, tags), **alive_tags()}
            run = mlflow_client.create_run(experiment, run_name=name, tags=all_tags)
            tracker = cls(mlflow_client, run.info.run_id)
            tracker._log_config(cfg)
        try:
            yield tracker
        except Pause:
            tracker.end("SCHEDULED")  # waits at a gate with no process; resumes in this run
            raise
        except BaseException as err:
            tracker.end("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
            raise
        tracker.end("FINISHED")

    @classmethod
    def reopen(cls, mlflow_client, experiment: str, name: str) -> Tracker | None:
        """This hill run's MLflow run, set RUNNING again for this process; None if it has none."""
        runs = mlflow_client.search_runs(
            [experiment], f"tags.`hill.run_name` = '{name}'", max_results=1
        )
        if not runs:
            return None
        run_id = runs[0].info.run_id
        mlflow_client.update_run(run_id, status="RUNNING")
        for key, value in alive_tags().items():
            mlflow_client.set_tag(run_id, key, value)
        return cls(mlflow_client, run_id, resumed=True)

    def end(self, status: str) -> None:
        """Write what is still queued, then close the run (FAILED if a write failed)."""
        self.writer.shutdown(wait=True)
        failed = next((f.exception() for f in self.pending if f.exception()), None)
        self.client.set_terminated(self.run_id, "FAILED" if failed else status)
        if failed is not None and status == "FINISHED":
            raise failed

    def _later(self, fn, *args, **kwargs) -> None:
        self.pending.append(self.writer.submit(fn, *args, **kwargs))

    def _log_config(self, cfg: Config) -> None:
        from mlflow.entities import Param

        params = [Param(k, str(v)) for k, v in cfg.flat().items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        self.client.log_text(self.run_id, config_yaml(cfg), "config/config.yaml")

    def log_epoch(self, metrics: dict[str, float]) -> None:
        """One epoch's metrics (train_segment's dict) in one batched call, step = epoch."""
        self.log_history([metrics])

    def log_history(self, history: list[dict[str, float]]) -> None:
        """Several epochs at once (a forked baseline inherits the guided run's first epochs)."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        batch = [
            Metric(key, float(value), stamp, int(m["epoch"]))
            for m in history
            for key, value in m.items()
            if key not in SKIPPED_METRICS
        ]
        for i in range(0, len(batch), 1000):  # MLflow's per-batch limit
            self._later(self.client.log_batch, self.run_id, metrics=batch[i : i + 1000])

    def log_gate(self, gate: GateRecord, class_names: list[str], workdir: Path) -> None:
        """A gate's size, val change, decision, DVC hash, edits file and before/after plots."""
        metrics = {f"gate_{k}": v for k, v in edits_summary(gate.edits).items()}
        metrics["gate_val_acc"] = gate.val_accuracy
        if gate.gap_pp is not None:
            metrics["gate_vs_baseline_pp"] = gate.gap_pp
        if gate.since_edit_pp is not None:
            metrics["gate_since_edit_pp"] = gate.since_edit_pp
        self.log_history([{**metrics, "epoch": gate.epoch}])
        self._later(self._log_gate_files, gate, class_names, workdir)

    def _log_gate_files(self, gate: GateRecord, class_names: list[str], workdir: Path) -> None:
        epoch, tag = gate.epoch, f"gate.{gate.epoch:04d}"
        for key in ("decision", "source", "md5"):
            self.client.set_tag(self.run_id, f"{tag}.{key}", getattr(gate, key))
        self.client.log_artifact(self.run_id, str(gate.edits_path), "edits")
        for which in ("before", "after"):
            title = f"epoch {epoch}, {which} the edit ({gate.decision})"
            png = workdir / f"{tag}_{which}.png"
            gate_layout_png(gate.edits, class_names, which, title, png)
            self.client.log_artifact(self.run_id, str(png), "gates")

    def log_final(self, summary: dict[str, Any], model) -> None:
        """Test scores (step = last epoch trained) and the final model, loadable as its class."""
        step = int(summary["epochs_trained"])
        scores = {"test_acc": summary["test_accuracy"], "test_f1": summary["test_macro_f1"]}
        self.log_history([{**scores, "epoch": step}])
        self.log_model(model)

    def log_model(self, model) -> None:
        """Log ``model`` so that ``mlflow.pytorch.load_model`` returns a ``HillModel`` again.

        MLflow 3's default ``pt2`` format loads back as a GraphModule; ``pickle`` keeps the class
        (hill_core must be importable where it is loaded). Requirements are given, not inferred,
        because inference re-imports the model in a subprocess and costs seconds.
        """
        import mlflow.pytorch
        import torch

        # quiet: the pickle format warns about untrusted files at every save; these are ours.
        with tempfile.TemporaryDirectory() as tmp, _quiet("mlflow.pytorch"):
            local = Path(tmp) / "model"
            mlflow.pytorch.save_model(
                model.cpu().eval(),
                str(local),
                serialization_format="pickle",
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            )
            self.client.log_artifacts(self.run_id, str(local), "model")

    def set_tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)

    def has_tag(self, key: str) -> bool:
        return key in self.client.get_run(self.run_id).data.tags


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass(frozen=True)
class GateRecord:
    """What a gate decided, as MLflow sees it."""

    epoch: int
    decision: str
    source: str  # page | prefect | timeout | autopilot:<strategy> | replay
    edits_path: Path
    edits: pd.DataFrame
    md5: str  # DVC's hash of the edits file
    val_accuracy: float
    gap_pp: float | None  # guided minus lockstep baseline val accuracy at this gate, pp
    since_edit_pp: float | None  # how that gap moved since the active edit's gate, pp


def run_tags(cfg: Config, tags: dict[str, str]) -> dict[str, str]:
    """The tags of every hill run (mode, user, pair and flow-run id come from the caller)."""
    return {
        "hill.seed": str(cfg.base.seed),
        "hill.dataset": cfg.data.name,
        "hill.git_commit": git_commit(),
        "hill.config_hash": cfg.hash(),
        **{k: v for k, v in tags.items() if v},
    }


def alive_tags() -> dict[str, str]:
    """Which process logs the run now: lets a later process tell a dead one from a live one."""
    return {"hill.host": _host(), "hill.pid": str(os.getpid())}


def reap_dead_runs(mlflow_client, experiment: str) -> None:
    """Mark KILLED every RUNNING run of this host whose logging process is gone (SIGKILL, OOM,
    a lost machine leaves no chance to close it). ``hill resume`` re-opens it later."""
    runs = mlflow_client.search_runs(
        [experiment], f"attributes.status = 'RUNNING' and tags.`hill.host` = '{_host()}'"
    )
    for run in runs:
        pid = int(run.data.tags.get("hill.pid", "0") or 0)
        if pid and not _alive(pid):
            mlflow_client.set_tag(run.info.run_id, "hill.ended", f"process {pid} died")
            mlflow_client.set_terminated(run.info.run_id, "KILLED")


def live_process(cfg: Config, name: str) -> int | None:
    """The pid of a live process on this host that is logging hill run ``name``, else None."""
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(f"{cfg.tracking.experiment_prefix}-"
                                                      f"{cfg.data.name}")  # fmt: skip
    if experiment is None:
        return None
    runs = mlflow_client.search_runs(
        [experiment.experiment_id],
        f"tags.`hill.run_name` = '{name}' and attributes.status = 'RUNNING'",
    )
    for run in runs:
        pid = int(run.data.tags.get("hill.pid", "0") or 0)
        if run.data.tags.get("hill.host") == _host() and pid and _alive(pid):
            return pid
    return None


def _host() -> str:
    return socket.gethostname()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def pair_runs(guided_run_id: str, baseline_run_id: str) -> None:
    """Tag a guided run with its baseline (the baseline got the guided id when it started)."""
    client().set_tag(guided_run_id, PAIRED, baseline_run_id)


def load_model(run_id: str):
    """The final model of a run, as the project's own class (``HillModel``)."""
    import mlflow
    import mlflow.pytorch

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow.pytorch.load_model(f"runs:/{run_id}/model", map_location="cpu")


@dataclass(frozen=True)
class RunRecord:
    """What `hill compare` needs of one run."""

    run_id: str
    name: str
    tags: dict[str, str]
    metrics: dict[str, float]
    val_acc: dict[int, float]  # epoch -> val accuracy
    gate_epochs: list[int]


def guided_pairs(prefix: str) -> list[tuple[RunRecord, RunRecord]]:
    """Finished guided runs that have a finished paired baseline, oldest first."""
    mlflow_client = client()
    experiments = mlflow_client.search_experiments(filter_string=f"name LIKE '{prefix}-%'")
    if not experiments:
        return []
    runs = mlflow_client.search_runs(
        [e.experiment_id for e in experiments],
        filter_string=f"tags.`{MODE}` = 'guided' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
    )
    pairs = []
    for run in runs:
        baseline_id = run.data.tags.get(PAIRED)
        if not baseline_id:
            continue
        baseline = mlflow_client.get_run(baseline_id)
        if baseline.info.status == "FINISHED":
            pairs.append((_record(mlflow_client, run), _record(mlflow_client, baseline)))
    return pairs


def _record(mlflow_client, run) -> RunRecord:
    history = mlflow_client.get_metric_history(run.info.run_id, "val_acc")
    gates = mlflow_client.get_metric_history(run.info.run_id, "gate_val_acc")
    return RunRecord(
        run_id=run.info.run_id,
        name=run.info.run_name,
        tags=dict(run.data.tags),
        metrics=dict(run.data.metrics),
        val_acc={m.step: m.value for m in history},
        gate_epochs=sorted({m.step for m in gates}),
    )

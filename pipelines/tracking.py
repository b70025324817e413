"""Every MLflow call of hill lives here: one run per flow run, one experiment per data set.

The store is ``sqlite:///mlflow.db`` at the project root with artifacts in ``mlartifacts/``
beside it, unless ``MLFLOW_TRACKING_URI`` points elsewhere; a tracking server that does not
answer is one line within seconds (:func:`check_server`), not minutes of MLflow's retries.
Metrics go out batched (one ``log_batch`` per epoch, which MLflow splits at its own limits):
per-value calls cost seconds per thousand on the sqlite store. Runs are addressed by id
through an ``MlflowClient``, never through MLflow's global active run, so the flow's tasks and
the gate page's threads cannot end up logging to the wrong run.

A guided run and its lockstep baseline are two runs with the same ``hill.pair`` tag (the
guided run's name): "Group by" that tag in the MLflow UI shows each pair together. A study's
runs are also children of the study's parent run (``mlflow.parentRunId``).

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
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hill_core.config import Config
from hill_core.edits import edits_summary
from hill_core.errors import HillError
from pipelines.paths import config_yaml, git_commit
from pipelines.plots import gate_layout_png

# Tags every hill run carries; `hill compare` and the MLflow UI filter on them.
MODE, USER, PAIRED = "hill.mode", "hill.user", "hill.paired_run_id"
PAIR = "hill.pair"  # the guided run's name, on both runs of a pair: the UI's "Group by" key
SKIPPED_METRICS = {"epoch"}  # the step already says which epoch a value belongs to
PROBE_TIMEOUT_S = 10.0  # how long a tracking server may take to answer GET /health (loaded)


def tracking_uri(root: Path | str = ".") -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the project's own sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve()}/mlflow.db"


def client(root: Path | str = "."):
    """A client of the tracking store; raises :class:`HillError` when its server is down."""
    from mlflow import MlflowClient

    uri = tracking_uri(root)
    check_server(uri)
    return MlflowClient(uri)


def check_server(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise a one-line :class:`HillError` when the tracking server at an http(s) ``uri`` does
    not answer ``GET /health`` within ``timeout`` seconds (or answers 5xx, as a proxy in front
    of a stopped server does). MLflow itself would retry for minutes without a word.

    Any other answer counts as up (a 401 or 404: MLflow's own calls say what is wrong then).
    Local stores (sqlite, file) need no probe.
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower() not in ("http", "https"):
        return
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    shown = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))  # no password
    try:
        with urllib.request.urlopen(f"{shown.rstrip('/')}/health", timeout=timeout):
            return
    except urllib.error.HTTPError as err:
        if err.code < 500:
            return
        why = f"HTTP {err.code}"
    except (OSError, ValueError) as err:  # refused, unreachable, timed out, bad host name
        reason = getattr(err, "reason", err)
        why = " ".join(str(reason).split()) or type(reason).__name__
    raise HillError(
        f"MLflow tracking server at {shown} does not answer ({why}): start it (infra/up.sh) "
        f"or unset MLFLOW_TRACKING_URI"
    )


def experiment_id(mlflow_client, cfg: Config, root: Path | str = ".") -> str:
    """The id of ``<prefix>-<data set>``, created on first use (artifacts beside a local store).

    This is ``mlflow.set_experiment``'s get-or-create, without its side effect (it makes the
    experiment the process-wide active one) and with what it cannot do: put a local store's
    artifacts in ``mlartifacts/`` beside ``mlflow.db`` rather than in ``./mlruns`` of whatever
    folder the process runs in. A tracking server keeps its own artifact root.
    """
    from mlflow.exceptions import MlflowException

    name = experiment_name(cfg)
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
        SCHEDULED while the flow is suspended at a gate.

        Status is set here by id, not with ``mlflow.start_run``/``end_run``: those keep one
        process-global stack of active runs, while hill logs two runs at once (guided and
        baseline) from the flow's tasks, a writer thread and the gate page, re-opens a run
        that a dead process left RUNNING, and parks a run SCHEDULED at a suspended gate,
        which ``end_run`` cannot express.
        """
        from prefect.exceptions import Pause

        mlflow_client = client()  # one line within seconds when a tracking server is down
        experiment = experiment_id(mlflow_client, cfg)
        reap_dead_runs(mlflow_client, experiment)
        tracker = cls.reopen(mlflow_client, experiment, name, tags)
        if tracker is None:
            all_tags = {**run_tags(cfg, tags), **alive_tags()}
            run = mlflow_client.create_run(experiment, run_name=name, tags=all_tags)
            tracker = cls(mlflow_client, run.info.run_id)
            tracker._later(tracker._log_config, cfg)  # training need not wait for it
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
    def reopen(
        cls, mlflow_client, experiment: str, name: str, tags: dict[str, str] | None = None
    ) -> Tracker | None:
        """This hill run's MLflow run, set RUNNING again for this process, its Prefect flow run
        tag following the flow run that goes on with it; None if it has none."""
        runs = mlflow_client.search_runs(
            [experiment], f"tags.`hill.run_name` = '{name}'", max_results=1
        )
        if not runs:
            return None
        run_id = runs[0].info.run_id
        mlflow_client.update_run(run_id, status="RUNNING")
        flow_run = (tags or {}).get(FLOW_RUN_TAG, "")
        for key, value in {
            **alive_tags(),
            **({FLOW_RUN_TAG: flow_run} if flow_run else {}),
        }.items():
            mlflow_client.set_tag(run_id, key, value)
        return cls(mlflow_client, run_id, resumed=True)

    def end(self, status: str) -> None:
        """Write what is still queued, then close the run (FAILED if a write failed)."""
        self.writer.shutdown(wait=True)
        failed = next((f.exception() for f in self.pending if f.exception()), None)
        self.client.set_terminated(self.run_id, "FAILED" if failed else status)
        if status == "FINISHED" and ENDED_TAG in self.client.get_run(self.run_id).data.tags:
            self.client.delete_tag(self.run_id, ENDED_TAG)  # a dead process's, since resumed
        if failed is not None and status == "FINISHED":
            raise failed

    def _later(self, fn, *args, **kwargs) -> None:
        self.pending.append(self.writer.submit(fn, *args, **kwargs))

    def _log_config(self, cfg: Config) -> None:
        from mlflow.entities import Param

        params = [Param(k, str(v)) for k, v in cfg.flat().items()]
        self.client.log_batch(self.run_id, params=params)  # MLflow splits it at 100 params
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
        self._later(self.client.log_batch, self.run_id, metrics=batch)  # split by MLflow

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
        table = workdir / f"{tag}_corrections.csv"
        corrections_table(gate.edits, class_names).to_csv(table, index=False)
        self.client.log_artifact(self.run_id, str(table), "corrections")
        for which in ("before", "after"):
            title = f"epoch {epoch}, {which} the edit ({gate.decision})"
            png = workdir / f"{tag}_{which}.png"
            gate_layout_png(gate.edits, class_names, which, title, png)
            self.client.log_artifact(self.run_id, str(png), "gates")

    def log_final(self, summary: dict[str, Any], model, data) -> None:
        """The data set's splits as run inputs, the test scores (step = last epoch trained)
        and the final model as a logged model with the scores of that step.

        ``data`` is the run's :class:`hill_core.data.base.DataBundle`.
        """
        step = int(summary["epochs_trained"])
        self._later(log_inputs, self.client, self.run_id, data_inputs(data))
        scores = {"test_acc": summary["test_accuracy"], "test_f1": summary["test_macro_f1"]}
        self.log_history([{**scores, "epoch": step}])
        self._later(self.log_model, model, input_example(data), step)

    def log_model(self, model, example: np.ndarray, step: int = 0) -> str:
        """Log ``model`` with ``mlflow.pytorch.log_model`` as this run's logged model ``model``;
        returns its model id (``models:/<id>`` loads it, as does ``runs:/<run id>/model``).

        - ``pickle`` format: ``mlflow.pytorch.load_model`` gives a ``HillModel`` again (MLflow
          3's default ``pt2`` gives a GraphModule). Loading imports ``hill_core.models`` (and
          the ``hill_core.config`` it imports), nothing else of hill: install hill where the
          model is loaded or served (``mlflow models serve --env-manager local``).
        - The signature and input example are float32 tensors of the data's input shape, so a
          JSON request to the served model is parsed as float32 (without them it is float64,
          and torch refuses it: "Input type (double) and bias type (float) should be the same").
        - Requirements are given, not inferred: inference re-imports the model in a subprocess.
        - The logged model is created in the run's experiment with the run's tags and params;
          MLflow links the run's metrics at ``step`` (the test scores) to it.
        """
        import mlflow
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        model = served_module(model).cpu().eval()
        with torch.no_grad():
            output = model(torch.from_numpy(example)).numpy()
        run = self.client.get_run(self.run_id)
        keep = ("hill.", "mlflow.source.", "mlflow.user")
        tags = {k: v for k, v in run.data.tags.items()
                if k.startswith(keep) and k not in ("hill.host", "hill.pid")}  # fmt: skip
        logged = self.client.create_logged_model(
            run.info.experiment_id, "model", self.run_id, tags=tags,
            params=dict(run.data.params), model_type="classifier",
        )  # fmt: skip
        # quiet: the pickle format warns about untrusted files at every save; these are ours.
        with _mlflow_uri(), _quiet("mlflow.pytorch"):
            mlflow.pytorch.log_model(
                model,
                name="model",
                model_id=logged.model_id,
                run_id=self.run_id,
                step=step,
                signature=infer_signature(example, output),
                input_example=example,
                serialization_format="pickle",
                pip_requirements=requirements(model),
                code_paths=code_paths(model),
            )
        return logged.model_id

    def set_tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)

    def has_tag(self, key: str) -> bool:
        return key in self.client.get_run(self.run_id).data.tags


def served_module(model):
    """What MLflow logs and serves: a user's own network as its author wrote it (hill reads its
    latent with a hook only while training), a preset as the ``HillModel`` it is."""
    from hill_core.tapped import LatentTap

    return model.net if isinstance(model, LatentTap) else model


def requirements(model) -> list[str]:
    """torch, and torchvision for its networks, pinned to the versions that trained it."""
    import torch

    pins = [f"torch=={torch.__version__.split('+')[0]}"]
    if type(model).__module__.startswith("torchvision."):
        import torchvision

        pins.append(f"torchvision=={torchvision.__version__.split('+')[0]}")
    return pins


def code_paths(model) -> list[str] | None:
    """The user's package that defines ``model``'s class, when it lives in a folder (not an
    installed package): MLflow copies it beside the model, so loading and serving import it."""
    import sysconfig

    name = type(model).__module__
    top = name.partition(".")[0]
    module = sys.modules.get(name)
    if top in ("hill_core", "torchvision", "torch") or not getattr(module, "__file__", None):
        return None  # hill is installed where its models are served; torch and torchvision too
    # The folder of the top-level package the class was imported from (not every folder a
    # namespace package spans): up one level per dotted part of the module's name.
    found = Path(module.__file__).resolve()
    for _ in name.split(".")[1:] if found.name != "__init__.py" else name.split("."):
        found = found.parent
    installed = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    return None if any(str(found).startswith(i) for i in installed) else [str(found)]


@contextmanager
def _mlflow_uri() -> Iterator[None]:
    """MLflow's process-wide tracking URI set to hill's, for the calls that read only that
    (``mlflow.pytorch.log_model``, ``load_model``), and put back after them.

    ``mlflow.set_tracking_uri`` also sets ``MLFLOW_TRACKING_URI`` in the environment; left
    there, the next run in the process (a second ``hill.run`` in a notebook) would take it for
    a server the user chose and put its artifacts in ``./mlruns`` (:func:`experiment_id`).
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def corrections_table(edits: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    """The label corrections in force after a gate, one row per relabelled or excluded item:
    sample_id, given label, label after (names beside ids), excluded."""
    rows = edits[(edits["label_after"] != edits["label"]) | edits["excluded"]]
    names = np.asarray(class_names, dtype=object)
    return pd.DataFrame(
        {
            "sample_id": rows["sample_id"].to_numpy(),
            "label": rows["label"].to_numpy(),
            "label_name": names[rows["label"].to_numpy()],
            "label_after": rows["label_after"].to_numpy(),
            "label_after_name": names[rows["label_after"].to_numpy()],
            "excluded": rows["excluded"].to_numpy(),
        }
    )


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
    """The tags of every hill run (mode, user, pair and flow-run id come from the caller),
    with MLflow's standard ones from its own context providers: ``mlflow.user``,
    ``mlflow.source.name``/``type``, and ``mlflow.source.git.commit`` of the project (the UI
    links it; ``hill.git_commit`` adds ``+dirty`` for a tree with changes)."""
    from mlflow.tracking.context.registry import resolve_tags

    commit = git_commit()
    standard = resolve_tags()
    if commit != "none":
        standard["mlflow.source.git.commit"] = commit.removesuffix("+dirty")
    return {
        **standard,
        "hill.seed": str(cfg.base.seed),
        "hill.dataset": cfg.data.name,
        "hill.git_commit": commit,
        "hill.config_hash": cfg.hash(),
        **{k: v for k, v in tags.items() if v},
    }


# How a tracking store says a row already exists (SQLite, PostgreSQL, MySQL; through a server
# the same text comes back in the error).
DUPLICATE_ROW = ("UNIQUE constraint failed", "duplicate key value", "Duplicate entry")
INPUT_TRIES = 3


def log_inputs(client, run_id: str, datasets: list[Any]) -> None:
    """``client.log_inputs``, tried again when another run stored the same dataset first.

    MLflow's store looks a dataset up by (experiment, name, digest) and inserts it when absent,
    in two steps: two runs of one experiment logging the same split at the same moment (a
    study's pairs) both find it absent and the second insert fails on the unique key. Tried
    again, the lookup finds the row the other run stored and only links this run to it.
    """
    from mlflow.exceptions import MlflowException

    for attempt in range(INPUT_TRIES):
        try:
            client.log_inputs(run_id, datasets=datasets)
            return
        except MlflowException as err:
            if attempt == INPUT_TRIES - 1 or not any(s in str(err) for s in DUPLICATE_ROW):
                raise


def data_inputs(data) -> list[Any]:
    """The data set's train, validation and test splits as MLflow dataset inputs.

    Each is ``mlflow.data.from_numpy`` of the split's sample ids (features) and labels
    (targets), named after the data set: MLflow keeps its digest, schema and size, not the
    arrays. The digest is the split's fingerprint (every id and label, and a sample of the
    items: ``hill_core.data.fingerprint``), so a run on another split or changed items shows
    another one.
    """
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    from hill_core.data.fingerprint import split_fingerprint

    inputs = []
    for context, split in (("train", data.train_eval), ("validation", data.val),
                           ("test", data.test)):  # fmt: skip
        ids, labels = np.asarray(split.ids, np.int64), np.asarray(split.labels, np.int64)
        printed = split_fingerprint(split)
        digest = printed["labels"][:4] + printed["sample"][:4]
        dataset = mlflow.data.from_numpy(ids, targets=labels, name=data.name, digest=digest)
        entity = dataset._to_mlflow_entity()
        inputs.append(DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    return inputs


def input_example(data, n: int = 2) -> np.ndarray:
    """A few test items (zeros if the split is empty): float32, shape (n, *input_shape)."""
    import torch

    split = data.test if len(data.test) else data.val
    if not len(split):
        return np.zeros((1, *data.input_shape), np.float32)
    items = [split[i][0] for i in range(min(n, len(split)))]
    return torch.stack([torch.as_tensor(x) for x in items]).numpy().astype(np.float32)


ENDED_TAG = "hill.ended"  # why a run's process stopped logging it (cleared when it finishes)
FLOW_RUN_TAG = "hill.prefect_flow_run_id"  # the Prefect flow run that logs it now


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
            mlflow_client.set_tag(run.info.run_id, ENDED_TAG, f"process {pid} died")
            mlflow_client.set_terminated(run.info.run_id, "KILLED")


def experiment_name(cfg: Config) -> str:
    """``<tracking.experiment_prefix>-<data set>``: one experiment per data set."""
    return f"{cfg.tracking.experiment_prefix}-{cfg.data.short_name}"


def live_process(cfg: Config, name: str) -> int | None:
    """The pid of a live process on this host that is logging hill run ``name``, else None."""
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(experiment_name(cfg))
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
    """The final model of a run, as its own class (``HillModel``, or the user's network)."""
    import mlflow.pytorch

    with _mlflow_uri():
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

"""pipelines.tracking against a real MLflow sqlite store in a tmp folder (no Prefect)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hill_core.config import load_config
from hill_core.models import HillModel, build_model
from pipelines import tracking
from pipelines.tracking import Tracker


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the module (creating an MLflow sqlite schema takes seconds)."""
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.chdir(root)
        yield root


@pytest.fixture
def cfg():
    return load_config(None, ["base.device=cpu", "train.epochs=3", "hill.gate_epochs=[2]"])


def test_default_store_is_sqlite_at_the_project_root(store, monkeypatch):
    assert tracking.tracking_uri() == f"sqlite:///{store.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking.tracking_uri() == "http://tracking.example:5000"


def test_run_is_finished_in_the_data_set_experiment_with_artifacts_beside(store, cfg):
    with Tracker.start(cfg, "ok", {"hill.mode": "guided", "hill.user": "human"}) as tracker:
        pass
    run = tracker.client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "ok"
    experiment = tracker.client.get_experiment(run.info.experiment_id)
    assert experiment.name == "hill-digits"
    assert (
        experiment.artifact_location == (store / "mlartifacts" / "hill-digits").resolve().as_uri()
    )
    assert run.data.tags["hill.mode"] == "guided" and run.data.tags["hill.seed"] == "0"
    assert run.data.params["train.epochs"] == "3"
    config_text = Path(tracker.client.download_artifacts(tracker.run_id, "config/config.yaml"))
    assert cfg.hash() in config_text.read_text()  # stamped with the config it ran with


def test_run_ends_failed_when_the_flow_fails(store, cfg):
    with pytest.raises(RuntimeError), Tracker.start(cfg, "boom", {"hill.mode": "guided"}) as t:
        raise RuntimeError("training diverged")
    assert t.client.get_run(t.run_id).info.status == "FAILED"


def test_an_epoch_is_one_batched_call(store, cfg, monkeypatch):
    with Tracker.start(cfg, "batched", {"hill.mode": "baseline"}) as tracker:
        calls = []
        real = tracker.client.log_batch
        monkeypatch.setattr(
            tracker.client, "log_batch", lambda *a, **k: calls.append(k) or real(*a, **k)
        )
        metrics = {"epoch": 1.0, "ce": 2.0, "val_acc": 0.5, "l_human": 0.0, "scale": 1.0}
        tracker.log_epoch(metrics)
        tracker.log_epoch({**metrics, "epoch": 2.0, "val_acc": 0.6})
    assert len(calls) == 2
    history = tracker.client.get_metric_history(tracker.run_id, "val_acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.6)]
    assert "epoch" not in tracker.client.get_run(tracker.run_id).data.metrics


def test_final_model_loads_back_as_the_project_class(store, cfg):
    model = build_model(cfg.model, "digits", (1, 8, 8), 10)
    with Tracker.start(cfg, "model", {"hill.mode": "baseline"}) as tracker:
        tracker.log_model(model)
    loaded = tracking.load_model(tracker.run_id)
    assert isinstance(loaded, HillModel)
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(loaded.eval()(x), model.eval()(x))

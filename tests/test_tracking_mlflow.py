"""pipelines.tracking against a real MLflow sqlite store in a tmp folder (no Prefect)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from pathlib import Path

import pytest
import torch
from flow_helpers import local_mlflow_store

from hill_core.config import load_config
from hill_core.errors import HillError
from hill_core.models import HillModel, build_model
from pipelines import tracking
from pipelines.tracking import Tracker


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the module (creating an MLflow sqlite schema takes seconds)."""
    with local_mlflow_store(tmp_path_factory.mktemp("store")) as root:
        yield root


@pytest.fixture
def cfg():
    return load_config(None, ["base.device=cpu", "train.epochs=3", "hill.gate_epochs=[2]"])


def test_default_store_is_sqlite_at_the_project_root(store, monkeypatch):
    assert tracking.tracking_uri() == f"sqlite:///{store.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking.tracking_uri() == "http://tracking.example:5000"


@pytest.mark.slow
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


def spy_log_batch(tracker, monkeypatch) -> list[dict]:
    """Every ``log_batch`` call of ``tracker`` from now on, by its keyword arguments."""
    calls = []
    real = tracker.client.log_batch
    monkeypatch.setattr(
        tracker.client, "log_batch", lambda *a, **k: calls.append(k) or real(*a, **k)
    )
    return calls


def test_an_epoch_is_one_batched_call(store, cfg, monkeypatch):
    with Tracker.start(cfg, "batched", {"hill.mode": "baseline"}) as tracker:
        calls = spy_log_batch(tracker, monkeypatch)
        metrics = {"epoch": 1.0, "ce": 2.0, "val_acc": 0.5, "l_human": 0.0, "scale": 1.0}
        tracker.log_epoch(metrics)
        tracker.log_epoch({**metrics, "epoch": 2.0, "val_acc": 0.6})
    assert len(calls) == 2
    history = tracker.client.get_metric_history(tracker.run_id, "val_acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.6)]
    assert "epoch" not in tracker.client.get_run(tracker.run_id).data.metrics


def test_final_model_loads_back_as_the_project_class(store, cfg):
    model = build_model(cfg.model, "digits", (1, 8, 8), 10)
    example = torch.rand(2, 1, 8, 8).numpy()
    with Tracker.start(cfg, "model", {"hill.mode": "baseline"}) as tracker:
        tracker.log_model(model, example)
    loaded = tracking.load_model(tracker.run_id)
    assert isinstance(loaded, HillModel)
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(loaded.eval()(x), model.eval()(x))


def test_mlflow_splits_what_is_over_its_batch_limits(store, cfg, monkeypatch):
    """hill hands log_batch a whole history in one call; MLflow splits it (1000 metrics)."""
    with Tracker.start(cfg, "split", {"hill.mode": "baseline"}) as tracker:
        calls = spy_log_batch(tracker, monkeypatch)
        tracker.log_history([{"epoch": e, **{f"m{k}": k for k in range(30)}} for e in range(50)])
    assert len(calls) == 1 and len(calls[0]["metrics"]) == 1500
    assert len(tracker.client.get_metric_history(tracker.run_id, "m7")) == 50


def test_runs_carry_mlflows_standard_source_tags(store, cfg, monkeypatch):
    monkeypatch.setattr(tracking, "git_commit", lambda: "0123abcd+dirty")
    with Tracker.start(cfg, "tagged", {"hill.mode": "guided"}) as tracker:
        pass
    tags = tracker.client.get_run(tracker.run_id).data.tags
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"]
    assert tags["mlflow.user"]
    assert tags["mlflow.source.git.commit"] == "0123abcd"  # the UI links it: no "+dirty"
    assert tags["hill.git_commit"] == "0123abcd+dirty"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_tracking_server_that_is_down_is_one_line_within_seconds(store, cfg, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    began = time.monotonic()
    with pytest.raises(HillError) as err, Tracker.start(cfg, "down", {"hill.mode": "guided"}):
        pass
    assert time.monotonic() - began < 10
    message = str(err.value)
    assert "\n" not in message and "does not answer" in message and "infra/up.sh" in message


@pytest.mark.slow
def test_a_server_that_accepts_but_never_answers_times_out_in_seconds():
    with socket.socket() as sock:  # the kernel completes the handshake; nobody ever replies
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        uri = f"http://user:secret@127.0.0.1:{sock.getsockname()[1]}/"
        began = time.monotonic()
        with pytest.raises(HillError, match="timed out") as err:
            tracking.check_server(uri)
        assert time.monotonic() - began < tracking.PROBE_TIMEOUT_S + 3
    assert "secret" not in str(err.value)


def test_a_server_that_answers_passes_the_probe_and_local_stores_need_none():
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        tracking.check_server(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    tracking.check_server("sqlite:////nowhere/mlflow.db")
    tracking.check_server("file:///nowhere/mlruns")


RACERS = 8  # runs logging the same splits at the same moment, as a study's pairs do


def race_log_inputs(cfg, log) -> list[str]:
    """``RACERS`` runs of one new experiment, each with its own client, released at once by a
    barrier to log the data set's splits through ``log(client, run_id, datasets)``; returns
    the run ids (raises what a racer raised)."""
    from concurrent.futures import ThreadPoolExecutor

    from hill_core.data import load_data

    datasets = tracking.data_inputs(load_data(cfg.data, 0))
    experiment = tracking.client().create_experiment(f"race-{time.monotonic_ns()}")
    runs = [tracking.client().create_run(experiment).info.run_id for _ in range(RACERS)]
    barrier = threading.Barrier(RACERS)

    def racer(run_id: str) -> None:
        mine = tracking.client()
        barrier.wait()
        log(mine, run_id, datasets)

    with ThreadPoolExecutor(RACERS) as pool:
        list(pool.map(racer, runs))
    return runs


def test_runs_logging_the_same_splits_at_once_all_get_them(store, cfg):
    """MLflow stores a dataset by look-up-then-insert: racing runs collide on its unique key
    (a study's pairs failed so in a loaded CI). ``tracking.log_inputs`` tries again and every
    run ends with its three splits, one stored dataset each."""
    runs = race_log_inputs(cfg, tracking.log_inputs)
    for run_id in runs:
        inputs = tracking.client().get_run(run_id).inputs.dataset_inputs
        assert sorted(i.tags[0].value for i in inputs) == ["test", "train", "validation"]
    assert len({i.dataset.digest for i in inputs}) == 3

"""The final model as MLflow logs it: a logged model with a signature, served from JSON.

``mlflow models serve`` builds a virtualenv and starts uvicorn around
``mlflow.pyfunc.scoring_server.init(model)``; these tests post to that same app in-process,
so the JSON request goes through the same parsing (by the signature) and predict path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from flow_helpers import local_mlflow_store

from hill_core.config import load_config
from hill_core.data import load_data
from hill_core.models import HillModel, build_model
from pipelines import tracking
from pipelines.tracking import Tracker

pytestmark = pytest.mark.slow  # each test logs a trained model to a fresh MLflow store


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """One guided run's final logging on digits (untrained model: the numbers do not matter)."""
    with local_mlflow_store(tmp_path_factory.mktemp("store")) as root:
        cfg = load_config(None, ["base.device=cpu", "train.epochs=3", "hill.gate_epochs=[2]"])
        data = load_data(cfg.data, cfg.base.seed)
        torch.manual_seed(0)
        model = build_model(cfg.model, "digits", data.input_shape, data.num_classes).eval()
        summary = {"epochs_trained": 3, "test_accuracy": 0.9, "test_macro_f1": 0.8}
        tags = {"hill.mode": "guided", "hill.run_name": "g", "hill.pair": "g"}
        with Tracker.start(cfg, "g", tags) as tracker:
            tracker.log_history([{"epoch": 3, "val_acc": 0.85}])
            tracker.log_final(summary, model, data)
        yield tracker, model, data, root


def the_model(tracker):
    run = tracker.client.get_run(tracker.run_id)
    found = tracker.client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{tracker.run_id}'"
    )
    (model,) = found
    return model


@pytest.mark.slow
def test_search_logged_models_finds_the_model_with_its_scores(logged):
    tracker, _, _, _ = logged
    model = the_model(tracker)
    assert model.name == "model" and model.model_type == "classifier"
    assert str(model.status) in ("READY", "LoggedModelStatus.READY")
    assert model.tags["hill.mode"] == "guided" and model.tags["hill.pair"] == "g"
    assert model.params["train.epochs"] == "3"  # MLflow copies the run's params
    scores = {m.key: (m.step, m.value) for m in model.metrics}
    assert scores == {"test_acc": (3, 0.9), "test_f1": (3, 0.8), "val_acc": (3, 0.85)}
    outputs = tracker.client.get_run(tracker.run_id).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [(model.model_id, 3)]


def test_logging_the_model_leaves_the_process_tracking_uri_unset(logged):
    """``mlflow.set_tracking_uri`` exports MLFLOW_TRACKING_URI; left set, the next run of the
    process (a second ``hill.run`` in a notebook) would take it for a chosen server and put
    its artifacts in ./mlruns."""
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_the_data_set_splits_are_run_inputs(logged):
    tracker, _, data, _ = logged
    inputs = tracker.client.get_run(tracker.run_id).inputs.dataset_inputs
    by_context = {i.tags[0].value: i.dataset for i in inputs}
    assert set(by_context) == {"train", "validation", "test"}
    assert {d.name for d in by_context.values()} == {"digits"}
    assert len({d.digest for d in by_context.values()}) == 3
    profile = json.loads(by_context["test"].profile)
    assert profile["features_shape"] == [len(data.test)]


def test_signature_and_example_are_float32_of_the_input_shape(logged):
    import mlflow

    tracker, _, data, _ = logged
    info = mlflow.models.get_model_info(f"models:/{the_model(tracker).model_id}")
    (spec,) = info.signature.inputs.inputs
    assert spec.type == np.dtype("float32") and spec.shape == (-1, *data.input_shape)
    assert info.signature.outputs.inputs[0].shape == (-1, data.num_classes)
    assert info.flavors["pytorch"]["model_data"] == "data"  # pickle: data/model.pth


def test_pyfunc_predicts_a_float32_batch(logged):
    import mlflow.pyfunc

    tracker, model, _, _ = logged
    pyfunc = mlflow.pyfunc.load_model(f"models:/{the_model(tracker).model_id}")
    x = torch.rand(5, 1, 8, 8)
    got = pyfunc.predict(x.numpy())
    assert got.shape == (5, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_a_json_request_is_answered_by_the_scoring_server(logged, monkeypatch):
    """JSON numbers are float64 to numpy; the signature makes them float32 (was: HTTP 400
    'Input type (double) and bias type (float) should be the same')."""
    import mlflow.artifacts
    import mlflow.pyfunc
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "false")  # init sets it: restored
    tracker, model, _, _ = logged
    pyfunc = mlflow.pyfunc.load_model(f"models:/{the_model(tracker).model_id}")
    app = TestClient(scoring_server.init(pyfunc))
    x = np.random.default_rng(0).random((3, 1, 8, 8))  # float64, as a JSON body decodes
    response = app.post(
        "/invocations",
        content=json.dumps({"inputs": x.tolist()}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    got = np.asarray(response.json()["predictions"])
    want = model(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # The request MLflow logged beside the model (the UI shows it as the example to send).
    where = f"{the_model(tracker).artifact_location}/serving_input_example.json"
    with open(mlflow.artifacts.download_artifacts(artifact_uri=where)) as f:
        example = f.read()
    response = app.post("/invocations", content=example,
                        headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 200, response.text
    assert np.asarray(response.json()["predictions"]).shape == (2, 10)


@pytest.mark.slow
def test_loading_imports_only_the_models_code_of_hill(logged):
    """In a fresh process: the model loads as HillModel, importing ``hill_core.models`` (and the
    config module it imports) and nothing else of hill, Prefect, DVC or Gradio."""
    tracker, _, _, root = logged
    script = textwrap.dedent(f"""
        import sys, mlflow, mlflow.pytorch
        mlflow.set_tracking_uri({tracking.tracking_uri(root)!r})
        model = mlflow.pytorch.load_model("runs:/{tracker.run_id}/model", map_location="cpu")
        print(type(model).__module__, type(model).__name__)
        tops = ("hill_core", "pipelines", "interaction_app", "prefect", "dvc", "gradio")
        print(sorted(m for m in sys.modules if m.split(".")[0] in tops))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    kind, modules = done.stdout.strip().splitlines()[-2:]
    assert kind == f"hill_core.models {HillModel.__name__}"
    assert set(eval(modules)) == {"hill_core", "hill_core.config", "hill_core.errors",
                                  "hill_core.models"}  # fmt: skip


def test_a_pair_shares_one_group_tag():
    from pipelines.flow import RunSpec, tags_of

    assert tags_of(RunSpec(name="r1"))["hill.pair"] == "r1"
    assert tags_of(RunSpec(name="r1", mode="replay"))["hill.pair"] == "r1"
    assert tags_of(RunSpec(name="b", mode="baseline"))["hill.pair"] == ""  # set by the fork

"""``hill run`` end to end on ``data.name: torchvision:FashionMNIST``, from idx files written in
the real format: a baseline, then a guided run whose gate an autopilot answers (noedit)."""

from __future__ import annotations

import json

import pytest
from data_writers import write_idx
from flow_helpers import mlflow_client, prefect_project
from typer.testing import CliRunner

from hill_core.edits import read_snapshot
from pipelines.cli import app

pytestmark = pytest.mark.slow

runner = CliRunner()
N_TRAIN, N_TEST = 300, 100  # 30 training images a class: seconds per epoch on a CPU
SETTINGS = [
    "data.name=torchvision:FashionMNIST",
    "data.root=data/raw",  # the project's own folder, relative as in params.yaml
    "train.epochs=3",
    "hill.gate_epochs=[2]",
    "hill.snapshot_size=40",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder whose params.yaml names torchvision:FashionMNIST, with its idx files
    under data/raw/FashionMNIST/raw, a local MLflow store and a Prefect test server."""

    def idx_files(root):
        write_idx(root / "data" / "raw", "FashionMNIST", N_TRAIN, N_TEST)

    with prefect_project(tmp_path_factory.mktemp("project"), SETTINGS, idx_files) as (root, _):
        yield root


def hill_run(*args: str) -> tuple[str, dict]:
    """`hill run ARGS --no-progress --metrics m.json`: its output and metrics."""
    result = runner.invoke(app, ["run", *args, "--no-progress", "--metrics", "m.json"])
    assert result.exit_code == 0, result.output
    return result.output, json.loads(open("m.json").read())


def test_a_baseline_trains_on_fashion_mnist(project):
    output, metrics = hill_run("--baseline", "--name", "fm-baseline")
    assert "test accuracy" in output and metrics["epochs_trained"] == 3
    assert metrics["test_accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert not (project / "runs/fm-baseline/snapshot_0002.parquet").exists()  # no gates


def test_a_guided_run_answered_by_autopilot_completes(project):
    output, metrics = hill_run("--autopilot", "noedit", "--name", "fm-guided")
    assert "-baseline: test accuracy" in output
    assert metrics["epochs_trained"] == 3 and metrics["baseline_epochs_trained"] == 3
    assert metrics["test_accuracy"] > 0.3
    snapshot, _ = read_snapshot(project / "runs/fm-guided/snapshot_0002.parquet")
    assert len(snapshot) >= 40  # the sample, plus the suspects a person should look at
    assert snapshot["sample_id"].max() < N_TRAIN  # training items only
    assert snapshot["item"].str.startswith("data:image/png;base64,").all()  # grey previews
    assert (project / "data/edits/fm-guided/gate_0002.parquet").is_file()
    run = mlflow_client().search_runs(
        [e.experiment_id for e in mlflow_client().search_experiments()],
        "tags.mlflow.runName = 'fm-guided'",
    )[0]
    assert run.data.params["data.name"] == "torchvision:FashionMNIST"

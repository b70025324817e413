"""A user's own network and data through the Prefect flow: ``examples/tinynet`` (a CNN with
BatchNorm and dropout, its latent an inner layer, a data set factory), and torchvision's
resnet18 on an image folder.

Real ``hill`` commands, Prefect, MLflow and DVC in a throw-away project that holds a copy of the
example package, as a user's project holds theirs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from flow_helpers import QUIET, mlflow_client, prefect_project
from typer.testing import CliRunner
from user_code import copy_examples, forget

from pipelines.cli import app

pytestmark = pytest.mark.slow

runner = CliRunner()
EXAMPLE = [
    "data.name=examples.tinynet.data:digit_splits",
    "model.name=examples.tinynet.model:build",
    "model.latent=encoder.proj",
    "model.kwargs={width: 16, latent: 8}",
    "train.lr=0.003",
]  # with flow_helpers.TINY: 4 epochs, gates after epochs 2 and 3


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git + DVC project whose params.yaml names the example package, a local MLflow store
    and a Prefect test server."""
    with prefect_project(tmp_path_factory.mktemp("project"), EXAMPLE, copy_examples) as (root, _):
        yield root


def hill(*args: str) -> str:
    result = runner.invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    return result.output


def final(run_dir) -> Path:
    """The run's last checkpoint (after a gate its name carries the teacher: ``-g0003``)."""
    (path,) = sorted(Path(run_dir).glob("ckpt_epoch_0004*.pt"))
    return path


def weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def same_weights(a, b) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def noedit(project):
    """A guided run of the example whose gates an autopilot approves with no edit."""
    hill("run", "--autopilot", "noedit", "--name", "ex")
    return project


@pytest.fixture(scope="module")
def edited(project):
    """A guided run of the example whose gates get latent edits (compactness), kept whatever
    they cost (the guard off), so that the run differs from its baseline."""
    hill("run", "--autopilot", "compactness", "--name", "ex-edit", "-S", "hill.guard=off")
    return project


def test_noedit_on_the_user_network_equals_its_baseline_bit_for_bit(noedit):
    runs = noedit / "runs"
    assert same_weights(final(runs / "ex"), final(runs / "ex-baseline"))
    summary = json.loads((runs / "ex/summary.json").read_text())
    assert summary["test_accuracy"] == summary["baseline"]["test_accuracy"] > 0.3
    assert "net.encoder.norm.running_var" in weights(final(runs / "ex"))
    assert (noedit / "data/edits/ex/data.json").is_file() and (runs / "ex/data.json").is_file()


def test_replay_of_an_edited_user_network_run_reproduces_its_weights(edited):
    runs = edited / "runs"
    assert not same_weights(final(runs / "ex-edit"), final(runs / "ex-edit-baseline"))
    hill("replay", "ex-edit", "--name", "ex-replayed", "-S", "hill.guard=off")
    assert same_weights(final(runs / "ex-edit"), final(runs / "ex-replayed"))


def run_hill(root, *args: str) -> subprocess.CompletedProcess:
    """`hill ARGS` in a process of its own (a resume reads the MLflow pid of the run's process,
    which for runs made in this test process is alive)."""
    hill_bin = f"{sys.prefix}/bin/hill"
    env = {**QUIET, "PATH": "/usr/bin:/bin", "HOME": str(root), "PREFECT_HOME": str(root / ".p")}
    return subprocess.run([hill_bin, *args], cwd=root, capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip


def test_resume_and_replay_after_the_data_changed_are_refused_in_one_line(edited):
    (edited / "runs/ex-edit/summary.json").rename(edited / "runs/summary.kept")  # unfinished
    data_py = edited / "examples/tinynet/data.py"
    original = data_py.read_text()
    data_py.write_text(original.replace("random_state=seed)", "random_state=seed + 1)"))
    try:
        replay = ["replay", "ex-edit", "--name", "again", "-S", "hill.guard=off"]
        for args in (["resume", "ex-edit"], replay):
            done = run_hill(edited, *args)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
            assert lines[0].startswith("hill: examples.tinynet.data:digit_splits changed since")
            assert "the train split's labels (or ids) differ" in lines[0]
        assert not (edited / "runs/again").exists()
    finally:
        data_py.write_text(original)
        (edited / "runs/summary.kept").rename(edited / "runs/ex-edit/summary.json")
        forget("examples")


def test_the_logged_user_network_answers_json_through_the_scoring_app(noedit, tmp_path):
    """In a fresh process whose working directory has no examples/: the model's code comes
    from the code_paths MLflow logged beside it."""
    run = mlflow_client().search_runs(
        [e.experiment_id for e in mlflow_client().search_experiments()],
        "tags.mlflow.runName = 'ex'",
    )[0]
    x = torch.rand(3, 1, 8, 8)
    script = textwrap.dedent(f"""
        import json, sys, numpy as np, mlflow, mlflow.pyfunc, mlflow.pytorch
        from fastapi.testclient import TestClient
        from mlflow.pyfunc import scoring_server
        mlflow.set_tracking_uri({f"sqlite:///{noedit / 'mlflow.db'}"!r})
        uri = "runs:/{run.info.run_id}/model"
        print(type(mlflow.pytorch.load_model(uri)).__name__)
        app = TestClient(scoring_server.init(mlflow.pyfunc.load_model(uri)))
        body = json.dumps({{"inputs": {x.tolist()!r}}})
        json_type = {{"Content-Type": "application/json"}}
        reply = app.post("/invocations", content=body, headers=json_type)
        print(reply.status_code, json.dumps(reply.json()["predictions"]))
    """)
    env = {**QUIET, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    kind, answer = done.stdout.strip().splitlines()[-2:]
    status, predictions = answer.split(" ", 1)
    assert kind == "TinyNet" and status == "200"
    from examples.tinynet.model import build

    net = build(10, (1, 8, 8), width=16, latent=8).eval()
    trained = weights(final(noedit / "runs/ex"))
    net.load_state_dict({k.removeprefix("net."): v for k, v in trained.items()})
    with torch.no_grad():
        want = net(x)
    assert torch.allclose(torch.tensor(json.loads(predictions)), want, atol=1e-5)


def test_replay_of_an_edits_file_changed_by_hand_is_refused_before_training(edited):
    """Defect K: a row dropped from a recorded gate's file replayed another run (or failed
    after training, with a traceback); its DVC pointer's md5 tells, before any work."""
    import pyarrow.parquet as pq

    gate = edited / "data/edits/ex-edit/gate_0002.parquet"
    original = gate.read_bytes()
    pq.write_table(pq.read_table(gate).slice(1), gate)
    try:
        result = runner.invoke(app, ["replay", "ex-edit", "--name", "dropped", "-S",
                                     "hill.guard=off", "--no-progress"])  # fmt: skip
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert "gate_0002.parquet changed since its gate recorded it" in lines[0]
        assert not (edited / "runs/dropped").exists()
    finally:
        gate.write_bytes(original)

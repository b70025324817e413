"""The guided-training flow end to end: real Prefect (test harness), MLflow sqlite and DVC.

One tiny project (4 epochs of digits, gates after epochs 2 and 3) in a tmp git + DVC repo; the
guided run's gates are answered through the gate page's HTTP API by a background "person".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from flow_helpers import GateAnswerer, mlflow_client, prefect_project, via_page, via_prefect

from hill_core.checkpoint import read_checkpoint
from hill_core.edits import read_edits

pytestmark = pytest.mark.slow

EPOCH_METRICS = [
    "train_acc", "val_acc", "val_f1", "ce", "l_center", "l_spread", "l_point",
    "l_human", "loss", "lr", "teacher_active", "alpha",
]  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tmp project as the working directory, with a Prefect test server for this module."""
    with prefect_project(tmp_path_factory.mktemp("project")) as (root, cfg):
        yield root, cfg


@pytest.fixture(scope="module")
def guided(project):
    """A guided run with its paired baseline; a person answers both gates at the page."""
    from pipelines.flow import RunSpec, guided_training

    _, cfg = project
    with GateAnswerer(via_page("approve")) as person:
        state = guided_training(cfg.to_dict(), RunSpec(name="page-run"), return_state=True)
    assert not person.errors, person.errors
    return state, person


def flow_run_logs(flow_run_id) -> list[str]:
    """The run's log messages as the Prefect API has them (logs are shipped in the background)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # blocks until the background log worker has sent what it holds
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


def test_guided_run_answered_at_the_page_completes(guided):
    state, person = guided
    assert state.is_completed()
    assert [g.epoch for g in person.seen] == [2, 3]
    assert {g.state_name for g in person.seen} == {"Paused"}  # Prefect shows the wait
    assert {g.reply["decision"] for g in person.seen} == {"approve"}
    summary = state.result()
    assert summary["epochs_trained"] == 4
    assert 0.5 < summary["test_accuracy"] <= 1.0


def test_prefect_flow_run_has_tags_summary_and_progress(guided):
    """Tags to filter on, the MLflow runs and scores in the logs and an artifact, and each
    run's epochs as a progress artifact and log lines."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    state, _ = guided
    summary, flow_run_id = state.result(), state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        where = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        artifacts = client.read_artifacts(artifact_filter=where)
    assert run.name == "page-run"
    assert {"hill", "mode:guided", "data:digits", "user:human"} <= set(run.tags)
    (card,) = [a for a in artifacts if a.key == "hill-summary"]
    for s in (summary, summary["baseline"]):
        assert s["mlflow_run_id"] in card.data and s["run_name"] in card.data
        assert f"{100 * s['test_accuracy']:.2f}%" in card.data
    progress = {a.description: a.data for a in artifacts if a.type == "progress"}
    assert progress == {
        "Epochs of page-run trained, of 4": 100.0,
        "Epochs of page-run-baseline trained, of 4": 100.0,
    }
    logs = "\n".join(flow_run_logs(flow_run_id))
    for epoch in (1, 2, 3, 4):
        assert f"page-run: epoch {epoch}/4, loss " in logs
    assert "page-run-baseline: epoch 4/4, loss " in logs
    assert "guided run page-run: test accuracy" in logs
    assert f"epochs; MLflow run {summary['mlflow_run_id']}\n" in logs + "\n"  # last: no ","
    assert f"MLflow run {summary['baseline']['mlflow_run_id']}" in logs


def test_epoch_lines_beside_a_progress_bar_go_to_prefect_only(project):
    import logging

    from prefect import flow, task
    from prefect.logging.handlers import APILogHandler, PrefectConsoleHandler

    from pipelines.tasks import prefect_progress

    @task
    def one_epoch():
        report = prefect_progress("bar-run", 0, 2, console=False)
        report({"epoch": 1, "loss": 0.5, "train_acc": 0.8, "val_acc": 0.7})

    @flow
    def tiny():
        one_epoch()

    state = tiny(return_state=True)
    assert "bar-run: epoch 1/2, loss 0.5000" in "\n".join(
        flow_run_logs(state.state_details.flow_run_id)
    )
    # not on the console, under the live bar: the logger's handlers send to the API alone
    logger, handlers = logging.getLogger("prefect.extra.hill"), []
    while logger is not None:
        handlers += logger.handlers
        logger = logger.parent if logger.propagate else None
    assert any(isinstance(h, APILogHandler) for h in handlers), handlers
    assert not any(isinstance(h, PrefectConsoleHandler) for h in handlers), handlers


def test_summary_links_mlflow_runs_on_a_tracking_server(monkeypatch):
    from types import SimpleNamespace

    import pipelines.tracking
    from pipelines.flow import RunSpec, mlflow_link, summary_line, summary_markdown

    run = SimpleNamespace(info=SimpleNamespace(experiment_id="7"))
    fake = SimpleNamespace(get_run=lambda run_id: run)
    monkeypatch.setattr(pipelines.tracking, "client", lambda: fake)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000/")
    link = mlflow_link("abc")
    assert link == "http://mlflow.example:5000/#/experiments/7/runs/abc"
    scores = {"test_accuracy": 0.9, "test_macro_f1": 0.8, "epochs_trained": 4}
    runs = [("guided", {**scores, "run_name": "r", "mlflow_run_id": "abc"})]
    text = summary_markdown(RunSpec(name="r"), runs, {"abc": link})
    assert f"[abc]({link})" in text and "| 90.00% | 80.00% | 4 |" in text
    assert "`" not in text  # Prefect's artifact view showed the backticks of code spans
    assert summary_line("guided", runs[0][1], link).endswith(f"; MLflow run {link}")  # defect E
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    assert mlflow_link("abc") == ""


def test_mlflow_run_has_every_metric_at_every_epoch(guided, project):
    state, _ = guided
    summary, (_, cfg) = state.result(), project
    client = mlflow_client()
    run = client.get_run(summary["mlflow_run_id"])
    # A segment the guard reverted is trained again: its epochs are logged a second time.
    expected = [1, 2]
    for gate, epoch in [(2, 3), (3, 4)]:
        expected += [epoch] * (2 if run.data.tags.get(f"guard.{gate:04d}") == "revert" else 1)
    for key in EPOCH_METRICS:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == expected, key
    for key in ("gate_points_moved", "gate_mean_displacement", "gate_val_acc"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [2, 3]
    for key, steps in [("gate_vs_baseline_pp", [2, 3]), ("guard_gain_pp", [3, 4])]:
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == steps
    assert client.get_metric_history(run.info.run_id, "gate_vs_baseline_pp")[0].value == 0.0
    assert run.data.metrics["test_acc"] == summary["test_accuracy"]
    tags = run.data.tags
    assert tags["hill.mode"] == "guided" and tags["hill.user"] == "human"
    assert tags["hill.seed"] == "0" and tags["hill.dataset"] == "digits"
    assert tags["hill.prefect_flow_run_id"] == str(state.state_details.flow_run_id)
    assert tags["hill.paired_run_id"] == summary["baseline"]["mlflow_run_id"]
    assert tags["gate.0002.source"] == "page" and "hill.git_commit" in tags
    assert run.data.params == {k: str(v) for k, v in cfg.flat().items()}


def test_mlflow_run_carries_the_artifacts(guided):
    from hill_core.models import HillModel
    from pipelines.tracking import load_model

    run_id = guided[0].result()["mlflow_run_id"]
    client = mlflow_client()
    listed = {
        a.path
        for folder in ("config", "edits", "gates")
        for a in client.list_artifacts(run_id, folder)
    }
    assert {"config/config.yaml", "edits/gate_0002.parquet", "edits/gate_0003.parquet"} <= listed
    assert {"gates/gate.0002_before.png", "gates/gate.0002_after.png"} <= listed
    assert isinstance(load_model(run_id), HillModel)


def test_edits_are_versioned_with_dvc(guided, project):
    root, _ = project
    tags = mlflow_client().get_run(guided[0].result()["mlflow_run_id"]).data.tags
    for epoch in (2, 3):
        path = root / f"data/edits/page-run/gate_{epoch:04d}.parquet"
        edits, meta = read_edits(path)
        assert meta.decision == "approve" and int(edits["moved"].sum()) == 5
        assert tags[f"gate.{epoch:04d}.md5"] in Path(f"{path}.dvc").read_text()
    targets = [f"data/edits/page-run/gate_{e:04d}.parquet.dvc" for e in (2, 3)]
    dvc_status = [sys.executable, "-m", "dvc", "status", "--json", *targets]
    out = subprocess.run(dvc_status, cwd=root, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {}


def test_forked_baseline_equals_a_baseline_from_scratch(guided, project):
    from hill_core.loop import baseline_config
    from pipelines.flow import RunSpec, guided_training

    _, cfg = project
    forked = guided[0].result()["baseline"]
    run = mlflow_client().get_run(forked["mlflow_run_id"])
    assert run.data.tags["hill.mode"] == "baseline"
    assert run.data.tags["hill.paired_run_id"] == guided[0].result()["mlflow_run_id"]
    history = mlflow_client().get_metric_history(forked["mlflow_run_id"], "val_acc")
    assert [m.step for m in history] == [1, 2, 3, 4]  # inherited epochs 1-2 are logged too
    scratch = guided_training(
        baseline_config(cfg).to_dict(), RunSpec(name="scratch", mode="baseline")
    )
    a = read_checkpoint(forked["checkpoint"])["model"]
    b = read_checkpoint(scratch["checkpoint"])["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert forked["test_accuracy"] == scratch["test_accuracy"]


def test_paused_run_resumed_through_prefect_api_without_edits(project):
    from pipelines.flow import RunSpec, guided_training

    root, cfg = project
    cfg = cfg.replace(**{"train.epochs": 3, "hill.gate_epochs": [2], "tracking.edits_dir": "other"})
    with GateAnswerer(via_prefect("approve")) as person:
        state = guided_training(cfg.to_dict(), RunSpec(name="api-run"), return_state=True)
    assert state.is_completed() and [g.state_name for g in person.seen] == ["Paused"]
    edits, meta = read_edits(root / "other/api-run/gate_0002.parquet")
    assert meta.decision == "approve" and not edits["moved"].any()
    assert (edits["x_after"] == edits["x_before"]).all()
    tags = mlflow_client().get_run(state.result()["mlflow_run_id"]).data.tags
    assert tags["gate.0002.source"] == "prefect"


def test_a_gate_is_answered_from_the_terminal(project):
    """`hill gates list` shows the waiting gate by run name; `hill gates decide` resumes it."""
    import threading

    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.flow import RunSpec, guided_training

    root, cfg = project
    cfg = cfg.replace(**{"train.epochs": 3, "hill.gate_epochs": [2], "tracking.edits_dir": "cli"})
    states = []
    worker = threading.Thread(
        target=lambda: states.append(
            guided_training(cfg.to_dict(), RunSpec(name="cli-run"), return_state=True)
        )
    )
    worker.start()
    runner = CliRunner()
    deadline = time.monotonic() + 120
    while (
        "cli-run  epoch 2  Paused" not in (listed := runner.invoke(app, ["gates", "list"])).output
    ):
        assert time.monotonic() < deadline and worker.is_alive(), listed.output
        time.sleep(0.5)
    wrong = runner.invoke(app, ["gates", "decide", "cli-run", "3", "skip"])
    assert wrong.exit_code == 2 and "no gate waits at epoch 3 of cli-run" in wrong.output
    done = runner.invoke(app, ["gates", "decide", "cli-run", "2", "skip"])
    assert done.exit_code == 0, done.output
    worker.join(timeout=120)
    assert states[0].is_completed()
    _, meta = read_edits(root / "cli/cli-run/gate_0002.parquet")
    assert (meta.decision, meta.source) == ("skip", "prefect")


def test_gate_timeout_follows_the_policy_and_logs_it(project):
    from pipelines.flow import RunSpec, guided_training

    _, cfg = project
    cfg = cfg.replace(
        **{"gate.timeout_s": 1, "gate.on_timeout": "stop", "tracking.edits_dir": "other"}
    )
    state = guided_training(cfg.to_dict(), RunSpec(name="timeout-run"), return_state=True)
    assert state.is_completed()
    assert state.result()["epochs_trained"] == 2  # stopped at the first gate
    wanted = "no decision within gate.timeout_s=1 s; applying gate.on_timeout=stop"
    assert wanted in "\n".join(flow_run_logs(state.state_details.flow_run_id))
    tags = mlflow_client().get_run(state.result()["mlflow_run_id"]).data.tags
    assert tags["gate.0002.decision"] == "stop" and tags["gate.0002.source"] == "timeout"


def test_dvc_repro_replay_reproduces_the_test_accuracy(guided, project):
    """The replay stage re-trains the run that dvc-params.yaml names (replay.run)."""
    root, _ = project
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    params = root / "dvc-params.yaml"
    params.write_text(params.read_text().replace("run: data/edits", "run: page-run"))
    repro = [sys.executable, "-m", "dvc", "repro", "replay"]
    subprocess.run(repro, cwd=root, env=env, check=True, capture_output=True)
    replayed = json.loads((root / "metrics/replay.json").read_text())
    assert replayed["test_accuracy"] == guided[0].result()["test_accuracy"]
    assert replayed["test_macro_f1"] == guided[0].result()["test_macro_f1"]


def test_a_failing_flow_ends_its_mlflow_run_failed(project, monkeypatch):
    import pipelines.tasks
    from hill_core.errors import HillError
    from pipelines.flow import RunSpec, guided_training

    _, cfg = project
    cfg = cfg.replace(**{"train.epochs": 3, "hill.gate_epochs": [2], "tracking.edits_dir": "other"})

    def broken_snapshot(*args, **kwargs):
        raise HillError("the snapshot cannot be taken")

    # The run trains to its first gate (its MLflow run is open), then fails there.
    monkeypatch.setattr(pipelines.tasks, "inspect_gate", broken_snapshot)
    spec = RunSpec(name="failing-run", autopilot="compactness")
    state = guided_training(cfg.to_dict(), spec, return_state=True)
    assert state.is_failed()
    client = mlflow_client()
    experiment = client.get_experiment_by_name("hill-digits").experiment_id
    (run,) = client.search_runs([experiment], "tags.`hill.run_name` = 'failing-run'")
    assert run.info.status == "FAILED"


def count_calls(monkeypatch, module, name: str) -> list[tuple]:
    """Count the calls of ``module.name`` however they reach it: through the module, or
    through the name another module imported (``from hill_core.config import from_dict``)."""
    original, calls = getattr(module, name), []

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    for loaded in list(sys.modules.values()):
        if getattr(loaded, "__dict__", {}).get(name) is original:
            monkeypatch.setattr(loaded, name, counting)
    return calls


def test_a_flow_run_parses_its_config_once_and_loads_its_data_once(project, monkeypatch):
    """Every task of a guided run and its lockstep baseline shares one parsed config and one
    loaded data set; the first epoch's start is marked when HILL_MARKS asks for it."""
    import hill_core.config
    import hill_core.data
    from pipelines.flow import RunSpec, guided_training
    from pipelines.marks import read_marks

    root, cfg = project
    # A seed no other test uses: this process's data cache cannot hold the split already.
    cfg = cfg.replace(**{"base.seed": 4242, "tracking.edits_dir": "once"})
    monkeypatch.setenv("HILL_MARKS", str(root / "once.marks"))
    parses = count_calls(monkeypatch, hill_core.config, "from_dict")
    loads = count_calls(monkeypatch, hill_core.data, "_load")
    summary = guided_training(cfg.to_dict(), RunSpec(name="once-run", autopilot="compactness"))
    assert summary["epochs_trained"] == 4 and summary["baseline"]["epochs_trained"] == 4
    assert len(parses) == 1, parses
    assert [args[1] for args in loads] == [4242]
    events = [event for _, _, event in read_marks(root / "once.marks")]
    assert events[0] == "epoch-start once-run 1"
    assert "epoch-start once-run-baseline 3" in events  # forked at the first gate, epoch 2

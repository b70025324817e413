"""Crash recovery: SIGKILL a run mid-segment or at a gate, then `hill resume` it.

Real processes (the `hill` command), a real Prefect API, MLflow and DVC. The resumed run must
end with the very weights of an uninterrupted run, in the same MLflow run, with each gate's
edits recorded once: never lost, never repeated.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from flow_helpers import GateAnswerer, mlflow_client, prefect_project, via_page

from hill_core.edits import file_sha256
from pipelines.flow import RunSpec, guided_training

pytestmark = pytest.mark.slow

HILL = str(Path(sys.executable).parent / "hill")
LONG = ["train.epochs=12", "hill.gate_epochs=[3]"]  # a long second segment to kill inside


@pytest.fixture
def project(tmp_path):
    with prefect_project(tmp_path) as (root, cfg):
        yield root, cfg


def start(root: Path, *args: str) -> subprocess.Popen:
    """`hill ARGS` in its own process, on the test's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    path = root / f"hill-{time.monotonic_ns()}.log"
    with open(path, "w") as log:
        process = subprocess.Popen([HILL, *args], cwd=root, env=env, stdout=log, stderr=log)
    process.log = path
    return process


def wait_for(condition, process: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"hill exited early with {process.returncode}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def finish(process: subprocess.Popen, timeout: float = 300.0) -> None:
    assert process.wait(timeout=timeout) == 0, "hill failed; see its log in the project"


def final_weights(root: Path, run: str) -> dict[str, torch.Tensor]:
    import json

    summary = json.loads((root / "runs" / run / "summary.json").read_text())
    return torch.load(root / summary["checkpoint"], weights_only=True)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def mlflow_runs(name: str):
    client = mlflow_client()
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, f"tags.`hill.run_name` = '{name}'")


def logged_epochs(name: str) -> int:
    """The last epoch whose val_acc reached MLflow (0 before the run exists)."""
    runs = mlflow_runs(name)
    if not runs:
        return 0
    history = mlflow_client().get_metric_history(runs[0].info.run_id, "val_acc")
    return max((m.step for m in history), default=0)


def test_sigkill_mid_segment_then_resume(project):
    root, cfg = project
    sets = [f"-S{s}" for s in LONG]
    run = start(root, "run", "--autopilot", "compactness", "--name", "cut", "--no-progress", *sets)
    edits = root / "data/edits/cut/gate_0003.parquet"
    wait_for(edits.exists, run)
    recorded = file_sha256(edits)
    wait_for(lambda: logged_epochs("cut") >= 6, run)  # well inside the segment of epochs 4..12
    kill(run)
    assert not list((root / "runs/cut").glob("ckpt_epoch_0012*")), "killed too late"
    (killed,) = mlflow_runs("cut")
    assert killed.info.status == "RUNNING"  # nobody could close it

    finish(start(root, "resume", "cut", "--no-progress"))
    reference = cfg.replace(**{"train.epochs": 12, "hill.gate_epochs": [3]})
    guided_training(reference.to_dict(), RunSpec(name="whole", autopilot="compactness"))

    assert_same_weights(final_weights(root, "cut"), final_weights(root, "whole"))
    assert file_sha256(edits) == recorded  # the edit was neither lost nor made again
    (resumed,) = mlflow_runs("cut")  # the same MLflow run, finished, with every epoch
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    steps = {m.step for m in mlflow_client().get_metric_history(resumed.info.run_id, "val_acc")}
    assert steps == set(range(1, 13))
    assert resumed.data.tags["gate.0003.decision"] == "approve"
    # Defect D: the tags follow the flow run that went on, and the dead process's note goes.
    flow_run = "hill.prefect_flow_run_id"
    assert resumed.data.tags[flow_run] not in ("", killed.data.tags[flow_run])
    assert "hill.ended" not in resumed.data.tags


def flow_run_state(flow_run_id) -> str:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state.name


def test_sigkill_at_gate_and_after_the_decision_then_resume(project):
    root, cfg = project
    run = start(root, "run", "--name", "gated", "--no-progress", "-Strain.epochs=6",
                "-Shill.gate_epochs=[3]")  # fmt: skip
    with GateAnswerer(lambda gate: {}) as watcher:  # notes the gate, answers nothing
        wait_for(lambda: watcher.seen, run)
    alive = start(root, "resume", "gated")  # refused while the first process lives
    assert alive.wait(timeout=120) == 2
    refusal = alive.log.read_text()
    assert f"gated is still running (pid {run.pid})" in refusal and "Traceback" not in refusal
    kill(run)  # at the gate: nothing recorded yet

    resumed = start(root, "resume", "gated", "--no-progress")
    dead = watcher.seen[0].flow_run_id
    wait_for(lambda: flow_run_state(dead) == "Crashed", resumed)  # `hill resume` ended it
    edits = root / "data/edits/gated/gate_0003.parquet"
    with GateAnswerer(via_page("approve")) as person:
        wait_for(edits.exists, resumed)
    assert not person.errors
    kill(resumed)  # right after the decision was recorded, before training on it
    recorded = file_sha256(edits)
    assert [g.epoch for g in person.seen] == [3]

    last = start(root, "resume", "gated", "--no-progress")  # must not ask the gate again
    finish(last)
    assert "Version the edits in git: git add data/edits/gated/" in last.log.read_text()
    reference = cfg.replace(**{"train.epochs": 6, "hill.gate_epochs": [3]})
    with GateAnswerer(via_page("approve")):
        guided_training(reference.to_dict(), RunSpec(name="gated-whole"))

    assert_same_weights(final_weights(root, "gated"), final_weights(root, "gated-whole"))
    assert file_sha256(edits) == recorded
    (mlrun,) = mlflow_runs("gated")
    assert mlrun.info.status == "FINISHED" and mlrun.data.tags["gate.0003.source"] == "page"


def test_a_prefect_retry_of_the_flow_resumes_instead_of_retraining(project, monkeypatch):
    """A flow run that fails after its first segment and is retried by Prefect replays that
    segment from its checkpoint (not trained again) and ends as one hill run."""
    from pipelines import flow

    root, cfg = project
    failures = []

    def flaky_snapshot(*args, **kwargs):
        if not failures:
            failures.append("once")
            raise RuntimeError("the machine hiccuped")
        return inspect_gate(*args, **kwargs)

    inspect_gate = flow.tasks.inspect_gate
    monkeypatch.setattr(flow.tasks, "inspect_gate", flaky_snapshot)
    retried = flow.guided_training.with_options(retries=1, retry_delay_seconds=0)
    spec = RunSpec(autopilot="compactness")  # no name: the flow run fixes it
    first_segment = []

    def note_first_segment(*args, **kwargs):
        out = train(*args, **kwargs)
        first_segment.append((out[0].path, out[0].reused, Path(out[0].path).stat().st_mtime_ns))
        return out

    train = flow.tasks.train
    monkeypatch.setattr(flow.tasks, "train", note_first_segment)
    summary = retried(cfg.to_dict(), spec)

    assert failures == ["once"]
    path = first_segment[0][0]
    tries = [entry for entry in first_segment if entry[0] == path]
    assert len(tries) == 2 and not tries[0][1] and tries[1][1]  # trained once, then replayed
    assert tries[0][2] == tries[1][2]  # the checkpoint file was not written again
    assert len(mlflow_runs(summary["run_name"])) == 1

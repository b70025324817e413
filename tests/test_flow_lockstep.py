"""The lockstep story through Prefect: the flow equals the in-process loop; `hill study`.

Same tiny project as test_flow_guided.py (digits, 4 epochs, gates after 2 and 3), its own
Prefect test server and MLflow store.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from flow_helpers import mlflow_client, prefect_project

from hill_core.checkpoint import read_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    with prefect_project(tmp_path_factory.mktemp("lockstep")) as (root, cfg):
        yield root, cfg


def test_the_flow_and_the_in_process_loop_train_the_same_weights(project):
    """One story (hill_core.loop.drive), one training loop: Prefect tasks over checkpoint
    files and the in-process loop give the same weights, guard verdicts included."""
    from hill_core.data import load_data
    from hill_core.loop import autopilot_answers, run_guided
    from pipelines.flow import RunSpec, guided_training

    root, cfg = project
    cfg = cfg.replace(**{"model.dropout": 0.3, "hill.guard": "revert"})
    flow_run = guided_training(cfg.to_dict(), RunSpec(name="parity", autopilot="separation"))

    answer = autopilot_answers("separation", root / "in-process")
    in_process = run_guided(cfg, load_data(cfg.data, cfg.base.seed), answer)
    for flow_summary, state in [
        (flow_run, in_process.state),
        (flow_run["baseline"], in_process.baseline),
    ]:
        weights = read_checkpoint(flow_summary["checkpoint"])["model"]
        assert all(torch.equal(weights[k], v) for k, v in state.model.state_dict().items())
    assert flow_run["test_accuracy"] == in_process.test.accuracy
    reverts = sum(v.action == "revert" for v in in_process.progress.verdicts)
    assert flow_run["guard_reverts"] == reverts


def test_study_runs_pairs_under_one_parent_and_resumes(project):
    """`hill study`'s flow: pairs as flow runs under one parent, CSV and plot, and a resume
    that re-runs only the pair that was missing."""
    from pipelines.study import pair_file, run_study

    root, cfg = project
    cfg = cfg.replace(**{"train.epochs": 3, "hill.gate_epochs": [2]})
    text = run_study(cfg, ["noedit", "compactness"], [0, 1], "st", None)
    folder = root / cfg.base.run_dir / "st"
    rows = pd.read_csv(folder / "study.csv")
    assert sorted(zip(rows["strategy"], rows["seed"], strict=True)) == [
        ("compactness", 0), ("compactness", 1), ("noedit", 0), ("noedit", 1),
    ]  # fmt: skip
    noedit = rows[rows["strategy"] == "noedit"]
    assert (noedit["test_acc"] == noedit["baseline_test_acc"]).all()
    assert (folder / "study.png").stat().st_size > 0 and "noedit" in text
    client = mlflow_client()
    parent = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.`hill.mode` = 'study'",
    )
    (parent,) = parent
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    assert len(children) == 8  # 2 seeds x 2 strategies, each a guided run and its baseline
    pair_file(folder, 1, "compactness").unlink()
    run_study(cfg, ["noedit", "compactness"], [0, 1], "st", None)
    guided = client.search_runs(
        [parent.info.experiment_id],
        filter_string="tags.`hill.mode` = 'guided' and tags.`hill.user` = 'compactness'",
    )
    # The missing pair ran again under its name: it resumed its own MLflow run (no new one).
    assert len(guided) == 2 and {r.info.status for r in guided} == {"FINISHED"}
    assert len(pd.read_csv(folder / "study.csv")) == 4

"""Label corrections through the Prefect flow: the oracle's relabels reach training, MLflow and
DVC, a later gate shows them, and a replay from the edits files gives the same weights."""

from __future__ import annotations

import pytest
import torch
from flow_helpers import mlflow_client, prefect_project

from hill_core.checkpoint import read_checkpoint
from hill_core.edits import read_edits, read_snapshot

pytestmark = pytest.mark.slow

NOISY = {"data.label_noise": 0.3, "hill.budget": 5, "hill.suspects": 20}


@pytest.fixture(scope="module")
def corrected(tmp_path_factory):
    """An oracle-answered guided run on 30 % flipped labels, and its replay."""
    from pipelines.flow import RunSpec, guided_training

    with prefect_project(tmp_path_factory.mktemp("project")) as (root, cfg):
        cfg = cfg.replace(**NOISY)
        run = guided_training(cfg.to_dict(), RunSpec(name="fixed", autopilot="oracle"))
        edits = str(root / "data/edits/fixed")
        replay = guided_training(
            cfg.to_dict(), RunSpec(name="again", mode="replay", replay_from=edits)
        )
        yield root, run, replay


def test_corrections_are_recorded_versioned_and_shown_at_the_next_gate(corrected):
    root, _, _ = corrected
    first, meta = read_edits(root / "data/edits/fixed/gate_0002.parquet")
    assert meta.schema_version == 2 and meta.num_classes == 10
    fixed = first[first["label_after"] != first["label"]]
    assert len(fixed) >= 3
    assert (root / "data/edits/fixed/gate_0002.parquet.dvc").is_file()
    later, _ = read_snapshot(root / "runs/fixed/snapshot_0003.parquet")
    shown = later.set_index("sample_id").loc[fixed["sample_id"]]
    assert (shown["current_label"].to_numpy() == fixed["label_after"].to_numpy()).all()
    assert shown["suspect_score"].notna().any()


def test_mlflow_has_the_counts_and_the_corrections_table(corrected):
    _, run, _ = corrected
    client = mlflow_client()
    guided = client.get_run(run["mlflow_run_id"]).data.metrics
    assert guided["gate_items_relabelled"] >= 3 and guided["items_relabelled"] >= 3
    baseline = client.get_run(run["baseline"]["mlflow_run_id"]).data.metrics
    assert baseline["items_relabelled"] == 0  # the no-person counterfactual
    listed = {a.path for a in client.list_artifacts(run["mlflow_run_id"], "corrections")}
    assert "corrections/gate.0002_corrections.csv" in listed


def test_a_replay_of_a_corrected_run_gives_the_same_weights(corrected):
    _, run, replay = corrected
    a = read_checkpoint(run["checkpoint"])["model"]
    b = read_checkpoint(replay["checkpoint"])["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    base = read_checkpoint(run["baseline"]["checkpoint"])["model"]
    assert not all(torch.equal(a[k], base[k]) for k in a)

"""The `hill` CLI: help, config errors, `hill compare` on recorded pairs, and one real run."""

from __future__ import annotations

import pytest
import yaml
from flow_helpers import TINY, make_project
from typer.testing import CliRunner

from hill_core.config import load_config
from pipelines.cli import app
from pipelines.tracking import Tracker, pair_runs

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("train: {epochs: 4}\nhill: {gate_epochs: [2]}\n")
    return tmp_path


@pytest.mark.parametrize("command", ["run", "replay", "compare", "gate", "serve", "demo"])
def test_every_command_explains_itself(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output and len(result.output) > 300


def test_a_wrong_override_names_the_key(workdir):
    result = runner.invoke(app, ["run", "-S", "train.epoch=5"])
    assert result.exit_code == 2
    assert "unknown key train.epoch" in result.output


def test_an_unknown_strategy_is_refused(workdir):
    result = runner.invoke(app, ["run", "--autopilot", "telepathy"])
    assert result.exit_code == 2 and "compactness" in result.output


def test_replay_refuses_a_config_that_trains_differently(workdir):
    folder = workdir / "data/edits/old-run"
    folder.mkdir(parents=True)
    (folder / "gate_0004.parquet").write_bytes(b"")
    (folder / "config.yaml").write_text(yaml.safe_dump(load_config(None).to_dict()))
    result = runner.invoke(app, ["replay", "old-run", "-S", "train.lr=0.5"], terminal_width=300)
    assert result.exit_code == 2
    assert "train.epochs=4 (recorded 12)" in result.output and "train.lr=0.5" in result.output


def record_pair(cfg, name: str, guided_acc: float, baseline_acc: float) -> None:
    """A guided run and its baseline as the flow records them (metrics only, no training)."""
    curves = {"guided": [0.80, 0.90, 0.93, guided_acc], "baseline": [0.80, 0.90, 0.92, 0.94]}
    ids = {}
    for mode, accs in curves.items():
        tags = {"hill.mode": mode, "hill.user": "compactness" if mode == "guided" else "none"}
        with Tracker.start(cfg, f"{name}-{mode}", tags) as tracker:
            tracker.log_history([{"epoch": e, "val_acc": a} for e, a in enumerate(accs, 1)])
            if mode == "guided":
                tracker.log_history([{"epoch": e, "gate_val_acc": accs[e - 1]} for e in (2, 3)])
            test = guided_acc if mode == "guided" else baseline_acc
            tracker.log_history([{"epoch": 4, "test_acc": test, "test_f1": test - 0.01}])
        ids[mode] = tracker.run_id
    pair_runs(ids["guided"], ids["baseline"])


def test_compare_shows_two_recorded_pairs(workdir):
    cfg = load_config(None, TINY)
    record_pair(cfg, "first", guided_acc=0.95, baseline_acc=0.94)
    record_pair(cfg, "second", guided_acc=0.93, baseline_acc=0.94)
    result = runner.invoke(app, ["compare", "--out", "cmp.png"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    first = next(line for line in lines if line.strip().startswith("first-guided"))
    second = next(line for line in lines if line.strip().startswith("second-guided"))
    assert "95.00%" in first and "+1.00 pp" in first and "e3:+1.0 e4:+1.0" in first
    assert "-1.00 pp" in second
    assert "mlflow ui --backend-store-uri sqlite:///mlflow.db" in result.output
    assert (workdir / "cmp.png").stat().st_size > 10_000


@pytest.mark.slow
def test_run_with_autopilot_records_a_compared_pair(tmp_path, monkeypatch):
    from prefect.testing.utilities import prefect_test_harness

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / ".prefect"))
    monkeypatch.chdir(tmp_path)
    make_project(tmp_path)
    with prefect_test_harness():
        result = runner.invoke(
            app, ["run", "--autopilot", "fix-outliers", "--no-progress", "--metrics", "m.json"]
        )
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "-baseline: test accuracy" in result.output
    assert (tmp_path / "m.json").is_file()
    compared = runner.invoke(app, ["compare"])
    assert "fix-outliers" in compared.output and (tmp_path / "runs/compare.png").is_file()

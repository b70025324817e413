"""The `hill` CLI: help, config errors, `hill compare` on recorded pairs, and one real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from flow_helpers import TINY, make_project, prefect_test_server
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


def record_pair(
    cfg, name: str, guided_acc: float, baseline_acc: float, stop_at: int | None = None
) -> None:
    """A guided run and its baseline as the flow records them (metrics only, no training);
    ``stop_at``: the guided run was stopped at its gate after that epoch."""
    curves = {"guided": [0.80, 0.90, 0.93, guided_acc], "baseline": [0.80, 0.90, 0.92, 0.94]}
    if stop_at is not None:
        curves["guided"] = curves["guided"][:stop_at]
    ids = {}
    for mode, accs in curves.items():
        tags = {"hill.mode": mode, "hill.user": "compactness" if mode == "guided" else "none"}
        with Tracker.start(cfg, f"{name}-{mode}", tags) as tracker:
            tracker.log_history([{"epoch": e, "val_acc": a} for e, a in enumerate(accs, 1)])
            if mode == "guided":
                gates = [e for e in (2, 3) if e <= len(accs)]
                tracker.log_history([{"epoch": e, "gate_val_acc": accs[e - 1]} for e in gates])
                if stop_at is not None:
                    tracker.set_tag(f"gate.{stop_at:04d}.decision", "stop")
            test = guided_acc if mode == "guided" else baseline_acc
            step = len(accs)
            tracker.log_history([{"epoch": step, "test_acc": test, "test_f1": test - 0.01}])
        ids[mode] = tracker.run_id
    pair_runs(ids["guided"], ids["baseline"])


@pytest.mark.slow
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
    assert f"mlflow ui --backend-store-uri sqlite:///{workdir.resolve()}/mlflow.db" in result.output
    assert (workdir / "cmp.png").stat().st_size > 10_000
    assert "Note:" not in result.output  # both pairs trained all their epochs


@pytest.mark.slow
def test_compare_says_when_a_run_stopped_early(workdir):
    cfg = load_config(None, TINY)
    record_pair(cfg, "short", guided_acc=0.95, baseline_acc=0.94, stop_at=2)
    result = runner.invoke(app, ["compare", "--out", "cmp.png"], terminal_width=300)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "short-guided " in line)
    assert "2 vs 4" in row
    assert (
        "Note: short-guided: stopped at the gate after epoch 2; guided trained 2 epochs, "
        "its baseline 4" in result.output
    )


def test_compare_footer_names_the_tracking_server(monkeypatch):
    from pipelines.compare import browse_hint

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert browse_hint() == "Browse the runs: http://mlflow.example:5000 (the MLflow server's UI)"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////srv/hill/mlflow.db")
    assert "mlflow ui --backend-store-uri sqlite:////srv/hill/mlflow.db" in browse_hint()


@pytest.mark.slow
def test_compare_plot_with_many_pairs_keeps_bars_clear():
    """7 and 23 pairs: one colour per pair, the bar axis from 0, both legends outside."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from pipelines.plots import compare_figure

    for n in (7, 23):
        names = [f"digits-guided-2026112{i % 10}-21{i:04d}" for i in range(n)]
        table = pd.DataFrame(
            {
                "guided": names,
                "test_acc_guided": [0.95 + 0.001 * i for i in range(n)],
                "test_acc_baseline": [0.96] * n,
            }
        )
        curve = {e: 0.8 + 0.04 * e for e in range(1, 5)}
        fig = compare_figure(table, [(g, curve, f"{g}-baseline", curve) for g in names])
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        bars, lines = fig.axes
        assert bars.get_ylim()[0] == 0.0
        guided_bars = bars.patches[n:]
        assert len({p.get_facecolor() for p in guided_bars}) == n  # no colour repeats
        assert len({line.get_color() for line in lines.get_lines()}) == n
        renderer = canvas.get_renderer()
        for ax in (bars, lines):
            legend = ax.get_legend().get_window_extent(renderer)
            assert not legend.overlaps(ax.get_window_extent(renderer)), (n, ax)
        assert sum(t.get_text().endswith(" pp") for t in bars.texts) == n  # deltas written


def test_version():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"hill {version('hill')}"


def _help_texts(command) -> list[str]:
    texts = [command.help or ""] + [getattr(p, "help", "") or "" for p in command.params]
    for sub in getattr(command, "commands", {}).values():
        texts += _help_texts(sub)
    return texts


def test_help_texts_keep_their_angle_brackets():
    """Rich markdown drops a bare `<run>` as an HTML tag: every one written must show."""
    import re

    import typer

    group = typer.main.get_command(app)
    written = {t for text in _help_texts(group) for t in re.findall(r"<[a-z_.-]+>", text)}
    assert {"<run>", "<data>"} <= written
    shown = ""
    for path in [[], *[[c] for c in group.commands], ["gates", "serve"], ["gates", "decide"]]:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        shown += result.output
    assert sorted(t for t in written if t not in shown) == []
    gate = runner.invoke(app, ["gate", "--help"], env={"COLUMNS": "200"}).output
    assert "runs/<run>/snapshot_*.parquet" in gate
    run_help = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    assert "(default: <data>-<mode>-<time>)" in run_help


def test_baseline_with_autopilot_is_refused_in_one_line(workdir):
    result = runner.invoke(app, ["run", "--baseline", "--autopilot", "merge"])
    assert result.exit_code == 2
    assert result.output.startswith("hill: --baseline trains without gates")
    assert len(result.output.strip().splitlines()) == 1


def test_gate_epochs_error_shows_the_values(workdir):
    result = runner.invoke(app, ["run", "-S", "train.epochs=3", "-S", "hill.gate_epochs=[2, 4]"])
    assert result.exit_code == 2
    assert "hill.gate_epochs=[2, 4] must lie in [hill.freeze_epoch, train.epochs) = [1, 3)" in (
        result.output
    )


@pytest.fixture
def no_training(monkeypatch):
    """`hill run` up to the flow call: the config and spec it would start, a fake summary."""
    import pipelines.launch

    started = []

    def flow(config, spec):
        started.append((config, spec))
        base = {"test_accuracy": 0.9, "test_macro_f1": 0.89, "epochs_trained": 6}
        return {**base, "run_name": spec.name or "r", "mlflow_run_id": "abc", "baseline": None}

    monkeypatch.setattr(pipelines.launch, "launch", lambda cfg, spec: flow(cfg.to_dict(), spec))
    return started


def test_baseline_ignores_gate_epochs(workdir, no_training):
    """`dvc exp run -S train.epochs=6` on params with gates at 4 and 8: a baseline has none."""
    (workdir / "params.yaml").write_text("train: {epochs: 12}\nhill: {gate_epochs: [4, 8]}\n")
    result = runner.invoke(
        app, ["run", "--baseline", "-S", "train.epochs=6", "--metrics", "m/b.json"]
    )
    assert result.exit_code == 0, result.output
    ((config, spec),) = no_training
    assert config["hill"]["gate_epochs"] == [] and config["hill"]["alpha"] == 0.0
    assert config["train"]["epochs"] == 6 and spec.mode == "baseline"
    assert json.loads((workdir / "m/b.json").read_text())["epochs_trained"] == 6
    guided = runner.invoke(app, ["run", "-S", "train.epochs=6"])
    assert guided.exit_code == 2 and "hill.gate_epochs=[4, 8]" in guided.output


def test_git_add_needs_a_git_work_tree(workdir, no_training):
    result = runner.invoke(app, ["run", "--git-add", "--autopilot", "merge"])
    assert result.exit_code == 2 and "not in a git work tree" in result.output
    assert not no_training


def test_guided_metrics_carry_the_baseline():
    from pipelines.cli import metrics_of

    base = {"test_accuracy": 0.9, "test_macro_f1": 0.8, "epochs_trained": 4}
    scores = metrics_of({**base, "test_accuracy": 0.92, "baseline": base})
    assert scores["baseline_test_accuracy"] == 0.9 and scores["epochs_trained"] == 4
    assert scores["delta_accuracy_pp"] == pytest.approx(2.0)
    assert set(metrics_of(base)) == {"test_accuracy", "test_macro_f1", "epochs_trained"}


def test_end_of_run_prints_the_git_add_of_new_pointers(tmp_path, monkeypatch, capsys):
    """What git should take of a run's edits: pointers, .gitignore, config; never the Parquet."""
    import subprocess

    from pipelines.cli import _report
    from pipelines.flow import edits_pointers, git_add_edits

    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    folder = tmp_path / "data/edits/run-1"
    folder.mkdir(parents=True)
    files = {"gate_0002.parquet": "x", "gate_0002.parquet.dvc": "outs: []\n"}
    files |= {".gitignore": "/gate_0002.parquet\n", "config.yaml": "{}\n"}
    for name, text in files.items():
        (folder / name).write_text(text)
    cfg = load_config(None)
    names = (".gitignore", "config.yaml", "gate_0002.parquet.dvc")  # not the Parquet: DVC's
    wanted = [Path(f"data/edits/run-1/{n}") for n in names]
    assert edits_pointers(cfg, "run-1") == wanted
    summary = {"test_accuracy": 0.9, "test_macro_f1": 0.8, "epochs_trained": 4}
    _report({**summary, "run_name": "run-1", "mlflow_run_id": "x"}, None, cfg, git_add=False)
    assert f"git add {' '.join(map(str, wanted))}" in capsys.readouterr().out
    added, problem = git_add_edits(folder)
    assert problem == "" and sorted(added) == sorted(tmp_path / p for p in wanted)
    assert edits_pointers(cfg, "run-1") == []
    staged = subprocess.run(["git", "diff", "--cached", "--name-only"], capture_output=True,
                            text=True, check=True).stdout.split()  # fmt: skip
    assert sorted(staged) == sorted(map(str, wanted))


@pytest.mark.slow
def test_run_with_autopilot_records_a_compared_pair(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / ".prefect"))
    monkeypatch.chdir(tmp_path)
    make_project(tmp_path)
    with prefect_test_server():
        result = runner.invoke(
            app, ["run", "--autopilot", "fix-outliers", "--no-progress", "--metrics", "m.json"]
        )
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "-baseline: test accuracy" in result.output
    assert "Version the edits in git: git add data/edits/" in result.output
    assert json.loads((tmp_path / "m.json").read_text())["baseline_epochs_trained"] == 4
    compared = runner.invoke(app, ["compare"])
    assert "fix-outliers" in compared.output and (tmp_path / "runs/compare.png").is_file()

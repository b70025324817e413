"""With the Prefect and MLflow servers down (their URLs set, nothing listening), every `hill`
command that needs them says so in one line, exit code 2, no traceback, before any training.

Also: `hill gates list` and `hill gates decide` with no server at all refuse in one line rather
than start a temporary Prefect server that would answer "none".
"""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from app_helpers import synthetic_snapshot
from flow_helpers import make_project
from typer.testing import CliRunner

from hill_core.edits import EditsMeta, make_edits, write_edits
from pipelines.cli import app
from pipelines.paths import config_yaml

runner = CliRunner()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = make_project(tmp_path)
    # a run to resume, and a guided run's recorded edits to replay
    run = tmp_path / "runs/r"
    run.mkdir(parents=True)
    spec = {"name": "r", "mode": "guided", "autopilot": "noedit"}
    (run / "flow_params.json").write_text(json.dumps({"config": cfg.to_dict(), "spec": spec}))
    edits = tmp_path / "data/edits/rec"
    edits.mkdir(parents=True)
    (edits / "config.yaml").write_text(config_yaml(cfg))
    snapshot = synthetic_snapshot(20)
    for epoch in cfg.hill.gate_epochs:
        table = make_edits(snapshot, snapshot["x"], snapshot["y"], np.zeros(20, bool), "rec", epoch)
        write_edits(edits / f"gate_{epoch:04d}.parquet", table, EditsMeta(cfg.hash()))
    return tmp_path


@pytest.fixture
def down(project, monkeypatch):
    """PREFECT_API_URL and MLFLOW_TRACKING_URI at ports where nothing listens."""
    prefect = f"http://127.0.0.1:{closed_port()}/api"
    mlflow = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("PREFECT_API_URL", prefect)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow)
    return prefect, mlflow


COMMANDS = {
    "run": (["run", "--autopilot", "noedit"], "prefect"),
    "run --baseline": (["run", "--baseline"], "prefect"),
    "replay": (["replay", "rec"], "prefect"),
    "resume": (["resume", "r"], "prefect"),
    "study": (["study", "--strategies", "noedit", "--seeds", "2"], "prefect"),
    "deploy": (["deploy"], "prefect"),
    "serve": (["serve", "--cron", "0 3 * * *"], "prefect"),
    "demo": (["demo", "--autopilot", "noedit"], "prefect"),
    "gates list": (["gates", "list"], "prefect"),
    "gates decide": (["gates", "decide", "r", "2", "approve"], "prefect"),
    "gates serve": (["gates", "serve", "--port", "0"], "prefect"),
    "compare": (["compare"], "mlflow"),
}


@pytest.mark.parametrize("command", list(COMMANDS), ids=list(COMMANDS))
def test_a_server_that_is_down_is_one_line(down, command):
    args, which = COMMANDS[command]
    url = down[0] if which == "prefect" else down[1]
    result = runner.invoke(app, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("hill: "), result.output
    assert url in lines[0] and "does not answer" in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["gates", "list"],
        ["gates", "decide", "r", "2", "approve"],
        ["gates", "serve", "--port", "0"],
    ],
)
def test_gates_commands_start_no_temporary_server(project, monkeypatch, args):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr("pipelines.servers.prefect_setting", lambda: "")  # no profile setting
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "no Prefect server is running here" in result.output
    assert "Starting temporary server" not in result.output

"""`dvc exp run` and `dvc exp show` on the baseline and guided stages, in a tmp git + DVC project.

The stages run `hill run` as DVC runs them (a subprocess with its own ephemeral Prefect and the
project's mlflow.db); a few epochs of digits keep each experiment under a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flow_helpers import QUIET, make_project

pytestmark = pytest.mark.slow

GIT_USER = {
    "GIT_AUTHOR_NAME": "hill tests",
    "GIT_AUTHOR_EMAIL": "tests@hill.invalid",
    "GIT_COMMITTER_NAME": "hill tests",
    "GIT_COMMITTER_EMAIL": "tests@hill.invalid",
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A committed tmp project (experiments need a commit) and the environment to run dvc in."""
    root = tmp_path_factory.mktemp("dvc-exp")
    make_project(root)
    (root / ".gitignore").write_text("/runs/\n/mlflow.db\n/mlartifacts/\n/.prefect/\n")
    env = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")
    }
    env |= {**QUIET, **GIT_USER, "PREFECT_HOME": str(root / ".prefect")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `hill` for stages
    git(root, env, "add", "-A")
    git(root, env, "commit", "-q", "-m", "project")
    return root, env


def git(root: Path, env: dict, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def dvc(root: Path, env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def experiments(root: Path, env: dict) -> dict[str, dict]:
    """`dvc exp show --json`: experiment name -> {metrics file: its data, "rev": its commit}."""
    found = {}

    def walk(node) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if node.get("name") and isinstance(data, dict) and "metrics" in data:
                metrics = data["metrics"] or {}
                found[node["name"]] = {f: m["data"] for f, m in metrics.items() if "data" in m}
                found[node["name"]]["rev"] = node.get("rev") or data.get("rev")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(dvc(root, env, "exp", "show", "--json")))
    return found


def test_baseline_experiment_ignores_the_gates(repo):
    """params.yaml gates at 2 and 3: a 3-epoch baseline used to fail validating them."""
    root, env = repo
    out = dvc(root, env, "exp", "run", "baseline", "-S", "train.epochs=3")
    assert "Ran experiment(s)" in out
    shown = experiments(root, env)
    runs = [m["metrics/baseline.json"] for m in shown.values() if "metrics/baseline.json" in m]
    assert runs and runs[0]["epochs_trained"] == 3
    assert 0.5 < runs[0]["test_accuracy"] <= 1.0


def test_guided_experiment_carries_its_baseline_and_edits(repo):
    root, env = repo
    dvc(root, env, "exp", "run", "guided", "-S", "train.epochs=3", "-S", "hill.gate_epochs=[2]")
    shown = experiments(root, env)
    (name,) = [n for n, m in shown.items() if "metrics/guided.json" in m]
    scores = shown[name]["metrics/guided.json"]
    assert scores["epochs_trained"] == scores["baseline_epochs_trained"] == 3
    delta = 100 * (scores["test_accuracy"] - scores["baseline_test_accuracy"])
    assert scores["delta_accuracy_pp"] == pytest.approx(delta)
    assert any("metrics/baseline.json" in m for m in shown.values())  # both listed
    # --git-add staged the gate's pointer, so the experiment's commit holds it
    files = git(root, env, "ls-tree", "-r", "--name-only", shown[name]["rev"]).split()
    pointers = [f for f in files if f.startswith("data/edits/") and f.endswith(".dvc")]
    assert [Path(p).name for p in pointers] == ["gate_0002.parquet.dvc"]
    assert any(f.endswith("/config.yaml") and f.startswith("data/edits/") for f in files)

"""A user's own model or data that does not fit: one `hill:` line, exit code 2, no run folder.

One probe per mistake of docs/models.md and docs/data.md, each through `hill run` as a user
types it, in a project that holds the user's package (tests/user_code.py).
"""

from __future__ import annotations

import pytest
import torch
from flow_helpers import make_project
from typer.testing import CliRunner
from user_code import write_user_package

from hill_core.imports import import_object
from pipelines.cli import app

runner = CliRunner()
GOOD_MODEL = ["-S", "model.name=userpkg.models:build", "-S", "model.latent=body.proj"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    make_project(tmp_path)
    write_user_package(tmp_path)
    # Weights of another architecture: the same network for 7 classes, not 10.
    build = import_object("userpkg.models:build", "test")  # from the working directory
    torch.save(build(7, (1, 8, 8)).state_dict(), tmp_path / "seven.pt")
    return tmp_path


PROBES = {
    "import path does not resolve": (
        ["-S", "model.name=userpkg.modles:build", "-S", "model.latent=body.proj"],
        "model.name: cannot import 'userpkg.modles'",
    ),
    "factory returns the wrong type": (
        ["-S", "model.name=userpkg.models:not_a_module", "-S", "model.latent=x"],
        "returned a str, not a torch.nn.Module",
    ),
    "latent names no module": (
        ["-S", "model.name=userpkg.models:build", "-S", "model.latent=body.projection"],
        "modules: body, body.conv, body.norm, body.relu, body.flat, body.proj, drop, out",
    ),
    "latent output is not (B, ...)": (
        ["-S", "model.name=userpkg.models:pair_net", "-S", "model.latent=pair"],
        "model.latent: 'pair' outputs tuple for a batch of 2",
    ),
    "labels outside the class names": (
        ["-S", "data.name=userpkg.data:bad_labels", *GOOD_MODEL],
        "outside its 10 class names",
    ),
    "weights do not match the architecture": (
        [*GOOD_MODEL, "-S", "model.weights=seven.pt"],
        "model.weights: seven.pt does not fit userpkg.models:build (out.weight is (7, 12)",
    ),
}


@pytest.mark.parametrize("probe", list(PROBES), ids=list(PROBES))
def test_a_user_model_or_data_mistake_is_one_line_before_any_work(project, probe):
    args, expected = PROBES[probe]
    result = runner.invoke(app, ["run", "--autopilot", "noedit", *args])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("hill: "), result.output
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not (project / "runs").exists() and not (project / "data/edits").exists()

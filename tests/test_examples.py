"""The examples/ folder, run as a user runs it (CI runs these): the notebook-style script
through the Python API, and the torchvision resnet18 config on an image folder.

Each runs in a project of its own that holds a copy of examples/, in a process of its own on the
test's Prefect API.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from data_writers import write_imagefolder
from flow_helpers import prefect_project
from user_code import copy_examples

pytestmark = pytest.mark.slow
HILL = f"{sys.prefix}/bin/hill"


@pytest.fixture
def project(tmp_path):
    with prefect_project(tmp_path) as (root, _):
        copy_examples(root)
        yield root


def run(root, *command: str) -> str:
    """``command`` in ``root``, on the test's Prefect API; its output (stdout + stderr)."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout + done.stderr


def test_the_notebook_script_guides_the_example_network_through_the_python_api(project):
    output = run(project, sys.executable, "examples/notebook.py")
    found = re.search(r"(\S+): test accuracy (\S+), baseline (\S+) \((\S+)\): ([-+]\S+) pp", output)
    assert found, output[-3000:]
    name, accuracy, baseline, baseline_name, delta = found.groups()
    assert name.startswith("digit-splits-guided-") and baseline_name == f"{name}-baseline"
    assert accuracy == baseline and delta == "+0.00"  # noedit: the baseline, bit for bit
    assert (project / "runs" / name / "summary.json").is_file()


def test_the_resnet18_config_runs_guided_on_an_image_folder(project):
    write_imagefolder(project / "data/images", per_class=8)
    output = run(project, HILL, "run", "--params", "examples/resnet18_imagefolder.yaml",
                 "-S", "base.device=cpu", "-S", "train.epochs=3", "-S", "hill.gate_epochs=[2]",
                 "--autopilot", "compactness", "--name", "rn", "--no-progress")  # fmt: skip
    assert "rn: test accuracy" in output and "rn-baseline: test accuracy" in output
    checkpoint = json.loads((project / "runs/rn/summary.json").read_text())["checkpoint"]
    state = torch.load(project / checkpoint, weights_only=True)
    assert state["projection"]["weight"].shape == (512, 2)  # z: avgpool's (B, 512, 1, 1)
    assert "net.layer4.1.bn2.weight" in state["model"]  # torchvision's own resnet18

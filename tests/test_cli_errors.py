"""Bad input at the `hill` command: one line (`hill: ...`), exit code 2, before any work.

Each probe is a mistake a user makes; none may print a traceback, start training, or leave
a run folder behind.
"""

from __future__ import annotations

import pytest
from flow_helpers import make_project
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HILL_GATE_AUTH", raising=False)
    monkeypatch.chdir(tmp_path)
    make_project(tmp_path)
    (tmp_path / "runs/taken").mkdir(parents=True)
    edits = tmp_path / "data/edits/partial"
    edits.mkdir(parents=True)
    tampered_snapshot(tmp_path / "tampered.parquet")
    table = tmp_path / "tiny.csv"
    table.write_text("label,a,b\n" + "".join(f"{k % 3},{k},{k * 2}\n" for k in range(20))
                     + "9,1,1\n9,2,2\n")  # fmt: skip
    return tmp_path


def tampered_snapshot(path) -> None:
    """A snapshot whose gate epoch metadata was edited to text (defect J: a 39-line traceback)."""
    import pyarrow.parquet as pq
    from app_helpers import synthetic_snapshot

    from hill_core.edits import write_snapshot

    write_snapshot(path, synthetic_snapshot(20), gate_epoch=4, run_id="r")
    table = pq.read_table(path)
    meta = {**table.schema.metadata, b"hill.gate_epoch": b"four"}
    pq.write_table(table.replace_schema_metadata(meta), path)


PROBES = {
    "tampered snapshot": (
        ["gate", "--snapshot", "tampered.parquet"],
        "metadata hill.gate_epoch is 'four', not a whole number",
    ),
    "unknown key": (["run", "-S", "train.epoch=5"], "unknown key train.epoch"),
    "negative loss weight": (["run", "-S", "hill.w_center=-5"], "non-negative"),
    "no CUDA": (["run", "-S", "base.device=cuda"], "no CUDA device"),
    "missing data folder": (
        ["run", "-S", "data.name=imagefolder", "-S", "data.root=nowhere"],
        "nowhere",
    ),
    "exposed gate page": (["run", "-S", "gate.host=0.0.0.0"], "gate.host=0.0.0.0"),
    "name escapes runs/": (["run", "--name", "../escaped"], "run name '../escaped'"),
    "name taken": (["run", "--name", "taken"], "already exists"),
    "missing params file": (["run", "--params", "nope.yaml"], "nope.yaml"),
    "bad autopilot": (["run", "--autopilot", "telepathy"], "telepathy"),
    "replay with no edits": (["replay", "data/edits/partial"], "no gate edits"),
    "resume unknown run": (["resume", "ghost"], "no run 'ghost'"),
    "bad cron": (["deploy", "--cron", "61 3 * * *"], "Invalid cron string"),
    "bad decision": (["gates", "decide", "r", "4", "maybe"], "maybe"),
    "unknown option": (["run", "--epochs", "3"], "--epochs"),
    "seeds not a list": (["study", "--seeds", "7,x"], "--seeds '7,x'"),
    "one seed": (["study", "--seeds", "1"], "at least two distinct seeds"),
    "label noise of 1.5": (["run", "-S", "data.label_noise=1.5"], "data.label_noise must lie"),
    "noise pair of no class": (
        [
            "run",
            "-S",
            "data.label_noise=0.3",
            "-S",
            "data.label_noise_kind=pairs",
            "-S",
            "data.label_noise_pairs=1-77",
        ],
        "class 77 is not in [0, 10)",
    ),  # fmt: skip
    "tiny class in a table": (
        ["run", "-S", "data.name=table", "-S", "data.root=tiny.csv", "-S", "model.name=mlp"],
        "class",
    ),
}


@pytest.mark.parametrize("probe", list(PROBES), ids=list(PROBES))
def test_a_mistake_is_one_line_before_any_work(project, probe):
    args, expected = PROBES[probe]
    result = runner.invoke(app, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("hill: "), result.output
    assert expected in lines[0]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (project / "runs").iterdir()) == ["taken"]  # no work done

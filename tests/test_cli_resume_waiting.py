"""`hill resume` on a run that waits normally at its gate (Suspended: a deployment's run whose
worker was freed) refuses in one line, and leaves the run as it was (it used to mark it Crashed
and take it over, stranding the link a person held)."""

from __future__ import annotations

import json

import pytest
from flow_helpers import prefect_project
from typer.testing import CliRunner

from pipelines.cli import app

pytestmark = pytest.mark.slow  # a Prefect test server


def test_resume_refuses_a_suspended_run_and_leaves_it_suspended(tmp_path):
    from prefect import get_client
    from prefect.states import Suspended

    with prefect_project(tmp_path) as (root, cfg):
        run = root / "runs/waiting"
        run.mkdir(parents=True)
        spec = {"name": "waiting", "mode": "guided", "autopilot": None}
        (run / "flow_params.json").write_text(json.dumps({"config": cfg.to_dict(), "spec": spec}))
        with get_client(sync_client=True) as client:
            from prefect import flow

            @flow(name="guided-training")
            def stand_in() -> None:  # the deployment's flow, as Prefect records it
                pass

            flow_run = client.create_flow_run(stand_in, name="waiting")
            client.set_flow_run_state(flow_run.id, Suspended(timeout_seconds=3600), force=True)
        result = CliRunner().invoke(app, ["resume", "waiting", "--no-progress"])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert lines[0].startswith("hill: waiting waits at its gate (Suspended")
        assert "hill gates list" in lines[0]
        with get_client(sync_client=True) as client:
            assert client.read_flow_run(flow_run.id).state.name == "Suspended"  # untouched

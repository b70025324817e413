"""Production mode end to end: the stack of infra/up.sh, a deployment, a worker, a suspended
gate answered through the gate service while no process holds the run, MLflow on PostgreSQL.

1. up.sh starts PostgreSQL, the Prefect and MLflow servers on it, a process worker and the
   gate service; `hill deploy` registers the flow (a bad cron gets one line).
2. A run is triggered through the deployment and the worker picks it up.
3. At its gate the run suspends: its process exits, the worker stops too, and the gate is
   answered through the gate service's API; a new worker resumes the run to the end. The
   edits went to the project's DVC remote (a local folder here) as soon as they were recorded.
4. The MLflow server holds the guided run and its baseline with every metric.
5. down.sh leaves nothing running.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from uuid import UUID

import pytest
from infra_helpers import Stack, alive, port_open, production_stack, sessions

from pipelines.versioning import dvc_md5

pytestmark = [pytest.mark.slow, pytest.mark.integration]

HILL = str(Path(sys.executable).parent / "hill")


@pytest.fixture
def stack(tmp_path):
    with production_stack(tmp_path, ["hill.gate_epochs=[2]", "train.epochs=3"]) as stack:
        yield stack


def hill(stack: Stack, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([HILL, *args], cwd=stack.project, env=stack.env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    if check and done.returncode != 0:
        pytest.fail(f"hill {' '.join(args)}: {done.stdout}\n{done.stderr}{stack.logs()}")
    return done


def prefect(stack: Stack, path: str, body: dict | None = None) -> dict | list:
    """A call to the Prefect server's REST API (POST when ``body`` is given)."""
    data = None if body is None else json.dumps(body, default=str).encode()
    request = urllib.request.Request(f"{stack.prefect_api}{path}", data,
                                     {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def state_of(stack: Stack, flow_run_id: str) -> str:
    return prefect(stack, f"/flow_runs/{flow_run_id}")["state"]["name"]


def wait_state(stack: Stack, flow_run_id: str, names: set[str], timeout: float = 400) -> str:
    """Wait for one of ``names``; a final state not among them fails at once, with the logs."""
    deadline = time.monotonic() + timeout
    while (name := state_of(stack, flow_run_id)) not in names:
        final = {"Completed", "Failed", "Crashed", "Cancelled"}
        assert name not in final, f"{name}{stack.logs(40)}"
        assert time.monotonic() < deadline, f"still {name}{stack.logs(40)}"
        time.sleep(1)
    return name


def test_deployed_run_frees_the_worker_at_its_gate_and_resumes(stack):
    stack.script("up.sh")
    first = stack.pids()
    bad = hill(stack, "deploy", "--cron", "61 3 * * *", check=False)
    assert bad.returncode == 2 and "Invalid cron string" in bad.stderr
    assert "Traceback" not in bad.stderr
    hill(stack, "deploy", "--cron", "0 3 * * *", "--name", "nightly")
    (deployment,) = prefect(stack, "/deployments/filter", {})
    limit = deployment["global_concurrency_limit"]
    assert limit["limit"] == 1 and deployment["work_pool_name"] == "hill-pool", deployment
    assert deployment["parameters"]["config"]["gate"]["service_url"] == stack.gate_url

    run = prefect(stack, f"/deployments/{deployment['id']}/create_flow_run", {})
    wait_state(stack, run["id"], {"Suspended"})  # the worker ran it to its gate
    flow_run = prefect(stack, f"/flow_runs/{run['id']}")
    name = flow_run["name"]
    ticket = stack.project / "runs" / name / "gate_0002.ticket.json"
    assert ticket.is_file()
    # No process holds the run: the worker's session has the worker alone, then not even it.
    wait_for(lambda: sessions({first["worker"]}) == {first["worker"]})
    stack.script("down.sh", "worker")

    listed = hill(stack, "gates", "list").stdout
    lines = [line for line in listed.splitlines() if line.startswith(f"{name}  epoch 2")]
    assert lines, f"{listed!r}; the run is {state_of(stack, run['id'])}{stack.logs(40)}"
    link = lines[0].split()[-1]
    assert link.startswith(f"{stack.gate_url}/{name}/gate/2?token=")
    path, token = link.removeprefix(stack.gate_url).split("?token=")
    refused = post(f"{stack.gate_url}{path}/api/decision?token=wrong", {"decision": "approve"})
    assert (
        refused[0] == 403
        and not (stack.project / "data/edits" / name / "gate_0002.parquet").exists()
    )
    snapshot = get_json(f"{stack.gate_url}{path}/api/snapshot?token={token}")
    points = zip(snapshot["sample_id"], snapshot["x"], snapshot["y"], strict=True)
    rows = [{"sample_id": s, "x": 0.5 * x, "y": 0.5 * y, "moved": False} for s, x, y in points]
    status, reply = post(f"{stack.gate_url}{path}/api/decision?token={token}",
                         {"decision": "approve", "rows": rows})  # fmt: skip
    assert status == 200 and reply["decision"] == "approve", reply
    wait_state(stack, run["id"], {"Resuming"}, 60)  # Scheduled again, for a worker

    stack.script("up.sh", "worker")  # a new worker picks the resumed run up
    wait_state(stack, run["id"], {"Completed"})
    assert json.loads((stack.project / "runs" / name / "summary.json").read_text())
    edits = stack.project / "data/edits" / name / "gate_0002.parquet"
    md5 = dvc_md5(edits)  # pushed to the DVC remote as soon as it was recorded
    assert (stack.dvc_store / "files/md5" / md5[:2] / md5[2:]).is_file()

    check_mlflow(stack, name)
    everything = sessions(set(stack.pids().values())) | set(first.values())
    stack.script("down.sh")
    assert not [pid for pid in everything if alive(pid)]
    assert not [p for p in (stack.pg, stack.prefect, stack.mlflow, stack.gate) if port_open(p)]


def check_mlflow(stack: Stack, name: str) -> None:
    """The guided run and its baseline on the MLflow server, finished, with every metric."""
    from mlflow import MlflowClient

    client = MlflowClient(stack.mlflow_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = {r.info.run_name: r for r in client.search_runs(experiments)}
    guided, baseline = runs[name], runs[f"{name}-baseline"]
    assert guided.data.tags["hill.paired_run_id"] == baseline.info.run_id
    assert guided.data.tags["gate.0002.decision"] == "approve"
    assert guided.data.tags["gate.0002.source"] == "page"
    for run in (guided, baseline):
        assert run.info.status == "FINISHED"
        for key in ("val_acc", "train_acc", "loss", "test_acc", "test_f1"):
            assert key in run.data.metrics, (run.info.run_name, key)
        steps = {m.step for m in client.get_metric_history(run.info.run_id, "val_acc")}
        assert steps == {1, 2, 3}
    assert "gate_val_acc" in guided.data.metrics
    assert UUID(guided.data.tags["hill.prefect_flow_run_id"])


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")

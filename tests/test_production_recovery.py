"""Production mode recovers without a person: the stack of infra/up.sh with real servers.

1. A gate decided while the Prefect server is down: the gate service records it (200), logs
   "decided, waiting to resume", and once Prefect is back on its port (same PostgreSQL
   database) resumes the run, which the same worker runs to Completed.
2. A deployment's run killed mid-training: `hill resume NAME` sends it back to its deployment
   (a new flow run of the same name, on the work pool) and returns at once; the worker runs it
   to the end, in the run's own MLflow runs, whose flow run tag follows the new flow run.
3. The worker wrapper up.sh starts (pipelines/worker.py) starts the Prefect worker again when
   it gives up (as `prefect worker start` does after a few minutes without the server).
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from infra_helpers import Stack, alive, production_stack
from test_production import get_json, hill, post, prefect, state_of, wait_for, wait_state

from hill_core.edits import read_edits
from pipelines.worker import supervise


@pytest.fixture
def gated_stack(tmp_path):
    """A gate after epoch 2 of 3, answered by a person through the gate service."""
    with production_stack(tmp_path, ["hill.gate_epochs=[2]", "train.epochs=3"]) as stack:
        yield stack


@pytest.fixture
def autopilot_stack(tmp_path):
    """A gate after epoch 1 of 4 (so a segment checkpoint comes early), answered by autopilot."""
    with production_stack(tmp_path, ["hill.gate_epochs=[1]", "train.epochs=4"]) as stack:
        yield stack


def deploy_and_start(stack: Stack, *deploy_args: str) -> tuple[dict, dict]:
    """`hill deploy` on the stack's pool and one flow run of it: (deployment, flow run)."""
    hill(stack, "deploy", *deploy_args)
    (deployment,) = prefect(stack, "/deployments/filter", {})
    return deployment, prefect(stack, f"/deployments/{deployment['id']}/create_flow_run", {})


@pytest.mark.slow
@pytest.mark.integration
def test_a_gate_decided_while_prefect_is_down_completes_once_it_is_back(gated_stack):
    stack = gated_stack
    stack.script("up.sh")
    worker = stack.pids()["worker"]
    _, run = deploy_and_start(stack)
    wait_state(stack, run["id"], {"Suspended"})
    name = prefect(stack, f"/flow_runs/{run['id']}")["name"]
    link = gate_link(stack, name)

    stack.script("down.sh", "prefect")  # only the Prefect server; its database stays up
    assert not port_answers(stack.prefect_api)
    path, token = link.removeprefix(stack.gate_url).split("?token=")
    status, reply = answer_gate(stack, path, token)
    assert status == 200 and reply["decision"] == "approve", reply  # recorded, all the same
    gate_log = Path(stack.state, "logs/gate.log")
    wait_for(lambda: "decided, waiting to resume" in gate_log.read_text(), 120)
    assert state_or_none(stack, run["id"]) == ""  # Prefect is down indeed: nothing resumed

    stack.script("up.sh", "prefect")  # the same port, the same PostgreSQL database
    wait_state(stack, run["id"], {"Completed"}, 600)  # nobody acted
    assert stack.pids()["worker"] == worker and alive(worker)  # nobody restarted the worker
    edits, meta = read_edits(stack.project / "data/edits" / name / "gate_0002.parquet")
    assert meta.decision == "approve" and meta.source == "page" and len(edits)
    assert (stack.project / "runs" / name / "summary.json").is_file()


@pytest.mark.slow
@pytest.mark.integration
def test_hill_resume_sends_a_crashed_deployment_run_back_to_its_work_pool(autopilot_stack):
    stack = autopilot_stack
    stack.script("up.sh")
    deployment, run = deploy_and_start(stack, "--autopilot", "compactness")
    wait_state(stack, run["id"], {"Running"})
    name = hill_run_name(stack, run["id"])
    wait_for(lambda: (stack.project / "runs" / name / "ckpt_epoch_0001.pt").is_file(), 600)
    killed = kill_flow_run_processes(run["id"])
    assert killed, f"no process of flow run {run['id']}{stack.logs(40)}"
    assert wait_state(stack, run["id"], {"Crashed"}, 120) == "Crashed"  # the worker says so

    started = time.monotonic()
    done = hill(stack, "resume", name)
    took = time.monotonic() - started
    (line,) = done.stdout.strip().splitlines()  # the old flow run was Crashed already
    assert took < 120 and "hill-pool" in line and "prefect flow-run logs" in line, line
    new_id = re.search(r"as flow run ([0-9a-f-]{36}) ", line).group(1)
    assert not (stack.project / "runs" / name / "summary.json").exists()  # nothing ran here
    flow_run = prefect(stack, f"/flow_runs/{new_id}")
    assert flow_run["name"] == name and flow_run["deployment_id"] == deployment["id"]

    wait_state(stack, new_id, {"Completed"}, 600)
    assert (stack.project / "runs" / name / "summary.json").is_file()
    assert state_of(stack, run["id"]) == "Crashed"
    guided = mlflow_run(stack, name)
    assert guided.info.status == "FINISHED"
    assert guided.data.tags["hill.prefect_flow_run_id"] == new_id


@pytest.mark.slow
@pytest.mark.integration
def test_hill_resume_of_a_deleted_deployment_says_so_in_one_line(autopilot_stack):
    stack = autopilot_stack
    stack.script("up.sh", "postgres", "prefect", "mlflow", "worker")
    deployment, run = deploy_and_start(stack, "--autopilot", "compactness")
    wait_state(stack, run["id"], {"Running"})
    name = hill_run_name(stack, run["id"])
    wait_for(lambda: (stack.project / "runs" / name / "ckpt_epoch_0001.pt").is_file(), 600)
    assert kill_flow_run_processes(run["id"])
    wait_state(stack, run["id"], {"Crashed"}, 120)
    delete(stack, f"/deployments/{deployment['id']}")

    done = hill(stack, "resume", name, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "no longer exists" in line and f"hill resume {name} --here" in line


def test_the_worker_wrapper_starts_a_worker_that_gave_up_again(capsys):
    calls, waits = [], []

    def start() -> None:
        calls.append(1)
        if len(calls) == 1:  # as ProcessWorker.start raises it, out of its loops' task group
            inner = RuntimeError("Service exceeded error threshold.")
            raise ExceptionGroup("unhandled errors in a TaskGroup", [inner])

    supervise(start, restarts=2, pause_s=3, wait=waits.append)
    assert len(calls) == 3 and waits == [3, 3]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "hill worker: the Prefect worker gave up (RuntimeError: Service exceeded error "
        "threshold.); starting it again in 3 s"
    )
    assert lines[1].startswith("hill worker: the Prefect worker stopped;")


def hill_run_name(stack: Stack, flow_run_id: str, timeout_s: float = 600) -> str:
    """The hill run's name, once the flow has renamed its flow run to it: a run is Running
    before its flow's first line, and under load it keeps Prefect's random name a while (the
    first fresh-clone CI under two busy loops waited on runs/<random name>/ and timed out)."""
    deadline = time.monotonic() + timeout_s
    while not (stack.project / "runs" / (name := flow_run_name(stack, flow_run_id))).is_dir():
        assert time.monotonic() < deadline, f"flow run still named {name}{stack.logs(40)}"
        time.sleep(1)
    return name


def flow_run_name(stack: Stack, flow_run_id: str) -> str:
    return prefect(stack, f"/flow_runs/{flow_run_id}")["name"]


def gate_link(stack: Stack, name: str) -> str:
    listed = hill(stack, "gates", "list").stdout
    return next(line.split()[-1] for line in listed.splitlines() if line.startswith(name))


def answer_gate(stack: Stack, path: str, token: str) -> tuple[int, dict]:
    """Approve with every point moved halfway to the centre, as a person on the page would."""
    snapshot = get_json(f"{stack.gate_url}{path}/api/snapshot?token={token}")
    points = zip(snapshot["sample_id"], snapshot["x"], snapshot["y"], strict=True)
    rows = [{"sample_id": s, "x": 0.5 * x, "y": 0.5 * y, "moved": False} for s, x, y in points]
    return post(f"{stack.gate_url}{path}/api/decision?token={token}",
                {"decision": "approve", "rows": rows})  # fmt: skip


def port_answers(url: str) -> bool:
    try:
        get_json(f"{url}/health")
    except OSError:
        return False
    return True


def state_or_none(stack: Stack, flow_run_id: str) -> str:
    try:
        return state_of(stack, flow_run_id)
    except OSError:
        return ""


def kill_flow_run_processes(flow_run_id: str) -> list[int]:
    """SIGKILL every process the worker started for the flow run (found by the flow run id in
    its environment, as the process worker passes it)."""
    marker = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue  # gone, or not ours
        if marker in environ.split(b"\0") and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    for pid in found:
        os.kill(pid, signal.SIGKILL)
    return found


def delete(stack: Stack, path: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"{stack.prefect_api}{path}", method="DELETE")
    with urllib.request.urlopen(request, timeout=30):
        pass


def mlflow_run(stack: Stack, name: str):
    from mlflow import MlflowClient

    client = MlflowClient(stack.mlflow_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_name: r for r in client.search_runs(experiments)}[name]

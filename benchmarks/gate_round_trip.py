"""What a suspended gate costs against a paused one: from the decision to running again.

    .venv/bin/python benchmarks/gate_round_trip.py [--epochs 6] [--gate 3]

Starts infra/up.sh's stack (PostgreSQL, Prefect and MLflow servers, a process worker, the gate
service) on free ports around a throw-away project, and runs the same config both ways, one
after the other on the same servers:

- **suspend**: a run of the deployment on the worker; its process exits at the gate, the gate
  service records the decision and resumes it, the worker starts it again from the top and the
  run replays its first segment from the checkpoint journal;
- **pause**: ``hill run`` (``gate.wait=pause``), whose own process serves the page and waits.

Prints, for each, seconds from the decision's HTTP reply to the flow run being Running again
and to Completed, and the difference: the round trip's cost. Needs PostgreSQL's binaries.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the stack's helpers

from flow_helpers import QUIET, make_project  # noqa: E402
from infra_helpers import Stack  # noqa: E402

HILL = str(Path(sys.executable).parent / "hill")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--gate", type=int, default=3)
    args = parser.parse_args()
    project = Path(tempfile.mkdtemp(prefix="hill-bench-")) / "project"
    stack = Stack(HILL_PROJECT_DIR=str(project))
    sets = [f"gate.service_url={stack.gate_url}", f"hill.gate_epochs=[{args.gate}]",
            f"train.epochs={args.epochs}"]  # fmt: skip
    make_project(project, sets)
    stack.env.update({**QUIET, "PREFECT_API_URL": stack.prefect_api,
                      "MLFLOW_TRACKING_URI": stack.mlflow_uri})  # fmt: skip
    try:
        stack.script("up.sh")
        suspend = suspended_round(stack, project, args.gate)
        pause = paused_round(stack, project, args.gate)
    finally:
        stack.down()
    print(f"digits, {args.epochs} epochs, gate after epoch {args.gate}; seconds from the decision")
    print(f"{'wait':8} {'to Running':>11} {'to Completed':>13}")
    for name, (running, done) in (("suspend", suspend), ("pause", pause)):
        print(f"{name:8} {running:11.1f} {done:13.1f}")
    print(f"round trip of a suspended gate: +{suspend[1] - pause[1]:.1f} s to the end of the run")


def suspended_round(stack: Stack, project: Path, gate: int) -> tuple[float, float]:
    hill(stack, project, "deploy", "--name", "bench")
    (deployment,) = api(stack, "/deployments/filter", {})
    run_id = api(stack, f"/deployments/{deployment['id']}/create_flow_run", {})["id"]
    wait(stack, run_id, "Suspended")
    name = api(stack, f"/flow_runs/{run_id}")["name"]
    link = next(
        line.split()[-1]
        for line in hill(stack, project, "gates", "list").splitlines()
        if line.startswith(name)
    )
    path, token = link.split("?token=")
    api(stack, "", {"decision": "approve", "rows": []}, url=f"{path}/api/decision?token={token}")
    decided = time.monotonic()
    wait(stack, run_id, "Running")
    running = time.monotonic() - decided
    wait(stack, run_id, "Completed")
    return running, time.monotonic() - decided


def paused_round(stack: Stack, project: Path, gate: int) -> tuple[float, float]:
    from gradio_client import Client

    out = open(project / "pause.log", "w")  # noqa: SIM115 - the child's log
    child = subprocess.Popen([HILL, "run", "--name", "bench-pause", "--no-progress",
                              "-S", "gate.wait=pause"], cwd=project, env=stack.env,
                             stdout=out, stderr=out)  # fmt: skip
    run_id = None
    while run_id is None:
        runs = api(stack, "/flow_runs/filter", {"flow_runs": {"name": {"any_": ["bench-pause"]}}})
        run_id = runs[0]["id"] if runs and runs[0]["state"]["name"] == "Paused" else None
        time.sleep(0.2)
    link = next(
        line.split()[-1]
        for line in hill(stack, project, "gates", "list").splitlines()
        if line.startswith("bench-pause")
    )
    Client(link, verbose=False).predict([], "approve", api_name="/submit")
    decided = time.monotonic()
    wait(stack, run_id, "Running")
    running = time.monotonic() - decided
    wait(stack, run_id, "Completed")
    child.wait(timeout=300)
    return running, time.monotonic() - decided


def hill(stack: Stack, project: Path, *args: str) -> str:
    done = subprocess.run([HILL, *args], cwd=project, env=stack.env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout


def api(stack: Stack, path: str, body: dict | None = None, url: str | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url or f"{stack.prefect_api}{path}", data,
                                     {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def wait(stack: Stack, run_id: str, state: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while api(stack, f"/flow_runs/{run_id}")["state"]["name"] != state:
        if time.monotonic() > deadline:
            raise SystemExit(f"flow run {run_id} never reached {state}{stack.logs(30)}")
        time.sleep(0.1)


if __name__ == "__main__":
    main()

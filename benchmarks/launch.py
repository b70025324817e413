"""Launch to first epoch: `hill run` from the start of its process to its first training epoch.

    .venv/bin/python benchmarks/launch.py [--reps 3] [--json PATH]

Two modes, each in its own throw-away git + DVC project with the repository's params.yaml:

- **servers running**: `hill up` has started a Prefect server and an MLflow server for the
  project (here on free loopback ports; stopped at the end), and `hill run` finds them;
- **ephemeral**: no server: Prefect starts its temporary server, MLflow opens the project's
  sqlite store.

Each launch is a plain ``hill run`` (a person would answer its gates) with ``HILL_MARKS`` set:
the clock starts just before the process does and stops at the mark its first epoch writes
(``pipelines.marks``), then the run is stopped. The one-time set-up is not counted: `hill up`
creates the servers' databases, and one uncounted ephemeral launch creates Prefect's database
and MLflow's store, as a project's first run does. Then the two modes alternate, ``--reps``
times each; the figures are medians, with the process's CPU
seconds up to the mark beside them (wall minus CPU is time spent waiting, on servers or on a
busy machine).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from report import Figure, add_json_argument, emit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pipelines.marks import read_marks  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from infra_helpers import free_ports  # noqa: E402

HILL = str(Path(sys.executable).parent / "hill")
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "MPLBACKEND": "Agg",
}
FIRST_EPOCH_S = 120.0  # at most, per launch
SERVERS, EPHEMERAL = "launch to first epoch, servers running", "launch to first epoch, ephemeral"


def project(root: Path) -> Path:
    """A git + DVC repository with the repository's params.yaml: a user's checkout."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    return root


def environment(root: Path) -> dict[str, str]:
    """Nothing of this shell's servers or Prefect profile: each project decides for itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.pop("HILL_INFRA_DIR", None)
    return {**env, **QUIET, "PREFECT_HOME": str(root / ".prefect")}


def launch(root: Path) -> tuple[float, float, str]:
    """Start `hill run` in ``root``; seconds and CPU seconds to its first epoch, and the line
    that says which servers it used. The run is stopped there."""
    stamp = time.time_ns()
    marks, log = root / f"launch-{stamp}.marks", root / f"launch-{stamp}.log"
    env = {**environment(root), "HILL_MARKS": str(marks)}
    with open(log, "w") as out:  # a file, not a pipe: a full pipe would stall the run
        start = time.time()
        run = subprocess.Popen([HILL, "run"], cwd=root, env=env, stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        first = None
        while first is None and run.poll() is None and time.time() - start < FIRST_EPOCH_S:
            first = next((m for m in read_marks(marks) if m[2].startswith("epoch-start")), None)
            time.sleep(0.01)
        stop(run)
    output = log.read_text()
    if first is None:
        raise RuntimeError(f"hill run in {root} reached no epoch:\n{output[-3000:]}")
    servers = next((line for line in output.splitlines() if line.startswith("Servers:")), "")
    return first[0] - start, first[1], servers


def stop(run: subprocess.Popen) -> None:
    """End the run and everything of its session at once (the ephemeral mode's temporary
    Prefect server is its child): what it would do next is not measured, and a throw-away
    project needs no clean shutdown."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(run.pid, signal.SIGKILL)
    run.wait()


def hill(root: Path, *args: str) -> str:
    done = subprocess.run([HILL, *args], cwd=root, env=environment(root), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"hill {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def figure(name: str, samples: list[tuple[float, float, str]], op: str, target: float | None):
    walls, cpus = [s[0] for s in samples], [s[1] for s in samples]
    detail = (
        f"median of {len(samples)}, interleaved; each {', '.join(f'{w:.1f}' for w in walls)} s; "
        f"CPU {statistics.median(cpus):.1f} s; plain `hill run`"
    )
    return Figure(name, statistics.median(walls), "s", op, target, detail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="launches per mode (at least 3)")
    add_json_argument(parser)
    args = parser.parse_args()
    if args.reps < 3:
        parser.error("--reps: at least 3, for a median that one slow launch cannot move")
    tmp = Path(tempfile.mkdtemp(prefix="hill-launch-"))
    with_servers, ephemeral = project(tmp / "servers"), project(tmp / "ephemeral")
    prefect_port, mlflow_port = free_ports(2)
    up = ["up", "--prefect-port", str(prefect_port), "--mlflow-port", str(mlflow_port)]
    samples: dict[str, list] = {SERVERS: [], EPHEMERAL: []}
    try:
        with ThreadPoolExecutor(2) as pool:  # both one-time set-ups at once
            started = pool.submit(hill, with_servers, *up)
            pool.submit(launch, ephemeral).result()  # warm-up: creates the two stores
            started.result()
        for _ in range(args.reps):
            samples[SERVERS].append(launch(with_servers))
            samples[EPHEMERAL].append(launch(ephemeral))
    finally:
        subprocess.run([HILL, "down"], cwd=with_servers, env=environment(with_servers),
                       capture_output=True, timeout=120)  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)
    wanted = f"Prefect http://127.0.0.1:{prefect_port}/api (hill up)"
    if not all(wanted in s[2] for s in samples[SERVERS]):
        raise RuntimeError(f"a servers-mode run did not use `hill up`'s servers: {samples}")
    emit(
        [
            figure(SERVERS, samples[SERVERS], "<=", 5.0),
            figure(EPHEMERAL, samples[EPHEMERAL], "", None),
        ],
        args.json,
    )


if __name__ == "__main__":
    main()

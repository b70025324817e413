"""The production stack of infra/: up.sh and down.sh for real, compose.yaml as a file."""

import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest
import yaml
from infra_helpers import alive as _alive
from infra_helpers import free_ports as _free_ports
from infra_helpers import get as _get
from infra_helpers import pg_bin as _pg_bin
from infra_helpers import port_open as _port_open
from infra_helpers import sessions as _sessions

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
VENV = ROOT / ".venv"
SERVERS = ["postgres", "prefect", "mlflow", "worker"]


def _gate_available() -> bool:
    hill = VENV / "bin" / "hill"
    cmd = [str(hill), "gates", "serve", "--help"]
    return hill.exists() and subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 0


def test_scripts_parse_and_down_is_a_no_op_on_nothing(tmp_path):
    for script in ("up.sh", "down.sh", "lib.sh"):
        subprocess.run(["bash", "-n", str(INFRA / script)], check=True)
    env = {**os.environ, "HILL_INFRA_DIR": str(tmp_path / "none")}
    out = subprocess.run(
        [str(INFRA / "down.sh")], env=env, capture_output=True, text=True, check=True
    )
    assert "nothing started" in out.stdout
    assert not (tmp_path / "none").exists()
    bad = subprocess.run([str(INFRA / "up.sh"), "redis"], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown service 'redis'" in bad.stderr


def test_compose_file():
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "prefect-server", "mlflow", "worker", "gate"}
    assert services["postgres"]["image"] == "postgres:15"
    assert services["prefect-server"]["image"].startswith("prefecthq/prefect:3")
    prefect_env = services["prefect-server"]["environment"]
    assert prefect_env["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    mlflow_cmd = " ".join(services["mlflow"]["command"])
    assert "--backend-store-uri=postgresql://" in mlflow_cmd
    assert "--artifacts-destination=/mlartifacts" in mlflow_cmd
    for name in ("worker", "gate"):
        build = services[name]["build"]
        assert (INFRA / build["context"] / build["dockerfile"]).resolve().is_file()
        volumes = services[name]["volumes"]
        assert "hill-runs:/app/runs" in volumes and "hill-data:/app/data" in volumes
    assert services["worker"]["command"][:5] == [
        "prefect",
        "worker",
        "start",
        "--pool",
        "hill-pool",
    ]
    gate = services["gate"]
    assert gate["command"][:3] == ["hill", "gates", "serve"]
    assert "0.0.0.0" in gate["command"] and "HILL_GATE_AUTH" in gate["environment"]
    for service in services.values():  # published on the host's loopback only
        assert all(str(p).startswith("127.0.0.1:") for p in service.get("ports", []))
    assert set(compose["volumes"]) >= {"pgdata", "mlartifacts", "hill-runs", "hill-data"}
    assert (INFRA / "postgres-init.sql").is_file()
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        env = {**os.environ, "HILL_GATE_AUTH": "ana:s3cret"}
        cmd = [docker, "compose", "-f", str(INFRA / "compose.yaml"), "config", "-q"]
        subprocess.run(cmd, env=env, check=True)


@pytest.mark.slow
@pytest.mark.integration
def test_stack_up_idempotent_worker_restart_and_down():
    if _pg_bin() is None:
        reason = "PostgreSQL binaries missing (/usr/lib/postgresql/*/bin/pg_ctl)"
        if os.environ.get("HILL_REQUIRE_POSTGRES"):
            pytest.fail(f"HILL_REQUIRE_POSTGRES is set but {reason}; apt-get install postgresql")
        pytest.skip(f"{reason}; apt-get install postgresql, or set HILL_REQUIRE_POSTGRES=1")
    gate = _gate_available()
    expected = SERVERS + (["gate"] if gate else [])
    pg_port, prefect_port, mlflow_port, gate_port = ports = _free_ports(4)
    # Under /tmp, not pytest's 0700 tmp_path: as root the data folder belongs to `postgres`,
    # which must be able to reach it.
    state = Path(tempfile.mkdtemp(prefix="hill-infra-"))
    state.chmod(0o755)
    env = {
        **os.environ,
        "HILL_INFRA_DIR": str(state),
        "HILL_PG_PORT": str(pg_port),
        "HILL_PREFECT_PORT": str(prefect_port),
        "HILL_MLFLOW_PORT": str(mlflow_port),
        "HILL_GATE_PORT": str(gate_port),
    }

    def script(*args: str) -> str:
        done = subprocess.run(
            [str(INFRA / args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            logs = "".join(
                f"\n--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-15:])
                for log in sorted((state / "logs").glob("*.log"))
            )
            pytest.fail(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}{logs}")
        return done.stdout

    def pids() -> dict[str, int]:
        return {p.stem: int(p.read_text().split()[0]) for p in (state / "pids").glob("*.pid")}

    started: set[int] = set()
    try:
        out = script("up.sh")
        if not gate:
            assert "gate: skipped" in out
        first = pids()
        assert sorted(first) == sorted(expected), out
        assert all(_alive(pid) for pid in first.values())
        started |= _sessions(set(first.values()))
        env_sh = (state / "env.sh").read_text()
        assert f"export PREFECT_API_URL=http://127.0.0.1:{prefect_port}/api" in env_sh
        assert f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{mlflow_port}" in env_sh
        assert env_sh in out

        # Health of each service; the databases exist, and `hill` reaches them over TCP.
        assert _get(f"http://127.0.0.1:{prefect_port}/api/health").strip() == "true"
        assert _get(f"http://127.0.0.1:{mlflow_port}/health").strip() == "OK"
        if gate:
            _get(f"http://127.0.0.1:{gate_port}/healthz")
        isready = [str(_pg_bin() / "pg_isready"), "-h", "127.0.0.1", "-p", str(pg_port)]
        subprocess.run(isready, check=True, capture_output=True)
        import psycopg2

        password = (state / "secrets" / "pg-password").read_text().strip()
        for db in ("prefect", "mlflow"):
            conn = psycopg2.connect(
                host="127.0.0.1", port=pg_port, user="hill", password=password, dbname=db
            )
            conn.close()
        req = urllib.request.Request(
            f"http://127.0.0.1:{prefect_port}/api/work_pools/hill-pool/workers/filter",
            data=b"{}",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            assert "hill-worker" in [w["name"] for w in json.load(r)]

        # Twice: nothing new starts.
        again = script("up.sh")
        assert pids() == first
        assert all(f"{name}: running (pid {pid})" in again for name, pid in first.items())

        # Just the worker goes down and comes back; the rest keeps running.
        script("down.sh", "worker")
        assert not _alive(first["worker"]) and "worker" not in pids()
        assert all(_alive(pid) for name, pid in first.items() if name != "worker")
        script("up.sh", "worker")
        second = pids()
        assert second["worker"] != first["worker"] and _alive(second["worker"])
        assert {k: v for k, v in second.items() if k != "worker"} == {
            k: v for k, v in first.items() if k != "worker"
        }
        started |= _sessions(set(second.values()))

        # Down: no pid it started is alive, no port open, no pid file left.
        script("down.sh")
        assert not [pid for pid in started | set(second.values()) if _alive(pid)]
        assert not [port for port in ports if _port_open(port)]
        assert not list((state / "pids").glob("*.pid"))
        assert "not running" in script("down.sh")  # idempotent
    finally:
        subprocess.run([str(INFRA / "down.sh")], env=env, capture_output=True, timeout=300)
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.integration
def test_hill_up_serves_runs_in_its_project_and_hill_down_stops_it(tmp_path):
    """`hill up`: a Prefect and an MLflow server on SQLite, no PostgreSQL; `hill run` in the
    project finds them and says so; MLflow's runs land in the project's own mlflow.db."""
    from flow_helpers import QUIET, make_project

    project = tmp_path / "project"
    make_project(project)
    prefect_port, mlflow_port = _free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.pop("HILL_INFRA_DIR", None)
    env |= {**QUIET, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    hill = str(VENV / "bin" / "hill")

    def command(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([hill, *args], cwd=project, env=env, capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        logs = "".join(
            f"\n--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-15:])
            for log in sorted((project / ".hill-infra" / "logs").glob("*.log"))
        )
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}{logs}"
        return done

    up = ["up", "--prefect-port", str(prefect_port), "--mlflow-port", str(mlflow_port)]
    state = project / ".hill-infra"
    prefect_api = f"http://127.0.0.1:{prefect_port}/api"
    mlflow_uri = f"http://127.0.0.1:{mlflow_port}"
    try:
        out = command(*up).stdout
        assert "prefect: started" in out and "mlflow: started" in out and "postgres" not in out
        pids = {p.stem: int(p.read_text()) for p in (state / "pids").glob("*.pid")}
        assert sorted(pids) == ["mlflow", "prefect"] and all(_alive(p) for p in pids.values())
        assert _get(f"{prefect_api}/health").strip() == "true"
        assert _get(f"{mlflow_uri}/health").strip() == "OK"
        again = command(*up).stdout  # nothing new starts
        assert f"prefect: running (pid {pids['prefect']})" in again
        assert f"mlflow: running (pid {pids['mlflow']})" in again

        run = command("run", "--autopilot", "noedit", "--no-progress", "--name", "served",
                      "-S", "train.epochs=2", "-S", "hill.gate_epochs=[1]")  # fmt: skip
        assert f"Servers: Prefect {prefect_api} (hill up), MLflow {mlflow_uri} (hill up)" in (
            run.stderr
        )
        req = urllib.request.Request(f"{prefect_api}/flow_runs/filter", data=b"{}",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=60) as r:
            assert "served" in [f["name"] for f in json.load(r)]
        from mlflow import MlflowClient  # the project's own store, read without the server

        local = MlflowClient(f"sqlite:///{project}/mlflow.db")
        experiment = local.get_experiment_by_name("hill-digits").experiment_id
        names = {r.info.run_name for r in local.search_runs([experiment])}
        assert names == {"served", "served-baseline"}

        down = command("down").stdout
        assert "prefect: stopped" in down and "mlflow: stopped" in down
        assert not [pid for pid in pids.values() if _alive(pid)]
        assert not [port for port in (prefect_port, mlflow_port) if _port_open(port)]
        assert "prefect: not running" in command("down").stdout  # idempotent
    finally:
        subprocess.run([hill, "down"], cwd=project, env=env, capture_output=True, timeout=300)

"""Which servers a command uses (`pipelines.servers`), and what `hill run` loads before it needs
it. Fast: a stand-in HTTP server answers the health checks; `hill up` against real servers is
in test_infra.py."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

import pipelines.servers as servers
from hill_core.config import load_config
from pipelines.cli import app

ROOT = Path(__file__).resolve().parents[1]


class Health(http.server.BaseHTTPRequestHandler):
    """Prefect's ``/api/health`` (``true``), MLflow's ``/health`` (``OK``) and the gate
    service's ``/healthz`` (``ok``)."""

    def do_GET(self):  # noqa: N802 - http.server's name
        body = {"/api/health": b"true", "/health": b"OK", "/healthz": b"ok"}.get(self.path)
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def health_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with no explicit server settings (and no Prefect profile's API URL)."""
    for key in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "HILL_INFRA_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(servers, "prefect_setting", lambda: os.environ.get("PREFECT_API_URL", ""))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def record(project: Path, prefect: str, mlflow: str) -> None:
    """What infra/up.sh writes after starting the servers."""
    (project / ".hill-infra").mkdir()
    env_sh = f"export PREFECT_API_URL={prefect}\nexport MLFLOW_TRACKING_URI={mlflow}\n"
    (project / ".hill-infra" / "env.sh").write_text(env_sh)


def test_without_servers_a_run_uses_the_temporary_server_and_the_local_store(project):
    found = servers.resolve(project)
    assert (found.prefect, found.prefect_from) == ("", "")
    assert found.mlflow == f"sqlite:///{project.resolve()}/mlflow.db"
    assert found.line() == (
        "Servers: Prefect's temporary server for this run, MLflow "
        f"sqlite:///{project.resolve()}/mlflow.db (local store); `hill up` starts servers that "
        "later runs reuse"
    )


def test_recorded_servers_that_answer_are_used(project, health_server):
    record(project, f"{health_server}/api", health_server)
    found = servers.resolve(project)
    assert found.prefect == f"{health_server}/api" and found.mlflow == health_server
    assert found.line() == (
        f"Servers: Prefect {health_server}/api (hill up), MLflow {health_server} (hill up)"
    )


def test_an_explicit_setting_wins_over_recorded_servers(project, health_server, monkeypatch):
    record(project, f"{health_server}/api", health_server)
    other = health_server.replace("127.0.0.1", "localhost")  # the same server, another URL
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    found = servers.resolve(project)
    assert (found.mlflow, found.mlflow_from) == (other, "MLFLOW_TRACKING_URI")
    assert found.prefect_from == "hill up"  # each server on its own
    monkeypatch.setenv("PREFECT_API_URL", f"{other}/api")
    found = servers.resolve(project)
    assert (found.prefect, found.prefect_from) == (f"{other}/api", "PREFECT_API_URL")


def test_sourcing_env_sh_is_not_called_stale(project, health_server, monkeypatch):
    """Defect B: after `source .hill-infra/env.sh` the servers are explicit, and they answer."""
    record(project, f"{health_server}/api", health_server)
    monkeypatch.setenv("PREFECT_API_URL", f"{health_server}/api")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", health_server)
    found = servers.resolve(project)
    assert found.stale == "" and "do not answer" not in found.line()


def test_an_explicit_server_that_is_down_is_one_line_naming_it(project, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")
    with pytest.raises(servers.HillError, match=r"Prefect server at http://127.0.0.1:1/api does"):
        servers.resolve(project)


def test_the_temporary_server_gets_a_start_up_limit_a_loaded_machine_meets(project):
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as LIMIT

    before = LIMIT.value()  # Prefect's own default is 20 s: missed with two busy loops, 2 cores
    with servers.using(servers.resolve(project)):
        assert LIMIT.value() == servers.startup_limit() >= servers.EPHEMERAL_STARTUP_S
    assert LIMIT.value() == before


def test_a_start_up_time_out_is_one_line_saying_what_to_do():
    err = RuntimeError(
        "Timed out while attempting to connect to ephemeral Prefect API server. stdout: ..."
    )
    wrapped = ValueError("flow failed")
    wrapped.__cause__ = err
    line = servers.failure_line(wrapped)
    assert (
        line.startswith("Prefect's temporary server did not start within") and "`hill up`" in line
    )
    assert servers.failure_line(ValueError("a bug")) is None


def test_recorded_servers_that_do_not_answer_are_named(project, health_server):
    dead = health_server.rsplit(":", 1)[0] + ":1"  # port 1: nothing listens
    record(project, f"{dead}/api", dead)
    found = servers.resolve(project)
    assert found.prefect == "" and found.mlflow_from == "local store"
    assert f"the servers in {project.resolve()}/.hill-infra/env.sh do not answer" in found.line()


def test_using_points_prefect_and_mlflow_there_for_the_block(project, health_server):
    from prefect.settings import get_current_settings

    record(project, f"{health_server}/api", health_server)
    with servers.using(servers.resolve(project)):
        assert os.environ["MLFLOW_TRACKING_URI"] == health_server
        assert get_current_settings().api.url == f"{health_server}/api"
    assert "MLFLOW_TRACKING_URI" not in os.environ and "PREFECT_API_URL" not in os.environ
    assert get_current_settings().api.url != f"{health_server}/api"


def test_env_sh_is_read_not_run(project):
    (project / ".hill-infra").mkdir()
    (project / ".hill-infra" / "env.sh").write_text(
        "# comment\nexport PREFECT_API_URL=http://127.0.0.1:1/api\n$(touch pwned)\n"
    )
    assert servers.recorded(project) == {"PREFECT_API_URL": "http://127.0.0.1:1/api"}
    assert not (project / "pwned").exists()


def test_up_without_the_infra_scripts_is_one_line(project, monkeypatch):
    monkeypatch.setattr(servers, "INFRA", project / "no-infra")
    result = CliRunner().invoke(app, ["up"])
    assert result.exit_code == 2
    assert result.output.startswith("hill: ") and "no-infra/up.sh is missing" in result.output


def test_up_and_down_explain_themselves():
    up = CliRunner().invoke(app, ["up", "--help"], env={"COLUMNS": "200"})
    assert up.exit_code == 0 and "127.0.0.1" in up.output and "hill down" in up.output
    down = CliRunner().invoke(app, ["down", "--help"], env={"COLUMNS": "200"})
    assert down.exit_code == 0 and "data stays" in down.output


def test_the_cli_imports_no_heavy_library_before_a_command_needs_it():
    """`hill --help`, `hill up` and a mistake on the command line stay fast: no torch, Prefect,
    MLflow or Gradio at import."""
    code = (
        "import sys, pipelines.cli; "
        "print(sorted(m for m in ('torch', 'prefect', 'mlflow', 'gradio', 'dvc', 'sklearn') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stderr


def test_the_baseline_config_equals_the_parsed_one_without_a_parse():
    from hill_core.loop import baseline_config

    for sets in ([], ["hill.alpha=0.7", "hill.gate_epochs=[2, 5]", "train.epochs=9"]):
        cfg = load_config(ROOT / "params.yaml", sets)
        parsed = cfg.replace(**{"hill.alpha": 0.0, "hill.gate_epochs": []})
        assert baseline_config(cfg) == parsed
        assert baseline_config(cfg).hash() == parsed.hash()


def test_marks_are_written_only_when_asked(tmp_path, monkeypatch):
    from pipelines.marks import mark, read_marks

    monkeypatch.delenv("HILL_MARKS", raising=False)
    mark("nothing")
    assert list(tmp_path.iterdir()) == [] and read_marks(tmp_path / "none") == []
    monkeypatch.setenv("HILL_MARKS", str(tmp_path / "marks"))
    mark("epoch-start run 1")
    ((when, cpu, event),) = read_marks(tmp_path / "marks")
    assert event == "epoch-start run 1" and when > 1e9 and cpu > 0


def test_the_dvc_root_is_found_without_dvc(tmp_path):
    from pipelines.versioning import VersioningError, check_repo

    (tmp_path / "repo" / ".dvc").mkdir(parents=True)
    (tmp_path / "repo" / "sub" / "deeper").mkdir(parents=True)
    assert check_repo(tmp_path / "repo" / "sub" / "deeper") == tmp_path / "repo"
    with pytest.raises(VersioningError, match="is not in a DVC repository"):
        check_repo(tmp_path)


def test_gates_serve_on_a_port_in_use_is_one_line_and_announces_nothing(
    project, health_server, monkeypatch
):
    """Defect G: uvicorn announced the service, then died with [Errno 98] and exit code 3."""
    import socket

    monkeypatch.setenv("PREFECT_API_URL", f"{health_server}/api")
    (project / "params.yaml").write_text("base: {run_dir: runs}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["gates", "serve", "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"hill: gate service: cannot listen on 127.0.0.1:{port} (Address already in use): "
        "another process has the port; pick another with --port"
    ]


def test_gates_serve_reads_only_what_it_uses_from_params(project, health_server, monkeypatch):
    """Defect H: params.yaml left at 6 epochs with gates at 4 and 8 (a failed `dvc exp run -S
    train.epochs=6`) stopped the gate service, which uses no training setting."""
    import socket

    monkeypatch.setenv("PREFECT_API_URL", f"{health_server}/api")
    (project / "params.yaml").write_text("train: {epochs: 6}\nhill: {gate_epochs: [4, 8]}\n")
    with socket.socket() as taken:  # the service then stops at its port: past the config
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["gates", "serve", "--port", str(port)])
    assert "cannot listen on" in result.output and "gate_epochs" not in result.output


def test_deploy_links_to_the_gate_service_up_sh_started(project, health_server):
    """Defect A: with HILL_GATE_PORT=8410 infra/up.sh, links pointed at 7870."""
    (project / ".hill-infra").mkdir()
    (project / ".hill-infra" / "env.sh").write_text(f"export HILL_GATE_URL={health_server}\n")
    cfg = load_config(None)
    assert servers.with_gate_service(cfg, project).gate.service_url == health_server
    mine = cfg.replace(**{"gate.service_url": "https://gates.example"})
    assert servers.with_gate_service(mine, project).gate.service_url == "https://gates.example"
    (project / ".hill-infra" / "env.sh").write_text("export HILL_GATE_URL=http://127.0.0.1:1\n")
    assert servers.with_gate_service(cfg, project).gate.service_url == cfg.gate.service_url


def test_compare_names_the_store_it_searched(project, health_server, monkeypatch):
    """Defect F: with `hill up`'s MLflow server recorded and no MLFLOW_TRACKING_URI, `hill
    compare` pointed at a sqlite store that does not exist; it names the server it read."""
    import pipelines.compare as compare

    record(project, f"{health_server}/api", health_server)
    searched = []
    monkeypatch.setattr(compare, "compare", lambda out, prefix: searched.append(
        compare.tracking_uri()) or ("table", None))  # fmt: skip
    (project / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    done = CliRunner().invoke(app, ["compare"])
    assert done.exit_code == 0, done.output
    assert searched == [health_server]
    assert (
        done.output.splitlines()[-1] == f"Browse the runs: {health_server} (the MLflow server's UI)"
    )
    assert "sqlite" not in done.output

"""Helpers for tests of the production stack (infra/up.sh, infra/down.sh): free ports, the
processes up.sh started, HTTP checks."""

import contextlib
import glob
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stat(pid: int) -> list[str] | None:
    """Fields after the command name in /proc/PID/stat: state, ppid, pgrp, session, ..."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """Exists and is no zombie (nothing here need reap what down.sh killed)."""
    fields = stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def sessions(leaders: set[int]) -> set[int]:
    """Every live process in the sessions that up.sh's daemons lead."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat(int(entry.name))
            if fields and fields[0] not in ("Z", "X") and int(fields[3]) in leaders:
                found.add(int(entry.name))
    return found


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.status == 200, url
        return r.read().decode()


INFRA = Path(__file__).resolve().parents[1] / "infra"


class Stack:
    """infra/up.sh's stack on free ports with its state in a fresh folder; ``down()`` at the end.

    The state lives under /tmp, not pytest's 0700 tmp_path: as root the data folder belongs
    to the ``postgres`` user, which must be able to reach it.
    """

    def __init__(self, **env: str):
        import os
        import tempfile

        self.pg, self.prefect, self.mlflow, self.gate = free_ports(4)
        self.state = Path(tempfile.mkdtemp(prefix="hill-infra-"))
        self.state.chmod(0o755)
        self.env = {
            **os.environ,
            "HILL_INFRA_DIR": str(self.state),
            "HILL_PG_PORT": str(self.pg),
            "HILL_PREFECT_PORT": str(self.prefect),
            "HILL_MLFLOW_PORT": str(self.mlflow),
            "HILL_GATE_PORT": str(self.gate),
            **env,
        }
        self.prefect_api = f"http://127.0.0.1:{self.prefect}/api"
        self.mlflow_uri = f"http://127.0.0.1:{self.mlflow}"
        self.gate_url = f"http://127.0.0.1:{self.gate}"

    def script(self, *args: str) -> str:
        """Run infra/ARGS[0] with ARGS[1:]; on failure the test fails with every log's tail."""
        import subprocess

        import pytest

        done = subprocess.run(
            [str(INFRA / args[0]), *args[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}{self.logs()}")
        return done.stdout

    def logs(self, lines: int = 15) -> str:
        return "".join(
            f"\n--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-lines:])
            for log in sorted((self.state / "logs").glob("*.log"))
        )

    def pids(self) -> dict[str, int]:
        return {p.stem: int(p.read_text().split()[0]) for p in (self.state / "pids").glob("*.pid")}

    def down(self) -> None:
        import shutil
        import subprocess

        subprocess.run([str(INFRA / "down.sh")], env=self.env, capture_output=True, timeout=300)
        shutil.rmtree(self.state, ignore_errors=True)


@contextlib.contextmanager
def production_stack(tmp_path: Path, overrides: list[str]) -> Iterator["Stack"]:
    """A Stack for a fresh hill project under ``tmp_path`` (config ``overrides`` on the tiny
    one), the project's DVC remote a local folder, and the env a user's shell would have after
    sourcing up.sh's env.sh; skips without PostgreSQL. Everything it started stops at exit."""
    import os
    import subprocess
    import sys

    import pytest
    from flow_helpers import QUIET, make_project

    if pg_bin() is None:
        reason = "PostgreSQL binaries missing (/usr/lib/postgresql/*/bin/pg_ctl)"
        if os.environ.get("HILL_REQUIRE_POSTGRES"):
            pytest.fail(f"HILL_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(f"{reason}; apt-get install postgresql")
    project = tmp_path / "project"
    stack = Stack(HILL_PROJECT_DIR=str(project))
    make_project(project, [f"gate.service_url={stack.gate_url}", *overrides])
    stack.project = project
    stack.dvc_store = tmp_path / "dvc"
    remote = [sys.executable, "-m", "dvc", "remote", "add", "-d", "store", str(stack.dvc_store)]
    subprocess.run(remote, cwd=project, check=True)
    stack.env.update({**QUIET, "PREFECT_API_URL": stack.prefect_api,
                      "MLFLOW_TRACKING_URI": stack.mlflow_uri,
                      "PREFECT_HOME": str(tmp_path / ".prefect")})  # fmt: skip
    try:
        yield stack
    finally:
        stack.down()

"""Which Prefect API and MLflow store a command uses, and `hill up` / `hill down`.

For each of the two, the first of these that applies:

1. an explicit setting: ``PREFECT_API_URL`` wherever Prefect reads it (the environment, a
   Prefect profile, prefect.toml), ``MLFLOW_TRACKING_URI``;
2. the server `hill up` (or ``infra/up.sh``) started for this project and recorded in
   ``<state folder>/env.sh``, if it answers its health check now;
3. no server: Prefect's temporary server for the process, MLflow's sqlite store at the project
   root.

`hill up` starts the servers of (2) once, with ``infra/up.sh``, in the background and on
127.0.0.1: a Prefect server on its own SQLite database and an MLflow server over the project's
own ``mlflow.db`` and ``mlartifacts/``, so a run logs to the same store with or without it. A run
then skips Prefect's temporary server, which costs seconds at every start.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hill_core.errors import HillError

# A dead server refuses at once; a live one on a loaded machine may take seconds to answer (at
# 1 s, a busy machine's servers were taken for dead and a command fell back to another one).
PROBE_TIMEOUT_S = 10.0
# Prefect's temporary server must answer within this many seconds of starting. Prefect's own
# default (20 s, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS) is missed on a loaded
# machine: with two busy loops on two cores, its imports alone took longer.
EPHEMERAL_STARTUP_S = 180
EPHEMERAL_TIMEOUT = "Timed out while attempting to connect to ephemeral Prefect API server"
HILL_UP = "hill up"
INFRA = Path(__file__).resolve().parents[1] / "infra"


def state_dir(project: Path | str = ".") -> Path:
    """infra/up.sh's state folder for ``project``: ``HILL_INFRA_DIR``, else ``.hill-infra/``."""
    return Path(project).resolve() / os.environ.get("HILL_INFRA_DIR", ".hill-infra")


def recorded(project: Path | str = ".") -> dict[str, str]:
    """The servers up.sh recorded in ``env.sh``: ``{"PREFECT_API_URL": ..., ...}`` (read, never
    run as a script)."""
    try:
        text = (state_dir(project) / "env.sh").read_text()
    except OSError:
        return {}
    pairs = (line.removeprefix("export ").partition("=") for line in text.splitlines())
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


def answers(url: str, expected: str) -> bool:
    """Whether GET ``url`` answers 200 with ``expected`` in its body within the probe timeout."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as reply:
            return reply.status == 200 and expected in reply.read(256).decode(errors="replace")
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class Servers:
    """The Prefect API and the MLflow store of a command, and where each choice came from."""

    prefect: str  # API URL; "" for Prefect's temporary server (or no Prefect: see uses_prefect)
    prefect_from: str  # "PREFECT_API_URL", "hill up" or ""
    mlflow: str  # tracking URI: a server's, or the local sqlite store
    mlflow_from: str  # "MLFLOW_TRACKING_URI", "hill up" or "local store"
    stale: str = ""  # the env.sh of servers that do not answer now, if any
    uses_prefect: bool = True  # False for a command that reads MLflow only

    def line(self) -> str:
        """``Servers: Prefect … (hill up), MLflow … (hill up)``: one line for the terminal."""
        prefect = (
            f"Prefect {self.prefect} ({self.prefect_from})"
            if self.prefect
            else "Prefect's temporary server for this run"
        )
        mlflow = f"MLflow {self.mlflow} ({self.mlflow_from})"
        hint = ""
        if self.stale:
            hint = f"; the servers in {self.stale} do not answer (`hill up` starts them)"
        elif HILL_UP not in (self.prefect_from, self.mlflow_from) and not self.prefect:
            hint = "; `hill up` starts servers that later runs reuse"
        return f"Servers: {prefect}, {mlflow}{hint}"


def resolve(project: Path | str = ".", prefect: bool = True) -> Servers:
    """The servers a command in ``project`` uses (see the module's docstring for the order).

    With ``prefect`` False (a command that only reads MLflow) Prefect is left out: neither its
    settings nor a recorded Prefect server are looked at, and prefect is not imported.

    Raises:
        HillError: an explicitly set server (PREFECT_API_URL, MLFLOW_TRACKING_URI) that does not
            answer, in one line naming its URL: before any work, never a traceback.
    """
    found = recorded(project)
    prefect_pair = _prefect_choice(found.get("PREFECT_API_URL", "")) if prefect else ("", "")
    mlflow_pair = _mlflow_choice(found.get("MLFLOW_TRACKING_URI", ""), project)
    if prefect_pair[1] == "PREFECT_API_URL":
        check_prefect(prefect_pair[0])
    if mlflow_pair[1] == "MLFLOW_TRACKING_URI":
        from pipelines.tracking import check_server

        check_server(mlflow_pair[0])
    # env.sh is stale when its servers went unused because they did not answer (not when the
    # user exported them: `source env.sh` makes them explicit).
    answering = HILL_UP in (prefect_pair[1], mlflow_pair[1])
    explicit = prefect_pair[1] == "PREFECT_API_URL" or not prefect
    explicit = explicit and mlflow_pair[1] == "MLFLOW_TRACKING_URI"
    stale = str(state_dir(project) / "env.sh") if found and not (answering or explicit) else ""
    return Servers(*prefect_pair, *mlflow_pair, stale=stale, uses_prefect=prefect)


def with_gate_service(cfg, project: Path | str = "."):
    """``cfg`` with ``gate.service_url`` set to the gate service infra/up.sh started for this
    project (its env.sh's HILL_GATE_URL) when the config keeps the default URL and that
    service answers: a service on another port (HILL_GATE_PORT) is where the links must point
    (defect A). An explicit ``gate.service_url`` is left as it is."""
    from hill_core.config import GateConfig

    url = recorded(project).get("HILL_GATE_URL", "")
    if cfg.gate.service_url != GateConfig().service_url or not url:
        return cfg
    if not answers(f"{url.rstrip('/')}/healthz", "ok"):
        return cfg
    return cfg.replace(**{"gate.service_url": url})


def check_prefect(url: str) -> None:
    """One-line :class:`HillError` when the Prefect API at ``url`` does not answer its health
    check (Prefect itself would retry, then print a page of traceback)."""
    if not answers(f"{url.rstrip('/')}/health", "true"):
        raise HillError(
            f"Prefect server at {url} does not answer: start it (`{HILL_UP}`, infra/up.sh) or "
            "unset PREFECT_API_URL"
        )


def require_prefect_server(servers: Servers, what: str) -> None:
    """Refuse a question about Prefect's runs when no server is running: a temporary server
    would start empty and answer "none", which is not true of the server the runs use."""
    if not servers.prefect:
        raise HillError(
            f"{what}: no Prefect server is running here (PREFECT_API_URL is unset and "
            f"`{HILL_UP}` started none); gates wait on the server their runs use: set "
            "PREFECT_API_URL to it"
        )


def failure_line(err: BaseException) -> str | None:
    """One line for a server failure that reached a command as an exception, else None:
    Prefect's temporary server that did not start in time, or a server that stopped answering
    mid-command (Prefect's or MLflow's connection errors)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        text = " ".join(str(err).split())
        if EPHEMERAL_TIMEOUT in text:
            return (
                f"Prefect's temporary server did not start within {startup_limit()} s (a busy "
                f"machine?): start the servers once with `{HILL_UP}`, then run again"
            )
        name = type(err).__name__
        url = getattr(getattr(err, "request", None), "url", None)
        if name in ("ConnectError", "ConnectTimeout") and url is not None:
            return f"server at {url.scheme}://{url.host}:{url.port} stopped answering ({name})"
        err = err.__cause__ or err.__context__
    return None


def startup_limit() -> int:
    """The start-up limit of Prefect's temporary server in force, in seconds."""
    value = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "")
    return int(value) if value.isdigit() else EPHEMERAL_STARTUP_S


def patient_startup() -> None:
    """Give Prefect's temporary server :data:`EPHEMERAL_STARTUP_S` to start (unless the user
    set a limit). Set before prefect is imported: its settings are read then."""
    os.environ.setdefault(
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_S)
    )


def _prefect_choice(recorded_url: str) -> tuple[str, str]:
    """(API URL, where from): the explicit setting, else the recorded server if it answers."""
    explicit = prefect_setting()
    if explicit:
        return explicit, "PREFECT_API_URL"
    if recorded_url and answers(f"{recorded_url.rstrip('/')}/health", "true"):
        return recorded_url, HILL_UP
    return "", ""


def _mlflow_choice(recorded_uri: str, project: Path | str) -> tuple[str, str]:
    """(tracking URI, where from): the explicit one, the recorded server if it answers, or the
    project's sqlite store."""
    from pipelines.tracking import tracking_uri

    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"], "MLFLOW_TRACKING_URI"
    if recorded_uri and answers(f"{recorded_uri.rstrip('/')}/health", "OK"):
        return recorded_uri, HILL_UP
    return tracking_uri(project), "local store"


def prefect_setting() -> str:
    """``PREFECT_API_URL`` as Prefect reads it (environment, profile, prefect.toml), or "".

    The environment is read first: Prefect's settings were read when prefect was imported, and
    a variable set since (a test, `hill serve`) is not in them."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or ""


@contextlib.contextmanager
def using(servers: Servers) -> Iterator[Servers]:
    """Point Prefect and MLflow at the servers `hill up` started, for the block.

    Explicit settings are left as they are. The environment carries the URLs to child
    processes (a study's Dask workers); Prefect, imported already, also gets them through its
    settings context.
    """
    changes = {}
    if servers.uses_prefect and not servers.prefect:  # Prefect's temporary server will start
        changes["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = str(startup_limit())
    if servers.prefect_from == HILL_UP:
        changes["PREFECT_API_URL"] = servers.prefect
    if servers.mlflow_from == HILL_UP:
        changes["MLFLOW_TRACKING_URI"] = servers.mlflow
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        with contextlib.ExitStack() as stack:
            if "PREFECT_API_URL" in changes:
                from prefect.settings import PREFECT_API_URL, temporary_settings

                stack.enter_context(temporary_settings(updates={PREFECT_API_URL: servers.prefect}))
            if "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in changes:
                from prefect.settings import (
                    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as LIMIT,
                )
                from prefect.settings import temporary_settings

                stack.enter_context(temporary_settings(updates={LIMIT: startup_limit()}))
            yield servers
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def up(project: Path, prefect_port: int, mlflow_port: int, postgres: bool) -> None:
    """Start (or keep) the project's Prefect and MLflow servers with infra/up.sh.

    SQLite by default: one user needs no database server, and MLflow then serves the project's
    own ``mlflow.db``. ``postgres`` starts PostgreSQL under both, as the production stack does.
    """
    env = script_env(project)
    env |= {"HILL_PREFECT_PORT": str(prefect_port), "HILL_MLFLOW_PORT": str(mlflow_port)}
    env["HILL_DB"] = "postgres" if postgres else "sqlite"
    if not postgres:
        env.setdefault("HILL_MLFLOW_WORKERS", "1")  # one writer process on the sqlite file
    services = ["postgres", "prefect", "mlflow"] if postgres else ["prefect", "mlflow"]
    run_script("up.sh", services, env)


def down(project: Path) -> None:
    """Stop whatever infra/up.sh started for ``project`` (`hill up`'s servers included)."""
    run_script("down.sh", [], script_env(project))


def script_env(project: Path) -> dict[str, str]:
    """The environment of infra/'s scripts for ``project``: its state folder, this Python's
    virtual environment (for the `prefect` and `mlflow` commands), the project as their cwd."""
    return {
        **os.environ,
        "HILL_INFRA_DIR": str(state_dir(project)),
        "HILL_PROJECT_DIR": str(Path(project).resolve()),
        "VENV": sys.prefix,
    }


def run_script(name: str, args: list[str], env: dict[str, str]) -> None:
    """Run infra/``name`` with its output on this terminal; one line if it fails."""
    script = INFRA / name
    if not script.is_file():
        raise HillError(
            f"{script} is missing: `hill up` and `hill down` need the infra/ folder of a hill "
            "checkout (pip install -e .)"
        )
    done = subprocess.run([str(script), *args], env=env)
    if done.returncode != 0:
        logs = Path(env["HILL_INFRA_DIR"]) / "logs"
        raise HillError(f"infra/{name} failed (exit {done.returncode}); logs in {logs}")

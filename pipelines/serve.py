"""`hill serve`: the flow as a scheduled Prefect deployment.

Prefect's ephemeral mode has no scheduler (``flow.serve(cron=...)`` warns and never starts a
run), so without ``PREFECT_API_URL`` hill starts a local Prefect server (API, scheduler and UI)
for as long as it serves, and points itself at it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from hill_core.config import Config

SERVER_START_S = 120  # a first start migrates the server's database


@contextmanager
def prefect_api(port: int = 4200) -> Iterator[str]:
    """``PREFECT_API_URL`` when set; else a local ``prefect server start`` until the block ends."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    url = f"http://127.0.0.1:{port}/api"
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    # Its own session: Ctrl-C (or a group's SIGTERM) reaches hill only, whose runner still needs
    # the API to shut down cleanly; hill stops the server afterwards.
    # The UI finds its API from PREFECT_SERVER_API_* (else it calls port 4200 whatever the port).
    env = {
        **os.environ,
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
    }
    server = subprocess.Popen(
        [*command, "--port", str(port)], stdout=subprocess.DEVNULL, start_new_session=True, env=env
    )
    try:
        wait_healthy(url, server)
        os.environ["PREFECT_API_URL"] = url  # before prefect reads its settings
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_healthy(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"prefect server did not answer at {url} within {SERVER_START_S} s")


def serve(cfg: Config, cron: str, name: str, autopilot: str | None) -> None:
    """Serve ``guided_training`` on ``cron`` (each run with its paired baseline) until Ctrl-C."""
    with prefect_api() as api:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from pipelines.flow import RunSpec, guided_training

        print(f"Prefect API {api}; UI {api.removesuffix('/api')} shows runs waiting at gates")
        spec = RunSpec(autopilot=autopilot)
        with temporary_settings(updates={PREFECT_API_URL: api}):
            guided_training.serve(
                name=name,
                cron=cron,
                parameters={"config": cfg.to_dict(), "spec": spec.model_dump()},
                global_limit=1,  # a run still waiting at a gate delays the next one
                pause_on_shutdown=True,  # Ctrl-C pauses the schedule: nothing fires unattended
            )

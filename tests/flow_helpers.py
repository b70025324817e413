"""Helpers for tests and demos of the flow: a throw-away project and a scripted person at gates.

``make_project`` builds a git + DVC repository with its own params.yaml and dvc.yaml;
``GateAnswerer`` watches the Prefect API for paused runs and answers their gates through the
gate page's HTTP API (as a script would) or through Prefect's own resume API.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import pytest
import yaml

from hill_core.config import Config, load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = [  # about 10 s of CPU per run: 4 epochs of digits, gates after epochs 2 and 3
    "base.device=cpu",
    "train.epochs=4",
    "hill.gate_epochs=[2, 3]",
    "hill.snapshot_size=100",
    "gate.poll_interval_s=1",
]


QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "MPLBACKEND": "Agg",
}


# How long a Prefect test server may take to answer after it starts, seconds. Prefect's test
# harness allows 30 s, which a loaded machine missed (a starved test timed out while the server
# was still starting); a server that answers is used at once, so this limit only bounds a hang.
TEST_SERVER_START_S = 600


@contextlib.contextmanager
def prefect_test_server() -> Iterator[None]:
    """Prefect's test harness (a temporary SQLite server) with :data:`TEST_SERVER_START_S`."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=TEST_SERVER_START_S):
        yield


@contextlib.contextmanager
def prefect_project(
    root: Path, overrides: list[str] = (), prepare: Callable[[Path], None] | None = None
) -> Iterator[tuple[Path, Config]]:
    """``root`` as a tmp project (params.yaml with ``overrides``; ``prepare(root)`` writes what
    else it needs, e.g. data files) and the working directory, with a Prefect test server."""
    with pytest.MonkeyPatch.context() as env:
        for key, value in {**QUIET, "PREFECT_HOME": str(root / ".prefect")}.items():
            env.setenv(key, value)
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.chdir(root)
        cfg = make_project(root, overrides)
        if prepare is not None:
            prepare(root)
        with prefect_test_server():
            yield root, cfg


@contextlib.contextmanager
def local_mlflow_store(root: Path) -> Iterator[Path]:
    """``root`` as the working directory with MLflow's default store there (sqlite, no server)."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.chdir(root)
        yield root


def mlflow_client():
    from pipelines.tracking import client

    return client()


def make_project(root: Path, overrides: list[str] = ()) -> Config:
    """A git + DVC repo at ``root`` with the resolved tiny config as params.yaml and dvc.yaml.

    The code the dvc.yaml stages depend on is linked in, so ``dvc repro`` sees it.
    """
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    cfg = load_config(REPO_ROOT / "params.yaml", [*TINY, *overrides])
    (root / "params.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    for name in ("dvc.yaml", "dvc-params.yaml", ".dvcignore"):
        (root / name).write_text((REPO_ROOT / name).read_text())
    for package in ("hill_core", "pipelines"):
        (root / package).symlink_to(REPO_ROOT / package)
    return cfg


@dataclass
class SeenGate:
    """A gate the answerer found waiting: the run, its state name then, epoch and page link."""

    flow_run_id: UUID
    state_name: str
    epoch: int
    url: str
    reply: dict = field(default_factory=dict)


class GateAnswerer:
    """Answer every gate that waits, in a background thread, with ``answer(gate) -> reply``.

    Use as a context manager around a flow call; ``seen`` lists the gates answered.
    """

    def __init__(self, answer: Callable[[SeenGate], dict], poll_s: float = 0.3):
        self.answer = answer
        self.poll_s = poll_s
        self.seen: list[SeenGate] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> GateAnswerer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _watch(self) -> None:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            while not self._stop.is_set():
                try:
                    for gate in waiting_gates(
                        client, {(g.flow_run_id, g.epoch) for g in self.seen}
                    ):
                        gate.reply = self.answer(gate)
                        self.seen.append(gate)
                except Exception as err:  # noqa: BLE001 - reported to the test, not swallowed
                    self.errors.append(err)
                    return
                time.sleep(self.poll_s)


def waiting_gates(client, answered: set) -> list[SeenGate]:
    """The gates `hill gates list` shows that this answerer has not answered yet."""
    from pipelines.gate_service.listing import waiting_gates as waiting

    return [
        SeenGate(g.flow_run_id, g.state, g.epoch, g.url)
        for g in waiting(client)
        if (g.flow_run_id, g.epoch) not in answered
    ]


def via_page(decision: str = "approve", shrink: float = 0.5, moved: int = 5):
    """An answer through the gate page's API: shrink the layout, move ``moved`` points alone."""

    def answer(gate: SeenGate) -> dict:
        from gradio_client import Client

        page = Client(gate.url, verbose=False)
        snap = page.predict(api_name="/snapshot")
        rows = [
            {"sample_id": s, "x": shrink * x, "y": shrink * y, "moved": i < moved}
            for i, (s, x, y) in enumerate(zip(snap["sample_id"], snap["x"], snap["y"], strict=True))
        ]
        return page.predict(rows, decision, api_name="/submit")

    return answer


def via_prefect(decision: str = "approve"):
    """An answer through Prefect's resume API alone, as from the Prefect UI: no page, no edits."""

    def answer(gate: SeenGate) -> dict:
        from prefect.flow_runs import resume_flow_run

        resume_flow_run(gate.flow_run_id, run_input={"decision": decision})
        return {"decision": decision}

    return answer

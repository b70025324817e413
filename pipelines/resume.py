"""`hill resume RUN`: continue a run whose process died, from what its files hold.

The run is started again from the top under its own name with the parameters it was started
with (``runs/<run>/flow_params.json``): finished segments come back from their checkpoints,
recorded gates from their edits files, and MLflow logging goes on in the run's own MLflow runs.
Only the segment that was cut short trains again, from its last checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hill_core.config import Config, ConfigError, from_dict
from hill_core.errors import HillError
from pipelines.paths import RunPaths


class NotResumableError(HillError):
    """The run cannot be resumed; the message says why and what can be, in one line."""


def resume_params(cfg: Config, run_name: str) -> dict[str, Any]:
    """The flow parameters ``run_name`` was started with.

    Raises:
        NotResumableError: no such run, an unreadable parameter file, or a finished run.
    """
    paths = RunPaths.of(cfg, run_name)
    file = paths.flow_params()
    if not file.is_file():
        known = ", ".join(resumable(cfg)) or "none"
        raise NotResumableError(
            f"no run {run_name!r} under {cfg.base.run_dir} (resumable: {known})"
        )
    if paths.summary().is_file():
        raise NotResumableError(f"{run_name} already finished ({paths.summary()})")
    try:
        params = json.loads(file.read_text())
        from_dict(params["config"])
    except (ValueError, KeyError, TypeError, ConfigError) as err:
        raise NotResumableError(f"{file}: not readable flow parameters ({err})") from None
    return params


def resumable(cfg: Config) -> list[str]:
    """Runs under base.run_dir that started and did not finish, by name."""
    root = Path(cfg.base.run_dir)
    return sorted(
        p.parent.name
        for p in root.glob("*/flow_params.json")
        if not (p.parent / "summary.json").exists()
    )


def check_not_waiting(run_name: str) -> None:
    """Refuse a run that waits normally at a gate without a process (Suspended: a deployment's
    run whose worker was freed): retiring it would strand the link a person holds.

    Raises:
        NotResumableError: one line pointing to where the gate is answered.
    """
    from prefect import get_client
    from prefect.client.schemas import filters

    name = filters.FlowRunFilterName(any_=[run_name])
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=filters.FlowRunFilter(name=name))
    for run in runs:
        if run.state is not None and run.state.name == "Suspended":
            raise NotResumableError(
                f"{run_name} waits at its gate (Suspended, flow run {run.id}): answer it at its "
                "link or with `hill gates decide` (`hill gates list` shows it); nothing to resume"
            )


def retire_flow_runs(run_name: str) -> list[str]:
    """End, as Crashed, the unfinished Prefect flow runs of ``run_name`` whose process died.

    Without this the Prefect UI and `hill gates list` would go on showing the dead process's
    run as Running, or Paused at a gate whose page no longer exists. Returns their ids.
    """
    from prefect import get_client
    from prefect.client.schemas import filters
    from prefect.states import Crashed

    name = filters.FlowRunFilterName(any_=[run_name])
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=filters.FlowRunFilter(name=name))
        ended = []
        for run in runs:
            if run.state is not None and not run.state.is_final():
                message = "its process died; continued by `hill resume`"
                client.set_flow_run_state(run.id, Crashed(message=message), force=True)
                ended.append(str(run.id))
    return ended

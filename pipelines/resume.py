"""`hill resume RUN`: continue a run whose process died, from what its files hold.

The run is started again from the top under its own name with the parameters it was started
with (``runs/<run>/flow_params.json``): finished segments come back from their checkpoints,
recorded gates from their edits files, and MLflow logging goes on in the run's own MLflow runs.
Only the segment that was cut short trains again, from its last checkpoint.

A run of a deployment goes back to its deployment: a new flow run of it, under the run's name,
for a worker on its work pool (where its data, GPU and logs are), unless the user asks to run
it in the terminal (``hill resume RUN --here``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

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


@dataclass(frozen=True)
class Deployment:
    """The deployment a run came from: where `hill resume` sends it back."""

    id: UUID
    name: str  # flow/deployment, as `prefect deployment run` takes it
    pool: str  # its work pool


def deployment_of(run_name: str) -> Deployment | None:
    """The deployment of ``run_name``'s newest Prefect flow run; None when that one ran in a
    terminal (``hill run``, ``hill resume --here``) or there is none.

    Raises:
        NotResumableError: the deployment was deleted since (one line; ``--here`` still works).
    """
    from prefect import get_client
    from prefect.client.schemas import filters
    from prefect.exceptions import ObjectNotFound

    name = filters.FlowRunFilterName(any_=[run_name])
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=filters.FlowRunFilter(name=name))
        if not runs:
            return None
        newest = max(runs, key=lambda run: run.created)
        if newest.deployment_id is None:
            return None
        try:
            deployment = client.read_deployment(newest.deployment_id)
        except ObjectNotFound:
            raise NotResumableError(
                f"{run_name} ran from deployment {newest.deployment_id}, which no longer exists: "
                f"`hill resume {run_name} --here` continues it in this terminal"
            ) from None
        flow = client.read_flow(deployment.flow_id)
    return Deployment(deployment.id, f"{flow.name}/{deployment.name}", deployment.work_pool_name)


def submit(deployment: Deployment, run_name: str, params: dict[str, Any]) -> UUID:
    """A new flow run of ``deployment`` with the run's own parameters and name; a worker on its
    pool picks it up and continues the run from its files. Returns its id."""
    from prefect import get_client

    parameters = {"config": params["config"], "spec": params["spec"]}
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run_from_deployment(
            deployment.id, parameters=parameters, name=run_name
        )
    return flow_run.id

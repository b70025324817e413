"""`hill deploy`: the flow as a Prefect deployment on a work pool, picked up by its workers.

The deployment's code is this project folder (``flow.from_source``), so a process worker started
here (``infra/up.sh`` starts one) runs it with the project's files, runs/ and data/ around it.
Its parameters are the project's params.yaml, resolved now and visible in the Prefect UI; at
most ``concurrency`` runs of it go at once (one by default: scheduled runs never overlap).
Gates of its runs suspend (``gate.wait: auto``): the worker is free while a run waits.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from hill_core.config import Config
from hill_core.errors import HillError

ENTRYPOINT = "pipelines/flow.py:guided_training"


class DeployError(HillError):
    """The deployment cannot be made as asked; the message says why, in one line."""


def check_cron(cron: str | None, timezone: str) -> None:
    """Raise :class:`DeployError` for a cron expression or time zone that Prefect would refuse."""
    if cron is None:
        return
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as err:
        detail = err.errors()[0]["msg"].removeprefix("Value error, ")
        raise DeployError(f"--cron {cron!r}: {detail}") from None


def deploy(
    cfg: Config,
    name: str,
    pool: str,
    cron: str | None,
    timezone: str = "UTC",
    autopilot: str | None = None,
    concurrency: int = 1,
) -> UUID:
    """Register (or update) the deployment ``guided-training/<name>`` on work pool ``pool``.

    Raises:
        DeployError: a bad cron expression, or no work pool ``pool`` at PREFECT_API_URL.
    """
    from prefect import flow
    from prefect.exceptions import ObjectNotFound
    from prefect.schedules import Cron

    from pipelines.flow import RunSpec

    check_cron(cron, timezone)
    check_pool(pool)
    source = flow.from_source(source=str(Path.cwd()), entrypoint=ENTRYPOINT)
    spec = RunSpec(autopilot=autopilot).model_dump(mode="json")
    try:
        return source.deploy(
            name=name,
            work_pool_name=pool,
            schedules=[Cron(cron, timezone=timezone)] if cron else [],
            parameters={"config": cfg.to_dict(), "spec": spec},
            concurrency_limit=concurrency,
            description=f"hill guided run of {cfg.data.short_name} with its paired baseline",
            tags=["hill", cfg.data.short_name],
            build=False,
            push=False,
            print_next_steps=False,
        )
    except ObjectNotFound as err:
        raise DeployError(f"work pool {pool!r}: {err}") from None


def check_pool(pool: str) -> None:
    """One clear line when the work pool is missing (``infra/up.sh`` creates hill-pool)."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            raise DeployError(
                f"no work pool {pool!r} at the Prefect API: create it with "
                f"`prefect work-pool create {pool} --type process` (infra/up.sh does)"
            ) from None

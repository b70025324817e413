"""`hill gates list` and `hill gates decide`: answer a waiting gate from a terminal.

A gate waits as a paused ``guided-training`` flow run named after its hill run, with a markdown
artifact ``gate-<epoch>`` that holds the page's link. Deciding resumes the run through Prefect's
API with the decision alone, as the Prefect UI's form does; the run records it through the
page's lock (source ``prefect``), so a click on the page at the same moment cannot also win.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

from hill_core.errors import HillError

LINK = re.compile(r"\]\((http[^)]+)\)")
PAUSE_KEY = re.compile(r"gate-(\d+)")  # pipelines.gate pauses and suspends with this key


class GateNotWaitingError(HillError):
    """No gate waits where the user said; the message lists those that do, in one line."""


@dataclass(frozen=True)
class WaitingGate:
    """A paused run's newest gate: the hill run, the epoch, and the page's link."""

    flow_run_id: UUID
    run_name: str
    epoch: int
    url: str
    state: str

    def line(self) -> str:
        return f"{self.run_name}  epoch {self.epoch}  {self.state}  {self.url}"


def waiting_gates(client, decided=None) -> list[WaitingGate]:
    """Every run paused at a hill gate, oldest first (``client``: Prefect's sync client).

    The gate is read from the paused state itself (its pause key, ``gate-<epoch>``), which
    Prefect writes in the same transaction as the state: a run that shows Suspended is listed,
    whatever else is slow to appear. The link comes from the run's ``gate-<epoch>`` artifact;
    a run whose artifact cannot be read still lists, pointing to it.

    ``decided(run_name, epoch)``: whether that gate's decision is recorded already; such a gate
    shows as "decided, waiting to resume" (the gate service resumes it once Prefect answers).
    """
    from prefect.client.schemas import filters
    from prefect.client.schemas.objects import StateType

    paused = filters.FlowRunFilterStateType(any_=[StateType.PAUSED])
    runs = client.read_flow_runs(
        flow_run_filter=filters.FlowRunFilter(state=filters.FlowRunFilterState(type=paused))
    )
    gates = []
    for run in sorted(runs, key=lambda r: r.start_time or r.created):
        epoch = gate_epoch(run.state)
        if epoch is None:
            continue  # paused by something else than a hill gate
        state = run.state.name
        if decided is not None and decided(run.name, epoch):
            state = "decided, waiting to resume"
        gates.append(WaitingGate(run.id, run.name, epoch, gate_link(client, run.id, epoch), state))
    return gates


def gate_epoch(state) -> int | None:
    """The epoch of the hill gate a paused state waits at (its pause key), else None."""
    key = (state.state_details.pause_key or "") if state is not None else ""
    match = PAUSE_KEY.fullmatch(key)
    return int(match.group(1)) if match else None


def gate_link(client, flow_run_id: UUID, epoch: int) -> str:
    """The page's link from the run's ``gate-<epoch>`` artifact (newest version)."""
    from prefect.client.schemas import filters
    from prefect.client.schemas.sorting import ArtifactSort

    artifact_filter = filters.ArtifactFilter(
        flow_run_id=filters.ArtifactFilterFlowRunId(any_=[flow_run_id]),
        key=filters.ArtifactFilterKey(any_=[f"gate-{epoch}"]),
    )
    newest_first = ArtifactSort.CREATED_DESC  # a run suspended again here announced a new link
    for artifact in client.read_artifacts(artifact_filter=artifact_filter, sort=newest_first):
        link = LINK.search(str(artifact.data))
        if link:
            return link.group(1)
    return f"(link: the run's gate-{epoch} artifact)"


def decide(client, run_name: str, epoch: int, decision: str) -> WaitingGate:
    """Resume the paused run ``run_name`` at gate ``epoch`` with ``decision``.

    Raises:
        GateNotWaitingError: no such gate waits (the message names the ones that do).
    """
    from prefect.flow_runs import resume_flow_run

    waiting = waiting_gates(client)
    match = [g for g in waiting if g.run_name == run_name and g.epoch == epoch]
    if not match:
        known = ", ".join(f"{g.run_name} epoch {g.epoch}" for g in waiting) or "none"
        raise GateNotWaitingError(
            f"no gate waits at epoch {epoch} of {run_name} (waiting: {known})"
        )
    resume_flow_run(match[0].flow_run_id, run_input={"decision": decision})
    return match[0]

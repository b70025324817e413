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
    """Every paused flow run with a gate artifact, oldest first (``client``: Prefect's sync).

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
        mine = filters.ArtifactFilterFlowRunId(any_=[run.id])
        artifacts = client.read_artifacts(artifact_filter=filters.ArtifactFilter(flow_run_id=mine))
        found = [
            (int(a.key.removeprefix("gate-")), str(a.data))
            for a in artifacts
            if a.key and re.fullmatch(r"gate-\d+", a.key)
        ]
        if found:
            epoch, markdown = max(found)
            link = LINK.search(markdown)
            state = run.state.name
            if decided is not None and decided(run.name, epoch):
                state = "decided, waiting to resume"
            gates.append(WaitingGate(run.id, run.name, epoch, link.group(1) if link else "", state))
    return gates


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

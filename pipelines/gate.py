"""The gate: a person (through the gate page and a Prefect pause), a simulated user, or a replay.

A person's gate is one small function, :func:`ask_person`: start the page, announce its link,
``pause_flow_run(wait_for_input=GateDecisionInput)``, and turn what resumed the run into a
:class:`GateAnswer`. Three things can resume it:

- the page: its decision resumes the run with the edits file it wrote (source ``page``);
- the Prefect UI or API directly: a decision without edits (approve means "approve the
  unedited layout"); the flow records the unedited table through the page's lock, so a click
  at the same moment cannot overwrite it (source ``prefect``);
- the timeout: at ``gate.timeout_s`` a timer records ``gate.on_timeout`` through the page's own
  lock and resumes the run (source ``timeout``). Prefect's pause timeout is set a margin later,
  because a pause that Prefect times out fails the whole flow run and cannot be caught.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.exceptions import NotPausedError
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput

from hill_core.config import Config
from hill_core.edits import EditsMeta, file_sha256, read_snapshot, write_edits
from hill_core.loop import gate_file, recorded_answers
from hill_core.losses import LossWeights
from hill_core.users import simulated_edits
from pipelines.paths import RunPaths
from pipelines.tasks import GateView

PAUSE_MARGIN_S = 60  # Prefect's own pause timeout comes this long after hill's policy acts
RESUME_WAIT_S = 15.0  # a decision may arrive before Prefect has marked the run Paused
RESUME_RETRY_S = 0.2


class GateDecisionInput(RunInput):
    """What resumes a paused gate (the Prefect UI shows it as a form).

    Resuming from the UI or API needs only ``decision``: approve keeps the layout unedited,
    skip keeps or clears the teacher (``hill.on_skip``), stop ends training here.
    """

    decision: Literal["approve", "skip", "stop"] = "approve"
    edits_path: str = ""  # written by the gate page; empty when resumed from Prefect directly
    edits_sha256: str = ""
    source: Literal["page", "prefect", "timeout"] = "prefect"


@dataclass(frozen=True)
class GateAnswer:
    """A gate's outcome: the decision, the edits file that records it, and who decided."""

    decision: str
    edits_path: Path
    source: str


def ask_person(cfg: Config, paths: RunPaths, view: GateView, facts) -> GateAnswer:
    """Serve the gate page, pause the flow run until a decision (or the timeout), return it.

    ``facts`` (``pipelines.flow.GateFacts``) carries the lockstep baseline and the guard's note.
    """
    from interaction_app.server import launch_gate

    snapshot, _ = read_snapshot(view.snapshot_path)
    context = gate_context(cfg, paths, view, facts)
    resumer = PageResumer(FlowRunContext.get().flow_run.id)
    with launch_gate(snapshot, context, resumer, cfg.gate) as page:
        announce(page.url, cfg, paths, view.epoch)
        timer = threading.Timer(cfg.gate.timeout_s, resumer.time_out, (page, cfg.gate.on_timeout))
        resumer.timer, timer.daemon = timer, True
        timer.start()
        try:
            got = pause_flow_run(
                wait_for_input=GateDecisionInput.with_initial_data(
                    description=gate_markdown(page.url, cfg, paths, view.epoch)
                ),
                timeout=cfg.gate.timeout_s + PAUSE_MARGIN_S,
                poll_interval=cfg.gate.poll_interval_s,
                key=f"gate-{view.epoch}",
            )
        finally:
            timer.cancel()
        if not got.edits_path:  # resumed through Prefect directly, not by the page
            got = record_through_page(page, resumer, got)
    return settle(got, cfg, view.epoch)


def record_through_page(page, resumer: PageResumer, got: GateDecisionInput) -> GateDecisionInput:
    """Write a decision that came through Prefect's API via the page's lock (unedited layout).

    A click on the page at the same moment then cannot overwrite it or be lost: whichever was
    recorded first stands, and the page stops accepting edits.
    """
    from interaction_app.recorder import GateClosedError

    resumer.resumed = True  # the run is running again: the page must not try to resume it
    try:
        decided = page.decide(got.decision)
    except GateClosedError:
        decided = page.decision  # the person's click was recorded first
    get_run_logger().info(f"Gate resumed through Prefect ({got.decision}); recorded unedited")
    return GateDecisionInput(
        decision=decided.decision,
        edits_path=decided.edits_path,
        edits_sha256=decided.edits_sha256,
        source=got.source,
    )


class PageResumer:
    """The page's ``on_decision``: resumes the paused flow run with the recorded decision."""

    def __init__(self, flow_run_id: UUID):
        self.flow_run_id = flow_run_id
        self.timer: threading.Timer | None = None
        self.resumed = False  # set once the run was resumed through Prefect directly

    def __call__(self, decision) -> None:
        if self.resumed:
            return
        # The page calls back in the thread that recorded: the timer's thread means a timeout.
        source = "timeout" if threading.current_thread() is self.timer else "page"
        answer = GateDecisionInput(
            decision=decision.decision,
            edits_path=decision.edits_path,
            edits_sha256=decision.edits_sha256,
            source=source,
        )
        resume_when_paused(self.flow_run_id, answer, lambda: self.resumed)

    def time_out(self, page, policy: str) -> None:
        """Record the timeout policy through the page, so a last-moment click cannot also win."""
        from interaction_app.recorder import GateClosedError

        with contextlib.suppress(GateClosedError):  # the person decided first: that stands
            page.decide(policy)


def resume_when_paused(
    flow_run_id: UUID, answer: GateDecisionInput, resumed_elsewhere: Callable[[], bool]
) -> None:
    """Resume the run with ``answer``, waiting briefly for Prefect to mark it Paused."""
    deadline = time.monotonic() + RESUME_WAIT_S
    while True:
        try:
            return resume_flow_run(flow_run_id, run_input=answer.model_dump())
        except NotPausedError:
            if resumed_elsewhere():
                return
            if time.monotonic() > deadline:
                raise
            time.sleep(RESUME_RETRY_S)


def settle(got: GateDecisionInput, cfg: Config, epoch: int) -> GateAnswer:
    """The answer a resume carried, its file checked against the hash the page reported."""
    if got.source == "timeout":
        get_run_logger().warning(
            f"Gate at epoch {epoch}: no decision within gate.timeout_s={cfg.gate.timeout_s} s; "
            f"applying gate.on_timeout={got.decision}"
        )
    path = Path(got.edits_path)
    if got.edits_sha256 and file_sha256(path) != got.edits_sha256:
        raise ValueError(f"{path} changed after the gate recorded it (sha256 differs)")
    return GateAnswer(got.decision, path, got.source)


def autopilot(strategy: str, cfg: Config, paths: RunPaths, view: GateView) -> GateAnswer:
    """A simulated user with ``strategy`` edits and approves (docs/method.md, "Simulated users")."""
    import numpy as np

    snapshot, _ = read_snapshot(view.snapshot_path)
    confusion = np.asarray(view.confusion)
    edits = simulated_edits(strategy, snapshot, confusion, cfg.base.seed, paths.name, view.epoch)
    path = write_edits(paths.edits(view.epoch), edits, EditsMeta(cfg.hash(), "approve"), snapshot)
    return GateAnswer("approve", path, f"autopilot:{strategy}")


def replayed(folder: str, view: GateView) -> GateAnswer:
    """The decision recorded in ``folder`` for this gate (its items checked against ours)."""
    snapshot, _ = read_snapshot(view.snapshot_path)
    outcome = recorded_answers(folder)(None, snapshot, view.epoch, None)
    return GateAnswer(outcome.decision, gate_file(folder, view.epoch), "replay")


def gate_context(cfg: Config, paths: RunPaths, view: GateView, facts):
    """What the gate page shows: the run, both validation histories and where the edits go."""
    from interaction_app.context import GateContext

    return GateContext(
        run_name=paths.name,
        run_id=paths.name,
        gate_epoch=view.epoch,
        edits_path=paths.edits(view.epoch),
        config_hash=cfg.hash(),
        class_names=view.class_names,
        val_accuracy=[facts.progress.guided_val[e] for e in sorted(facts.progress.guided_val)],
        per_class_accuracy=view.per_class_accuracy,
        confusion=view.confusion,
        weights=LossWeights.from_config(cfg.hill),
        baseline_val_accuracy=[
            facts.progress.baseline_val[e] for e in sorted(facts.progress.baseline_val)
        ],
        last_edit_epoch=facts.progress.last_edit,
        guard_note=facts.guard_note,
    )


def announce(url: str, cfg: Config, paths: RunPaths, epoch: int) -> None:
    """The link, in the terminal and flow-run logs, and as an artifact on the paused run."""
    g = cfg.gate
    get_run_logger().info(
        f"Gate at epoch {epoch} of {paths.name}: open {url} to edit and decide "
        f"(waits {g.timeout_s} s, then {g.on_timeout})"
    )
    create_markdown_artifact(
        markdown=gate_markdown(url, cfg, paths, epoch),
        key=f"gate-{epoch}",
        description=f"Gate page of {paths.name} at epoch {epoch}",
    )


def gate_markdown(url: str, cfg: Config, paths: RunPaths, epoch: int) -> str:
    return (
        f"### hill gate: {paths.name}, epoch {epoch}\n\n"
        f"Open the gate page: [{url}]({url})\n\n"
        f"Or resume here: *approve* keeps the layout unedited, *skip* keeps or clears the "
        f"teacher (`hill.on_skip={cfg.hill.on_skip}`), *stop* ends training. Without a decision "
        f"within {cfg.gate.timeout_s} s the gate applies `{cfg.gate.on_timeout}`."
    )

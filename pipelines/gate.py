"""The gate: a person (through the gate page and a Prefect pause), a simulated user, or a replay.

A person's gate waits in one of two ways (``gate.wait``):

- **pause** (a plain ``hill run`` on a laptop): this process serves the page and
  ``pause_flow_run`` waits, holding the process, as described below;
- **suspend** (runs of a deployment, on a worker): the run writes a gate ticket
  (``pipelines.gate_service.ticket``), announces the gate service's link, and ``suspend_flow_run``
  ends the process. The gate service (``hill gates serve``) serves the page, records the
  decision and resumes the run; Prefect then runs the flow again from the top, which replays
  its finished segments from their checkpoints and finds the decision in the edits file.

Every answer is a :class:`hill_core.decision.GateDecision`: the decision, the edits file that
records it (written before anything acts on it) and who decided. A person's gate is one small
function, :func:`ask_person`: start the page, announce its link,
``pause_flow_run(wait_for_input=GateDecisionInput)``, and return the page's recorded decision.
Three things can resume it, and each records through the page's one lock, so the first to
record stands and a click at the same moment cannot overwrite it:

- the page: its recorder writes the file, then resumes the run with the decision;
- the Prefect UI or API directly: the form holds only the decision (approve means "approve the
  unedited layout"); the flow then records it through the page (source ``prefect``);
- the timeout: at ``gate.timeout_s`` a timer records ``gate.on_timeout`` through the page and
  resumes the run (source ``timeout``). Prefect's pause timeout is set a margin later, because
  a pause that Prefect times out fails the whole flow run and cannot be caught.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Literal
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.exceptions import NotPausedError
from prefect.flow_runs import pause_flow_run, resume_flow_run, suspend_flow_run
from prefect.input import RunInput

from hill_core.config import Config
from hill_core.decision import GateDecision
from hill_core.edits import read_snapshot
from hill_core.loop import recorded_answers, simulated_decision
from hill_core.losses import LossWeights
from pipelines.paths import RunPaths
from pipelines.tasks import GateView

PAUSE_MARGIN_S = 60  # Prefect's own pause timeout comes this long after hill's policy acts
RESUME_WAIT_S = 15.0  # a decision may arrive before Prefect has marked the run Paused
RESUME_RETRY_S = 0.2


class GateDecisionInput(RunInput):
    """The Prefect UI's resume form: only the decision.

    approve keeps the layout unedited, skip keeps or clears the teacher (``hill.on_skip``), stop
    ends training here. The edits file is always the gate's own, written by the page.
    """

    decision: Literal["approve", "skip", "stop"] = "approve"


def ask_person(cfg: Config, paths: RunPaths, view: GateView, facts) -> GateDecision:
    """Wait for a person's decision (or the timeout), as ``gate.wait`` says; return it.

    ``facts`` (``pipelines.flow.GateFacts``) carries the lockstep baseline and the guard's note.
    """
    context = gate_context(cfg, paths, view, facts)
    if suspends(cfg):
        return suspend_for_person(cfg, paths, view, context)
    return pause_for_person(cfg, paths, view, context)


def suspends(cfg: Config) -> bool:
    """Suspend (free the process) when asked, or by default for runs of a deployment."""
    if cfg.gate.wait != "auto":
        return cfg.gate.wait == "suspend"
    return FlowRunContext.get().flow_run.deployment_id is not None


def suspend_for_person(cfg: Config, paths: RunPaths, view: GateView, context) -> GateDecision:
    """Write the gate's ticket, announce the gate service's link, suspend the flow run.

    Nothing after ``suspend_flow_run`` runs in this process: it exits. When the gate service
    records the decision and resumes the run, the re-run finds the edits file before it gets
    here. Only a resume through Prefect's own form (decision only) comes back here: the same
    pause key then returns that input at once, and it is recorded unedited.
    """
    from pipelines.gate_service import ticket as tickets

    run_id = str(FlowRunContext.get().flow_run.id)
    path = tickets.ticket_path(cfg.base.run_dir, paths.name, view.epoch)
    if not (path.exists() and tickets.read_ticket(path).flow_run_id == run_id):
        token, digest = tickets.new_token()
        ticket = tickets.GateTicket(
            paths.name, view.epoch, run_id, view.snapshot_path, tickets.context_json(context),
            digest, time.time() + cfg.gate.timeout_s, cfg.gate.on_timeout,
        )  # fmt: skip
        tickets.write_ticket(cfg.base.run_dir, ticket)
        announce(ticket.link(cfg.gate.service_url, token), cfg, paths, view.epoch)
    got = suspend_flow_run(
        wait_for_input=GateDecisionInput.with_initial_data(
            description=gate_markdown(None, cfg, paths, view.epoch)
        ),
        timeout=backstop_s(cfg),
        key=f"gate-{view.epoch}",
    )
    return settle(record_unedited(view, context, got.decision), cfg, view.epoch)


def backstop_s(cfg: Config) -> int:
    """Prefect's own pause/suspend timeout: only a backstop, after hill's deadline
    (``gate.timeout_s``, the one timeout) has recorded ``gate.on_timeout``. A pause that
    Prefect times out fails the run and cannot be caught."""
    return cfg.gate.timeout_s + PAUSE_MARGIN_S


def record_unedited(view: GateView, context, decision: str) -> GateDecision:
    """Record a decision made in Prefect's form, unless one was recorded first (that stands)."""
    from interaction_app.recorder import GateClosedError, GateRecorder

    snapshot, _ = read_snapshot(view.snapshot_path)
    recorder = GateRecorder(snapshot, context, lambda decided: None)
    try:
        return recorder.record(decision, None, None, None, source="prefect")
    except GateClosedError:
        return recorder.decision


def pause_for_person(cfg: Config, paths: RunPaths, view: GateView, context) -> GateDecision:
    """Serve the gate page here and pause the flow run until a decision (or the timeout)."""
    from interaction_app.server import launch_gate

    snapshot, _ = read_snapshot(view.snapshot_path)
    resumer = PageResumer(FlowRunContext.get().flow_run.id)
    with launch_gate(snapshot, context, resumer, cfg.gate) as page:
        announce(page.url, cfg, paths, view.epoch)
        timer = threading.Timer(cfg.gate.timeout_s, resumer.time_out, (page, cfg.gate.on_timeout))
        timer.daemon = True
        timer.start()
        try:
            got = pause_flow_run(
                wait_for_input=GateDecisionInput.with_initial_data(
                    description=gate_markdown(page.url, cfg, paths, view.epoch)
                ),
                timeout=backstop_s(cfg),
                poll_interval=cfg.gate.poll_interval_s,
                key=f"gate-{view.epoch}",
            )
        finally:
            timer.cancel()
        resumer.resumed = True  # running again: a page decision now must not resume it
        decided = page.decision or record_through_page(page, got.decision)
    return settle(decided, cfg, view.epoch)


def record_through_page(page, decision: str) -> GateDecision:
    """Record a decision that came through Prefect's API via the page's lock (unedited layout).

    A click on the page at the same moment then cannot overwrite it or be lost: whichever was
    recorded first stands, and the page stops accepting edits.
    """
    from interaction_app.recorder import GateClosedError

    try:
        decided = page.decide(decision, source="prefect")
    except GateClosedError:
        return page.decision  # the person's click was recorded first
    get_run_logger().info(f"Gate resumed through Prefect ({decision}); recorded unedited")
    return decided


class PageResumer:
    """The page's ``on_decision``: resumes the paused flow run with the recorded decision."""

    def __init__(self, flow_run_id: UUID):
        self.flow_run_id = flow_run_id
        self.resumed = False  # set once the paused run runs again, however it was resumed

    def __call__(self, decided: GateDecision) -> None:
        if self.resumed:
            return
        answer = GateDecisionInput(decision=decided.decision)
        resume_when_paused(self.flow_run_id, answer, lambda: self.resumed)

    def time_out(self, page, policy: str) -> None:
        """Record the timeout policy through the page, so a last-moment click cannot also win."""
        from interaction_app.recorder import GateClosedError

        with contextlib.suppress(GateClosedError):  # the person decided first: that stands
            page.decide(policy, source="timeout")


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


def settle(decided: GateDecision, cfg: Config, epoch: int) -> GateDecision:
    """The recorded decision, its file checked against the hash recorded with it."""
    if decided.source == "timeout":
        get_run_logger().warning(
            f"Gate at epoch {epoch}: no decision within gate.timeout_s={cfg.gate.timeout_s} s; "
            f"applying gate.on_timeout={decided.decision}"
        )
    return decided.verified()


def autopilot(strategy: str, cfg: Config, paths: RunPaths, view: GateView) -> GateDecision:
    """A simulated user with ``strategy`` edits and approves (docs/method.md, "Simulated users")."""
    import numpy as np

    from hill_core.data import load_data

    snapshot, _ = read_snapshot(view.snapshot_path)
    confusion = np.asarray(view.confusion)
    data = load_data(cfg.data, cfg.base.seed)  # the process's cached load
    return simulated_decision(
        strategy, snapshot, confusion, cfg, paths.name, paths.edits(view.epoch), data
    )


def replayed(folder: str, view: GateView) -> GateDecision:
    """The decision recorded in ``folder`` for this gate (its items checked against ours)."""
    snapshot, _ = read_snapshot(view.snapshot_path)
    return recorded_answers(folder)(None, snapshot, view.epoch, None)


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
        gate_epochs=[e for e in cfg.hill.gate_epochs if e <= view.epoch],
        guard_note=facts.guard_note,
        snapshot_size=cfg.hill.snapshot_size,  # the page says when the training set was smaller
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


def gate_markdown(url: str | None, cfg: Config, paths: RunPaths, epoch: int) -> str:
    """The gate's Prefect artifact and resume-form text (``url`` None: see the artifact)."""
    page = f"[{url}]({url})" if url else f"the link in this run's `gate-{epoch}` artifact"
    return (
        f"### hill gate: {paths.name}, epoch {epoch}\n\n"
        f"Open the gate page: {page}\n\n"
        f"Or resume here: *approve* keeps the layout unedited, *skip* keeps or clears the "
        f"teacher (`hill.on_skip={cfg.hill.on_skip}`), *stop* ends training. Without a decision "
        f"within {cfg.gate.timeout_s} s the gate applies `{cfg.gate.on_timeout}`."
    )

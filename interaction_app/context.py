"""What a gate page needs to know (GateContext); it hands back hill_core's GateDecision."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hill_core.decision import GateDecision
from hill_core.edits import DECISIONS
from hill_core.losses import LossWeights

__all__ = ["DECISIONS", "NEXT_STEPS", "GateContext", "GateDecision"]


@dataclass(frozen=True)
class GateContext:
    """The facts a person needs at a gate, and where the decision goes.

    Attributes:
        run_name, run_id: the paused run (run_id is stamped on every edits row).
        gate_epoch: the epoch after which training paused.
        edits_path: where the decision's Parquet is written.
        config_hash: the resolved config's hash, stamped in the Parquet metadata.
        class_names: C names, index = label.
        val_accuracy: the guided run's validation accuracy per epoch so far, index 0 = epoch 1
            (fractions, 0..1).
        per_class_accuracy: (C,) validation accuracy per class at this gate (fractions).
        confusion: (C, C) validation confusion counts, rows = true class, columns = predicted.
        weights: the loss weights the live readout uses (the run's own).
        baseline_val_accuracy: the lockstep baseline's (same seed, alpha = 0) validation accuracy
            per epoch, index 0 = epoch 1 (fractions); epochs before the fork equal the guided
            run's. Empty when there is no paired baseline (e.g. a snapshot served alone).
        last_edit_epoch: the gate epoch of the most recent approved edit still active; None
            before any edit. The panel reports the guided-minus-baseline change since then.
        gate_epochs: the run's gate epochs up to this one (``hill.gate_epochs``), marked on the
            chart; empty: only this gate is marked.
        guard_note: one line from the guard about the previous teacher (e.g. that it was
            reverted), shown as is when non-empty.
        next_steps: decision -> what happens to the run once it is recorded (one clause, e.g.
            "the run resumes training"), shown on every open page; None: :data:`NEXT_STEPS`.
        snapshot_size: the ``hill.snapshot_size`` asked for; a snapshot with fewer rows (a
            smaller training set) is reported on the page. 0: unknown, nothing reported.
        snapshot_note: one line about the snapshot (e.g. from ``take_snapshot``), shown as is.
    """

    run_name: str
    run_id: str
    gate_epoch: int
    edits_path: Path
    config_hash: str
    class_names: list[str]
    val_accuracy: list[float]
    per_class_accuracy: list[float]
    confusion: list[list[int]]
    weights: LossWeights = LossWeights()
    baseline_val_accuracy: list[float] = field(default_factory=list)
    last_edit_epoch: int | None = None
    gate_epochs: list[int] = field(default_factory=list)
    guard_note: str = ""
    next_steps: dict[str, str] | None = None
    snapshot_size: int = 0
    snapshot_note: str = ""

    def next_step(self, decision: str, layout_edited: bool = True) -> str:
        """What the run does after ``decision`` (one clause); an approval that moved nothing
        teaches no layout (hill_core.loop.after_gate), and the page must not say it does."""
        if decision == "approve" and not layout_edited and self.next_steps is None:
            return UNEDITED_APPROVE
        return (self.next_steps or NEXT_STEPS).get(decision, NEXT_STEPS.get(decision, ""))


# Where a paused run goes after each decision (hill_core/loop.py, hill.on_skip).
NEXT_STEPS = {
    "approve": "the run resumes training with the edited layout as its teacher",
    "skip": "the run resumes training without this gate's edits",
    "stop": "the run stops here and is finalised with what it has",
}
UNEDITED_APPROVE = (
    "nothing was moved, so the run resumes training on cross-entropy alone (no layout teacher)"
)

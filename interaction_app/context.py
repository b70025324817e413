"""What a gate page needs to know (GateContext) and what it hands back (GateDecision)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hill_core.edits import DECISIONS
from hill_core.losses import LossWeights

__all__ = ["DECISIONS", "GateContext", "GateDecision"]


@dataclass(frozen=True)
class GateContext:
    """The facts a person needs at a gate, and where the decision goes.

    Attributes:
        run_name, run_id: the paused run (run_id is stamped on every edits row).
        gate_epoch: the epoch after which training paused.
        edits_path: where the decision's Parquet is written.
        config_hash: the resolved config's hash, stamped in the Parquet metadata.
        class_names: C names, index = label.
        val_accuracy: validation accuracy per epoch so far, index 0 = epoch 1 (fractions, 0..1).
        per_class_accuracy: (C,) validation accuracy per class at this gate (fractions).
        confusion: (C, C) validation confusion counts, rows = true class, columns = predicted.
        previous_gate_delta: validation accuracy change (fraction) caused by the previous gate's
            edit, None at the first gate.
        weights: the loss weights the live readout uses (the run's own).
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
    previous_gate_delta: float | None
    weights: LossWeights = LossWeights()


@dataclass(frozen=True)
class GateDecision:
    """What a gate decided; the Parquet at ``edits_path`` is written for every decision.

    A skip or stop writes the unedited table with that decision in its metadata, so a replay
    needs only files.
    """

    decision: str  # "approve" | "skip" | "stop"
    edits_path: str
    edits_sha256: str

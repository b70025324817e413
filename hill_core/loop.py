"""The schedule of a guided run, and the whole run in one process.

Segments end at the gate epochs; after each gate the decision sets the teacher for the next
segment. The Prefect flow in ``pipelines/`` runs the same schedule as tasks; this in-process
version serves replay, simulated-user studies and the bare-loop benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hill_core.config import Config
from hill_core.data import DataBundle
from hill_core.edits import read_edits
from hill_core.evaluate import EvalResult, evaluate
from hill_core.snapshot import take_snapshot
from hill_core.teacher import Teacher, teacher_from_edits
from hill_core.train import TrainState, init_state, train_segment


@dataclass(frozen=True)
class GateOutcome:
    """What a gate decided: approve (with its edits), skip, or stop."""

    decision: str
    edits: pd.DataFrame | None = None


@dataclass
class RunResult:
    state: TrainState
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per epoch
    gates: dict[int, GateOutcome] = field(default_factory=dict)  # by gate epoch
    test: EvalResult | None = None


# (state, snapshot table, gate epoch, validation result) -> the gate's outcome
AnswerGate = Callable[[TrainState, pd.DataFrame, int, EvalResult], GateOutcome]


def segments(cfg: Config, start_epoch: int = 1) -> list[tuple[int, int]]:
    """Inclusive epoch ranges from ``start_epoch`` that end at each gate and at the last epoch."""
    ends = [g for g in cfg.hill.gate_epochs if g >= start_epoch] + [cfg.train.epochs]
    ranges, first = [], start_epoch
    for end in ends:
        if end >= first:
            ranges.append((first, end))
            first = end + 1
    return ranges


def baseline_config(cfg: Config) -> Config:
    """The paired baseline: same seed, data and schedule, alpha = 0 and no gates."""
    return cfg.replace(**{"hill.alpha": 0.0, "hill.gate_epochs": []})


def next_teacher(
    current: Teacher | None, outcome: GateOutcome, cfg: Config, num_classes: int
) -> Teacher | None:
    """The teacher for the segment after a gate (HILL.md: a skip keeps or clears it)."""
    if outcome.decision == "approve":
        if outcome.edits is None:
            raise ValueError("an approved gate needs its edits table (unedited when nothing moved)")
        return teacher_from_edits(outcome.edits, num_classes)
    if outcome.decision == "skip" and cfg.hill.on_skip == "keep":
        return current
    return None


def run_guided(
    cfg: Config,
    data: DataBundle,
    answer_gate: AnswerGate,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    state: TrainState | None = None,
    teacher: Teacher | None = None,
) -> RunResult:
    """Train ``cfg`` from ``state`` (fresh when None), asking ``answer_gate`` at every gate.

    A state resumed at a gate epoch (checkpoints are taken before the gate) answers that gate
    first; ``teacher`` is the one active when the state was saved.
    """
    state = state or init_state(cfg, data)
    result = RunResult(state)
    stopped = False
    if state.epoch in cfg.hill.gate_epochs:
        teacher, stopped = _pass_gate(state, answer_gate, teacher, result)
    for first, last in [] if stopped else segments(cfg, state.epoch + 1):
        state, history = train_segment(state, first, last, teacher)
        result.history += history
        for metrics in history:
            if on_epoch:
                on_epoch(metrics)
        if last in cfg.hill.gate_epochs:
            teacher, stopped = _pass_gate(state, answer_gate, teacher, result)
            if stopped:
                break
    result.test = evaluate(state.model, data.test, state.device, data.num_classes)
    return result


def _pass_gate(state, answer_gate, teacher, result) -> tuple[Teacher | None, bool]:
    """Ask the gate at ``state.epoch``; return the next teacher and whether the run stops."""
    data = state.data
    val = evaluate(state.model, data.val, state.device, data.num_classes)
    outcome = answer_gate(state, take_snapshot(state), state.epoch, val)
    result.gates[state.epoch] = outcome
    if outcome.decision == "stop":
        return teacher, True
    return next_teacher(teacher, outcome, state.config, data.num_classes), False


def gate_file(folder: str | Path, gate_epoch: int) -> Path:
    """Where a gate's edits Parquet lives inside a run's edits folder."""
    return Path(folder) / f"gate_{gate_epoch:04d}.parquet"


def recorded_outcome(path: str | Path) -> tuple[GateOutcome, pd.DataFrame]:
    """The outcome a gate's edits file records, and its table (for checks against a snapshot)."""
    edits, meta = read_edits(path)
    return GateOutcome(meta.decision, edits if meta.decision == "approve" else None), edits


def recorded_answers(folder: str | Path) -> AnswerGate:
    """Answer each gate with the decision and edits recorded in ``folder``: a replay, no person.

    The recorded snapshot rows are checked against the replayed snapshot (ids, labels), so a
    replay with other data or config fails loudly instead of drifting.
    """

    def answer(state, snapshot, gate_epoch, val):
        path = gate_file(folder, gate_epoch)
        outcome, edits = recorded_outcome(path)
        if sorted(edits["sample_id"]) != sorted(snapshot["sample_id"]):
            raise ValueError(f"{path}: recorded items differ from the replayed snapshot")
        return outcome

    return answer

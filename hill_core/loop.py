"""The story of a guided run, told once for the Prefect flow and the in-process loop alike.

:func:`drive` walks the schedule: train the guided run to each gate, fork the lockstep baseline
at the first gate and advance it segment by segment beside the guided run, let the guard judge
each edit against it, ask the gate, and go on with the teacher the decision sets. *How* a step
runs is the caller's: :class:`InProcess` keeps states in memory (replay, studies, benchmarks);
``pipelines.flow`` runs each step as a Prefect task over checkpoint files. Both train through
the one loop, :func:`hill_core.train.train_segment`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from hill_core.checkpoint import fork_state
from hill_core.config import Config, baseline_config
from hill_core.corrections import Corrections
from hill_core.data import DataBundle
from hill_core.decision import GateDecision
from hill_core.edits import EditsMeta, read_edits, write_edits
from hill_core.evaluate import EvalResult, evaluate
from hill_core.guard import GuardVerdict, judge
from hill_core.snapshot import take_snapshot
from hill_core.teacher import Teacher
from hill_core.train import TrainState, init_state, train_segment
from hill_core.users import simulated_edits


@dataclass(frozen=True)
class Guidance:
    """Which gate's edit is the teacher (None: plain CE), the guard's factor on alpha, and
    which gate's file holds the label corrections in force (None: the data set's labels)."""

    gate: int | None = None
    alpha_scale: float = 1.0
    labels: int | None = None


@dataclass
class Progress:
    """What the story knows so far: validation accuracy by epoch of both runs, and verdicts."""

    guided_val: dict[int, float] = field(default_factory=dict)
    baseline_val: dict[int, float] = field(default_factory=dict)
    verdicts: list[GuardVerdict] = field(default_factory=list)
    last_edit: int | None = None  # gate epoch of the teacher now active

    def record(self, run: str, history: list[dict[str, float]]) -> None:
        target = self.guided_val if run == "guided" else self.baseline_val
        target.update({int(m["epoch"]): m["val_acc"] for m in history})


class Steps(Protocol):
    """How each step of :func:`drive` runs (in memory, or as Prefect tasks over files)."""

    def train(self, run: str, first: int, last: int, guidance: Guidance) -> list[dict]: ...
    def fork_baseline(self) -> None: ...
    def mark(self) -> Any: ...
    def rewind(self, mark: Any) -> None: ...
    def gate(self, epoch: int, progress: Progress, guidance: Guidance) -> GateOutcome: ...
    def judged(self, verdict: GuardVerdict) -> None: ...


def segments(cfg: Config, start_epoch: int = 1) -> list[tuple[int, int]]:
    """Inclusive epoch ranges from ``start_epoch`` that end at each gate and at the last epoch."""
    ends = [g for g in cfg.hill.gate_epochs if g >= start_epoch] + [cfg.train.epochs]
    ranges, first = [], start_epoch
    for end in ends:
        if end >= first:
            ranges.append((first, end))
            first = end + 1
    return ranges


@dataclass(frozen=True)
class GateOutcome:
    """What a gate decided: approve, skip or stop; whether its layout edit teaches (a latent
    request); whether its file holds label corrections (cumulative: all those in force)."""

    decision: str
    edited: bool = False
    corrected: bool = False


def after_gate(cfg: Config, guidance: Guidance, gate_epoch: int, outcome: GateOutcome):
    """The guidance after a gate: an edited approval teaches, an unedited one clears the
    teacher (nothing to teach), a skip keeps or clears it (``hill.on_skip``). An approval's
    file states every label correction in force; a skip changes none."""
    if outcome.decision == "approve":
        return dataclasses.replace(
            guidance,
            gate=gate_epoch if outcome.edited else None,
            labels=gate_epoch if outcome.corrected else None,
        )
    if outcome.decision == "skip" and cfg.hill.on_skip == "keep":
        return guidance
    return dataclasses.replace(guidance, gate=None)


def drive(cfg: Config, steps: Steps, lockstep: bool = True) -> Progress:
    """Run the guided schedule through ``steps``; returns what was measured on the way.

    Args:
        lockstep: fork the paired baseline at the first gate and train it beside the guided
            run (the guard and the gate page need it); False trains the guided run alone.
    """
    progress, guidance, forked = Progress(), Guidance(), False
    previous = guidance  # the guidance before the last gate: what a revert goes back to
    for first, last in segments(cfg):
        mark = steps.mark() if guidance.gate is not None and cfg.hill.guard == "revert" else None
        progress.record("guided", steps.train("guided", first, last, guidance))
        if forked:
            progress.record("baseline", steps.train("baseline", first, last, Guidance()))
        if forked and guidance.gate is not None:
            guidance = _guard(cfg, steps, progress, guidance, previous, mark, (first, last))
        if last not in cfg.hill.gate_epochs:
            continue
        if lockstep and not forked:
            steps.fork_baseline()
            progress.baseline_val = dict(progress.guided_val)  # equal up to the fork
            forked = True
        outcome = steps.gate(last, progress, guidance)
        if outcome.decision == "stop":
            break
        previous, guidance = guidance, after_gate(cfg, guidance, last, outcome)
        progress.last_edit = guidance.gate
    return progress


def _guard(cfg, steps, progress, guidance, previous, mark, segment) -> Guidance:
    """Judge the teacher of the segment just trained; revert or adapt as ``hill.guard`` says."""
    first, last = segment
    h = cfg.hill
    verdict = judge(h.guard, h.guard_tolerance, guidance.gate, first - 1, progress.guided_val,
                    progress.baseline_val, last)  # fmt: skip
    progress.verdicts.append(verdict)
    steps.judged(verdict)
    if verdict.action == "revert":
        # Back to the teacher before this one; a teacher kept through a skipped gate is its
        # own predecessor there, so dropping it means plain CE. The guard judges the latent
        # teacher only: label corrections stay (docs/method.md, "The guard").
        fallback = (
            previous if previous.gate != guidance.gate else Guidance(None, guidance.alpha_scale)
        )
        fallback = dataclasses.replace(fallback, labels=guidance.labels)
        steps.rewind(mark)
        progress.record("guided", steps.train("guided", first, last, fallback))
        progress.last_edit = fallback.gate
        return fallback
    return dataclasses.replace(guidance, alpha_scale=verdict.alpha_scale)


# (state, snapshot table, gate epoch, validation result) -> the recorded decision
AnswerGate = Callable[[TrainState, pd.DataFrame, int, EvalResult], GateDecision]
EpochHook = Callable[[str, dict[str, float]], None]  # (run: guided | baseline, metrics)


@dataclass
class RunResult:
    state: TrainState
    baseline: TrainState | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # guided, one dict per epoch
    baseline_history: list[dict[str, float]] = field(default_factory=list)
    gates: dict[int, GateDecision] = field(default_factory=dict)  # by gate epoch
    progress: Progress | None = None
    test: EvalResult | None = None
    baseline_test: EvalResult | None = None


class InProcess:
    """:class:`Steps` on states held in memory: one process, no files."""

    def __init__(self, cfg: Config, data: DataBundle, answer_gate: AnswerGate, on_epoch=None):
        self.cfg, self.answer_gate = cfg, answer_gate
        self.on_epoch: EpochHook = on_epoch or (lambda run, metrics: None)
        self.result = RunResult(init_state(cfg, data))
        self.teachers: dict[int, Teacher] = {}
        self.corrections: dict[int, Corrections] = {}

    def train(self, run: str, first: int, last: int, guidance: Guidance) -> list[dict]:
        r = self.result
        state = r.state if run == "guided" else r.baseline
        teacher = self.teachers.get(guidance.gate) if guidance.gate is not None else None
        corrections = self.corrections.get(guidance.labels) if guidance.labels else None
        hook = lambda metrics: self.on_epoch(run, metrics)  # noqa: E731
        _, history = train_segment(
            state, first, last, teacher, hook, guidance.alpha_scale, corrections
        )
        (r.history if run == "guided" else r.baseline_history).extend(history)
        return history

    def fork_baseline(self) -> None:
        r = self.result
        r.baseline = fork_state(r.state, baseline_config(self.cfg))
        r.baseline_history = list(r.history)

    def mark(self) -> TrainState:
        return fork_state(self.result.state)

    def rewind(self, mark: TrainState) -> None:
        r = self.result
        r.state = mark
        r.history = [m for m in r.history if m["epoch"] <= mark.epoch]

    def gate(self, epoch: int, progress: Progress, guidance: Guidance) -> GateOutcome:
        state, data = self.result.state, self.result.state.data
        val = evaluate(state.model, data.val, state.device, data.num_classes)
        in_force = self.corrections.get(guidance.labels) if guidance.labels else None
        snapshot = take_snapshot(state, corrections=in_force)
        decided = self.answer_gate(state, snapshot, epoch, val).verified()
        self.result.gates[epoch] = decided
        teacher = decided.teacher(data.num_classes)
        if teacher is not None:
            self.teachers[epoch] = teacher
        corrections = decided.corrections(data.num_classes)
        if corrections is not None:
            self.corrections[epoch] = corrections
        return GateOutcome(decided.decision, teacher is not None, corrections is not None)

    def judged(self, verdict: GuardVerdict) -> None:
        pass  # the verdicts are in the returned Progress


def run_guided(
    cfg: Config,
    data: DataBundle,
    answer_gate: AnswerGate,
    on_epoch: EpochHook | None = None,
    lockstep: bool = True,
) -> RunResult:
    """A whole guided run (and its lockstep baseline) in this process; see :func:`drive`."""
    steps = InProcess(cfg, data, answer_gate, on_epoch)
    progress = drive(cfg, steps, lockstep)
    r = steps.result
    r.progress = progress
    r.test = evaluate(r.state.model, data.test, r.state.device, data.num_classes)
    if r.baseline is not None:
        r.baseline_test = evaluate(r.baseline.model, data.test, r.state.device, data.num_classes)
    return r


def gate_file(folder: str | Path, gate_epoch: int) -> Path:
    """Where a gate's edits Parquet lives inside a run's edits folder."""
    return Path(folder) / f"gate_{gate_epoch:04d}.parquet"


def recorded_answers(folder: str | Path) -> AnswerGate:
    """Answer each gate with the decision recorded in ``folder``: a replay, no person.

    The recorded items must all be in the replayed snapshot, so a replay with other data or
    config fails loudly instead of drifting. The replayed snapshot may hold more (the suspects
    that snapshots show since edits schema 2): training reads the recorded file alone.
    """

    def answer(state, snapshot, gate_epoch, val) -> GateDecision:
        path = gate_file(folder, gate_epoch)
        edits, _ = read_edits(path)
        if not edits["sample_id"].isin(snapshot["sample_id"]).all():
            raise ValueError(f"{path}: recorded items differ from the replayed snapshot")
        return GateDecision.recorded(path, source="replay")

    return answer


def simulated_decision(
    strategy: str,
    snapshot: pd.DataFrame,
    confusion,
    cfg: Config,
    run_id: str,
    path: Path,
    data: DataBundle,
) -> GateDecision:
    """A simulated user's edit at a gate, recorded at ``path`` as an approval.

    ``data`` gives the number of classes and, for the oracles alone, the true labels of
    items whose labels ``data.label_noise`` flipped.
    """
    epoch = int(path.stem.split("_")[-1])
    edits = simulated_edits(
        strategy, snapshot, confusion, cfg.base.seed, run_id, epoch, data.truth, cfg.hill.budget
    )
    meta = EditsMeta(
        cfg.hash(), "approve", source=f"autopilot:{strategy}", num_classes=data.num_classes
    )
    return GateDecision.recorded(write_edits(path, edits, meta, snapshot))


def autopilot_answers(strategy: str, folder: str | Path) -> AnswerGate:
    """Answer each gate as the simulated user ``strategy`` would, recording it in ``folder``."""

    def answer(state, snapshot, gate_epoch, val) -> GateDecision:
        path = gate_file(folder, gate_epoch)
        return simulated_decision(
            strategy, snapshot, val.confusion, state.config, Path(folder).name, path, state.data
        )

    return answer

"""The Prefect tasks of a guided run. Each loads its inputs from files, calls hill_core, saves.

A task takes and returns checkpoint paths, never tensors: the checkpoint (hill_core.train's
plain dict) is the only hand-over between tasks, so any segment can be re-run or resumed from
disk, and the flow's parameters and results stay small and JSON-able.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from hill_core.checkpoint import load_state, save_state
from hill_core.config import Config, from_dict
from hill_core.data import load_data
from hill_core.decision import GateDecision
from hill_core.edits import write_snapshot
from hill_core.evaluate import evaluate
from hill_core.snapshot import take_snapshot
from hill_core.teacher import Teacher
from hill_core.train import TrainState, init_state, train_segment
from pipelines.paths import RunPaths

EpochHook = Callable[[dict[str, float]], None]


@dataclass(frozen=True)
class Checkpoint:
    """A saved training state: its file and the last epoch it completed."""

    path: str
    epoch: int


@dataclass(frozen=True)
class GateView:
    """What a gate shows and the flow logs, computed from the checkpoint at the gate."""

    epoch: int
    snapshot_path: str
    class_names: list[str]
    val_accuracy: float  # at this gate, fraction
    per_class_accuracy: list[float]
    confusion: list[list[int]]  # (C, C) validation counts, rows = true class


def _load(config: dict[str, Any], checkpoint: str) -> tuple[Config, TrainState]:
    cfg = from_dict(config)
    return cfg, load_state(checkpoint, cfg, load_data(cfg.data, cfg.base.seed))


@task(name="prepare", cache_policy=NO_CACHE)
def prepare(
    config: dict[str, Any], paths: RunPaths, fork_from: str | None = None
) -> tuple[Checkpoint, list[dict[str, float]]]:
    """The first checkpoint: a fresh state, or a fork of another run's checkpoint.

    A baseline forks from its guided run's checkpoint at the first gate: up to there the two
    runs are the same plain-CE training, so those epochs are not trained twice.

    Returns:
        the checkpoint and the per-epoch metrics it inherits (empty for a fresh state).
    """
    cfg = from_dict(config)
    data = load_data(cfg.data, cfg.base.seed)
    state = load_state(fork_from, cfg, data) if fork_from else init_state(cfg, data)
    path = save_state(state, paths.checkpoint(state.epoch))
    return Checkpoint(str(path), state.epoch), list(state.extra.get("history", []))


@task(name="train-segment", cache_policy=NO_CACHE)
def train(
    config: dict[str, Any],
    checkpoint: Checkpoint,
    last: int,
    teacher_file: str | None,
    alpha_scale: float,
    paths: RunPaths,
    on_epoch: EpochHook | None = None,
    progress: bool = False,
) -> tuple[Checkpoint, list[dict[str, float]]]:
    """Train from ``checkpoint`` to epoch ``last`` toward the edit recorded in ``teacher_file``.

    The teacher is rebuilt from the gate's edits file, so a segment depends only on files; None
    trains plain CE. ``on_epoch`` (tracking, progress) sees each epoch as it ends.

    Returns:
        the new checkpoint and the segment's per-epoch metrics.
    """
    cfg, state = _load(config, checkpoint.path)
    teacher = teacher_of(teacher_file, len(state.data.class_names))
    with epoch_bar(checkpoint.epoch, cfg.train.epochs, progress) as advance:

        def hook(metrics: dict[str, float]) -> None:
            state.extra.setdefault("history", []).append(metrics)  # a fork inherits it
            advance(metrics)
            if on_epoch is not None:
                on_epoch(metrics)

        state.extra["history"] = [
            m for m in state.extra.get("history", []) if m["epoch"] <= checkpoint.epoch
        ]  # a re-trained (reverted) segment replaces the first try
        state, history = train_segment(
            state, checkpoint.epoch + 1, last, teacher, hook, alpha_scale
        )
    return Checkpoint(str(save_state(state, paths.checkpoint(last))), last), history


def teacher_of(teacher_file: str | None, num_classes: int) -> Teacher | None:
    """The teacher an approved gate's edits file sets; None (plain CE) without one."""
    if teacher_file is None:
        return None
    return GateDecision.recorded(teacher_file).teacher(num_classes)


@task(name="snapshot", cache_policy=NO_CACHE)
def inspect_gate(config: dict[str, Any], checkpoint: Checkpoint, paths: RunPaths) -> GateView:
    """Take the gate's snapshot (written as Parquet) and the validation scores a person sees."""
    _, state = _load(config, checkpoint.path)
    data = state.data
    snapshot_path = paths.snapshot(state.epoch)
    write_snapshot(snapshot_path, take_snapshot(state), state.epoch, paths.name)
    val = evaluate(state.model, data.val, state.device, data.num_classes)
    return GateView(
        epoch=state.epoch,
        snapshot_path=str(snapshot_path),
        class_names=list(data.class_names),
        val_accuracy=val.accuracy,
        per_class_accuracy=val.per_class_accuracy.tolist(),
        confusion=val.confusion.tolist(),
    )


@task(name="final-evaluation", cache_policy=NO_CACHE)
def final_evaluation(config: dict[str, Any], checkpoint: Checkpoint) -> dict[str, Any]:
    """Test accuracy and macro-F1 of the final checkpoint."""
    _, state = _load(config, checkpoint.path)
    data = state.data
    test = evaluate(state.model, data.test, state.device, data.num_classes)
    return {
        "test_accuracy": test.accuracy,
        "test_macro_f1": test.macro_f1,
        "epochs_trained": state.epoch,
        "checkpoint": checkpoint.path,
    }


def final_model(config: dict[str, Any], checkpoint: Checkpoint):
    """The model of a checkpoint, for logging (not a task: it returns a module)."""
    return _load(config, checkpoint.path)[1].model


@contextmanager
def epoch_bar(done: int, total: int, enabled: bool) -> Iterator[EpochHook]:
    """A terminal progress bar over a segment's epochs; yields the hook that advances it.

    One bar per segment, closed before the gate, so that gate messages never interleave with a
    live bar.
    """
    if not enabled:
        yield lambda metrics: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    status = TextColumn("{task.fields[s]}")
    columns = [TextColumn("epoch"), MofNCompleteColumn(), BarColumn(), status]
    with Progress(*columns) as bar:
        job = bar.add_task("train", total=total, completed=done, s="")

        def advance(m: dict[str, float]) -> None:
            status = f"loss {m['loss']:.3f}  train {m['train_acc']:.3f}  val {m['val_acc']:.3f}"
            bar.update(job, completed=int(m["epoch"]), s=status)

        yield advance

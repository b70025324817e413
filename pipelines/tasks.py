"""The Prefect tasks of a guided run. Each loads its inputs from files, calls hill_core, saves.

A task takes and returns checkpoint paths, never tensors: the checkpoint (hill_core.train's
plain dict) is the only hand-over between tasks, so any segment can be re-run or resumed from
disk, and the flow's parameters and results stay small and JSON-able. The tasks take the flow's
parsed :class:`Config` (a frozen dataclass, never changed), so a flow run parses its config once;
the data set comes from :func:`hill_core.data.load_data`'s per-process cache, loaded once.

The checkpoints are also the run's journal. Each records its *lineage* (the checkpoint it was
trained from, the teacher file's hash, the guard's alpha factor); a task whose output already
exists with the same lineage returns it without training. So a run that Prefect re-runs from
the top (after a suspended gate, a retry) or that ``hill resume`` restarts after a crash
replays its finished segments in a moment and trains only what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from hill_core.checkpoint import CheckpointError, load_state, read_checkpoint, save_state
from hill_core.config import Config
from hill_core.corrections import Corrections
from hill_core.data import load_data
from hill_core.decision import GateDecision
from hill_core.edits import file_sha256, write_snapshot
from hill_core.evaluate import evaluate
from hill_core.snapshot import take_snapshot
from hill_core.teacher import Teacher
from hill_core.train import TrainState, init_state, train_segment
from pipelines.marks import mark
from pipelines.paths import RunPaths

EpochHook = Callable[[dict[str, float]], None]


@dataclass(frozen=True)
class Checkpoint:
    """A saved training state: its file and the last epoch it completed."""

    path: str
    epoch: int
    reused: bool = False  # found on disk with the same lineage: not trained (nor logged) again


@dataclass(frozen=True)
class GateView:
    """What a gate shows and the flow logs, computed from the checkpoint at the gate."""

    epoch: int
    snapshot_path: str
    class_names: list[str]
    val_accuracy: float  # at this gate, fraction
    per_class_accuracy: list[float]
    confusion: list[list[int]]  # (C, C) validation counts, rows = true class


def _load(cfg: Config, checkpoint: str) -> TrainState:
    return load_state(checkpoint, cfg, load_data(cfg.data, cfg.base.seed))


@task(name="prepare", cache_policy=NO_CACHE)
def prepare(
    cfg: Config, paths: RunPaths, fork_from: str | None = None
) -> tuple[Checkpoint, list[dict[str, float]]]:
    """The first checkpoint: a fresh state, or a fork of another run's checkpoint.

    A baseline forks from its guided run's checkpoint at the first gate: up to there the two
    runs are the same plain-CE training, so those epochs are not trained twice.

    Returns:
        the checkpoint and the per-epoch metrics it inherits (empty for a fresh state).
    """
    lineage = {"from": Path(fork_from).name if fork_from else "init", "config": cfg.hash()}
    epoch = read_checkpoint(fork_from)["epoch"] if fork_from else 0
    found = journal_entry(paths.checkpoint(epoch), lineage)
    if found is not None:
        return Checkpoint(str(paths.checkpoint(epoch)), epoch, True), found["extra"]["history"]
    data = load_data(cfg.data, cfg.base.seed)
    state = load_state(fork_from, cfg, data) if fork_from else init_state(cfg, data)
    state.extra = {**state.extra, "lineage": lineage, "history": state.extra.get("history", [])}
    path = save_state(state, paths.checkpoint(state.epoch))
    return Checkpoint(str(path), state.epoch), list(state.extra["history"])


def journal_entry(path: Path, lineage: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it was made from ``lineage``'s inputs, else None.

    A missing, torn or foreign file (a process killed mid-save, another lineage) is None: the
    step runs again and replaces it.
    """
    if not path.is_file():
        return None
    try:
        checkpoint = read_checkpoint(path)
    except CheckpointError:
        return None
    return checkpoint if checkpoint.get("extra", {}).get("lineage") == lineage else None


@dataclass(frozen=True)
class SegmentGuidance:
    """A segment's guidance as files: the teacher's edits file, the guard's alpha factor and
    the edits file whose label corrections are in force (None: none)."""

    teacher_file: str | None = None
    alpha_scale: float = 1.0
    labels_file: str | None = None


def segment_lineage(checkpoint: Checkpoint, guidance: SegmentGuidance):
    """What a segment's result depends on besides the config: its start and its guidance."""
    lineage = {
        "from": Path(checkpoint.path).name,
        "teacher_sha256": file_sha256(guidance.teacher_file) if guidance.teacher_file else "",
        "alpha_scale": float(guidance.alpha_scale),
    }
    if guidance.labels_file:  # absent otherwise, so runs journaled before still match
        lineage["labels_sha256"] = file_sha256(guidance.labels_file)
    return lineage


def _gate_of(edits_file: str) -> int:
    return int(Path(edits_file).stem.split("_")[-1])


def segment_file(paths: RunPaths, last: int, guidance: SegmentGuidance):
    """``ckpt_epoch_0008.pt``, or with the guidance in its name (``-g0004``, ``-a0.500``,
    ``-l0004`` for the gate whose label corrections are in force).

    A reverted segment is trained twice to the same epoch: the two results keep their own
    files, so a re-run from the top finds both.
    """
    path = paths.checkpoint(last)
    g = guidance
    tag = f"-g{_gate_of(g.teacher_file):04d}" if g.teacher_file else ""
    tag += f"-a{g.alpha_scale:.3f}" if g.alpha_scale != 1.0 else ""
    tag += f"-l{_gate_of(g.labels_file):04d}" if g.labels_file else ""
    return path.with_name(f"{path.stem}{tag}{path.suffix}")


@task(name="train-segment", cache_policy=NO_CACHE)
def train(
    cfg: Config,
    checkpoint: Checkpoint,
    last: int,
    guidance: SegmentGuidance,
    paths: RunPaths,
    on_epoch: EpochHook | None = None,
    progress: bool = False,
) -> tuple[Checkpoint, list[dict[str, float]]]:
    """Train from ``checkpoint`` to epoch ``last`` toward the edit recorded in the guidance's
    teacher file, on the labels its labels file corrects.

    The teacher and the corrections are rebuilt from the gates' edits files, so a segment
    depends only on files; no teacher trains plain CE, no labels file the data set's labels.
    ``on_epoch`` (tracking, progress) sees each epoch as it ends.

    Returns:
        the new checkpoint and the segment's per-epoch metrics.
    """
    lineage = segment_lineage(checkpoint, guidance)
    out = segment_file(paths, last, guidance)
    found = journal_entry(out, lineage)
    if found is not None:
        done = [m for m in found["extra"]["history"] if checkpoint.epoch < m["epoch"] <= last]
        return Checkpoint(str(out), last, True), done
    state = _load(cfg, checkpoint.path)
    teacher = teacher_of(guidance.teacher_file, len(state.data.class_names))
    corrections = corrections_of(guidance.labels_file, len(state.data.class_names))
    report = prefect_progress(paths.name, checkpoint.epoch, cfg.train.epochs, console=not progress)
    with epoch_bar(checkpoint.epoch, cfg.train.epochs, progress) as advance:

        def hook(metrics: dict[str, float]) -> None:
            state.extra.setdefault("history", []).append(metrics)  # a fork inherits it
            advance(metrics)
            report(metrics)
            if on_epoch is not None:
                on_epoch(metrics)

        state.extra["history"] = [
            m for m in state.extra.get("history", []) if m["epoch"] <= checkpoint.epoch
        ]  # a re-trained (reverted) segment replaces the first try
        # The moment benchmarks/launch.py times from launch; silent unless HILL_MARKS is set.
        mark(f"epoch-start {paths.name} {checkpoint.epoch + 1}")
        state, history = train_segment(
            state, checkpoint.epoch + 1, last, teacher, hook, guidance.alpha_scale, corrections
        )
    state.extra["lineage"] = lineage
    return Checkpoint(str(save_state(state, out)), last), history


def teacher_of(teacher_file: str | None, num_classes: int) -> Teacher | None:
    """The teacher an approved gate's edits file sets; None (plain CE) without one."""
    if teacher_file is None:
        return None
    return GateDecision.recorded(teacher_file).teacher(num_classes)


def corrections_of(labels_file: str | None, num_classes: int) -> Corrections | None:
    """The label corrections an approved gate's edits file puts in force; None without one."""
    if labels_file is None:
        return None
    return GateDecision.recorded(labels_file).corrections(num_classes)


@task(name="snapshot", cache_policy=NO_CACHE)
def inspect_gate(
    cfg: Config, checkpoint: Checkpoint, paths: RunPaths, labels_file: str | None = None
) -> GateView:
    """Take the gate's snapshot (written as Parquet) and the validation scores a person sees.

    ``labels_file``: the edits file whose corrections are in force, so the snapshot shows them.
    """
    state = _load(cfg, checkpoint.path)
    data = state.data
    snapshot_path = paths.snapshot(state.epoch)
    corrections = corrections_of(labels_file, data.num_classes)
    snapshot = take_snapshot(state, corrections=corrections)
    write_snapshot(snapshot_path, snapshot, state.epoch, paths.name, data.num_classes)
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
def final_evaluation(cfg: Config, checkpoint: Checkpoint) -> dict[str, Any]:
    """Test accuracy and macro-F1 of the final checkpoint."""
    state = _load(cfg, checkpoint.path)
    data = state.data
    test = evaluate(state.model, data.test, state.device, data.num_classes)
    return {
        "test_accuracy": test.accuracy,
        "test_macro_f1": test.macro_f1,
        "epochs_trained": state.epoch,
        "checkpoint": checkpoint.path,
    }


def final_model(cfg: Config, checkpoint: Checkpoint):
    """The model of a checkpoint, for logging (not a task: it returns a module)."""
    return _load(cfg, checkpoint.path).model


_PROGRESS_ARTIFACTS: dict[tuple[str, str], Any] = {}  # (flow run id, run name) -> artifact id


def prefect_progress(run_name: str, done: int, total: int, console: bool = True) -> EpochHook:
    """The hook that shows a run's epochs in Prefect: a progress artifact per run and flow run
    (created at its first trained segment, advanced each epoch) and one log line per epoch.

    With ``console`` False (a terminal progress bar is live) the line goes to the Prefect API
    only, through the ``prefect.extra`` logger, so that it does not break the bar.
    """
    import logging

    from prefect import get_run_logger
    from prefect.artifacts import create_progress_artifact, update_progress_artifact
    from prefect.context import get_run_context

    context = get_run_context()
    flow_run_id = getattr(getattr(context, "task_run", None), "flow_run_id", None) or getattr(
        getattr(context, "flow_run", None), "id", ""
    )
    key = (str(flow_run_id), run_name)
    if key not in _PROGRESS_ARTIFACTS:
        _PROGRESS_ARTIFACTS[key] = create_progress_artifact(
            100.0 * done / total, description=f"Epochs of {run_name} trained, of {total}"
        )
    artifact = _PROGRESS_ARTIFACTS[key]
    logger = get_run_logger() if console else logging.getLogger("prefect.extra.hill")

    def report(m: dict[str, float]) -> None:
        epoch = int(m["epoch"])
        update_progress_artifact(artifact, 100.0 * epoch / total)
        logger.info(
            f"{run_name}: epoch {epoch}/{total}, loss {m['loss']:.4f}, train acc "
            f"{m['train_acc']:.4f}, val acc {m['val_acc']:.4f}"
        )

    return report


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

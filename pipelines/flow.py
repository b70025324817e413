"""The Prefect flow ``guided_training``: a hill run, told as a story.

prepare → for each segment: train → (at a gate) snapshot → gate → record edits → … → evaluate,
then, for a guided run, its paired baseline. The same flow runs a baseline (α = 0, no gates) and
a replay (gates answered from a run's recorded edits).
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from pydantic import BaseModel

from hill_core.config import Config, from_dict
from hill_core.edits import edits_summary, read_edits
from hill_core.loop import baseline_config, segments
from hill_core.users import STRATEGIES
from pipelines import gate, tasks
from pipelines.paths import RunPaths, config_yaml, new_run_name
from pipelines.tracking import GateRecord, Tracker, pair_runs
from pipelines.versioning import check_repo, dvc_add, dvc_md5


class RunSpec(BaseModel):
    """Who answers the gates and how the run is named (the flow's second parameter)."""

    name: str | None = None  # folder under runs/ and data/edits/; generated when None
    mode: Literal["guided", "baseline", "replay"] = "guided"
    autopilot: str | None = None  # a simulated-user strategy answers the gates, not a person
    replay_from: str | None = None  # replay: the recorded edits folder that answers the gates
    fork_from: str | None = None  # baseline: start from this checkpoint (the guided first gate)
    paired_run_id: str | None = None  # baseline: MLflow run id of its guided run
    paired_baseline: bool = False  # guided: run the paired baseline afterwards
    progress: bool = False  # progress bars in the terminal


@flow(name="guided-training")
def guided_training(config: dict[str, Any], spec: RunSpec | None = None) -> dict[str, Any]:
    """Train a hill run with approval gates; returns its test scores and MLflow run id.

    Args:
        config: a resolved config (``Config.to_dict()``), as read from params.yaml.
        spec: who answers the gates, the run's name and mode (see :class:`RunSpec`).
    """
    cfg = from_dict(config)
    spec = named(spec or RunSpec(), cfg)
    paths = RunPaths.of(cfg, spec.name)
    with Tracker.start(cfg, spec.name, tags_of(spec)) as tracker:
        ckpt, inherited = tasks.prepare(config, paths, spec.fork_from)
        tracker.log_history(inherited)
        decided, last_val = [], None  # the gates' edits files so far; val acc at the last gate
        for _, last in segments(cfg, ckpt.epoch + 1):
            ckpt = tasks.train(config, ckpt, last, decided, paths, tracker.log_epoch, spec.progress)
            if last not in cfg.hill.gate_epochs:
                continue
            view = tasks.inspect_gate(config, ckpt, paths)
            answer = answer_gate(cfg, spec, paths, view, last_val)
            record_gate(spec, paths, view, answer, last_val, tracker)
            decided, last_val = [*decided, str(answer.edits_path)], view.val_accuracy
            if answer.decision == "stop":
                break
        summary = tasks.final_evaluation(config, ckpt)
        tracker.log_final(summary, tasks.final_model(config, ckpt))
    summary.update(run_name=spec.name, mlflow_run_id=tracker.run_id)
    if spec.paired_baseline:
        summary["baseline"] = run_paired_baseline(cfg, spec, summary)
    return summary


def named(spec: RunSpec, cfg: Config) -> RunSpec:
    """The spec with a run name; checks up front what a guided run will need at its gates."""
    if spec.mode == "guided" and cfg.hill.gate_epochs:
        check_repo()  # fail now, not after training to the first gate
    if spec.mode == "replay" and not spec.replay_from:
        raise ValueError("a replay needs spec.replay_from, the recorded edits folder")
    if spec.autopilot and spec.autopilot not in STRATEGIES:
        raise ValueError(f"unknown autopilot strategy {spec.autopilot!r} ({', '.join(STRATEGIES)})")
    name = spec.name or new_run_name(cfg, spec.mode)
    spec = spec.model_copy(update={"name": name})
    if spec.mode == "guided":
        path = RunPaths.of(cfg, name).config()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(config_yaml(cfg))  # a replay checks it trains the same
    return spec


def tags_of(spec: RunSpec) -> dict[str, str]:
    """Mode, user (human, strategy, replay or none), pair and Prefect flow run of a run."""
    users = {"guided": spec.autopilot or "human", "baseline": "none", "replay": "replay"}
    context = FlowRunContext.get()
    return {
        "hill.mode": spec.mode,
        "hill.user": users[spec.mode],
        "hill.run_name": spec.name or "",
        "hill.paired_run_id": spec.paired_run_id or "",
        "hill.replay_of": spec.replay_from or "",
        "hill.prefect_flow_run_id": str(context.flow_run.id) if context else "",
    }


def answer_gate(cfg, spec: RunSpec, paths, view, last_val) -> gate.GateAnswer:
    """Replay, autopilot, or a person at the gate page."""
    if spec.replay_from:
        return gate.replayed(spec.replay_from, view)
    if spec.autopilot:
        return gate.autopilot(spec.autopilot, cfg, paths, view)
    delta = None if last_val is None else view.val_accuracy - last_val
    return gate.ask_person(cfg, paths, view, delta)


def record_gate(spec: RunSpec, paths, view, answer: gate.GateAnswer, last_val, tracker) -> None:
    """Version the edits with DVC (a replay's are versioned already), log the gate, one line."""
    md5 = dvc_md5(answer.edits_path) if spec.replay_from else dvc_add(answer.edits_path)
    edits, _ = read_edits(answer.edits_path)
    delta = None if last_val is None else view.val_accuracy - last_val
    record = GateRecord(
        view.epoch, answer.decision, answer.source, answer.edits_path, edits, md5,
        view.val_accuracy, delta,
    )  # fmt: skip
    tracker.log_gate(record, view.class_names, paths.run_dir)
    get_run_logger().info(gate_status(record))


def gate_status(g: GateRecord) -> str:
    """``gate e4: approve (page), 120 points displaced ...``: one line per gate."""
    size = edits_summary(g.edits)
    delta = "" if g.val_delta is None else f" ({g.val_delta:+.3f} since the last gate)"
    return (
        f"gate e{g.epoch}: {g.decision} ({g.source}), {int(size['points_displaced'])} of "
        f"{len(g.edits)} points displaced (mean {size['mean_displacement']:.3g}), "
        f"val acc {g.val_accuracy:.3f}{delta}, dvc md5 {g.md5[:10] or '-'}"
    )


def run_paired_baseline(cfg: Config, spec: RunSpec, guided: dict[str, Any]) -> dict[str, Any]:
    """The guided run's baseline (same seed), forked from its checkpoint at the first gate."""
    gates = cfg.hill.gate_epochs
    fork = str(RunPaths.of(cfg, spec.name).checkpoint(gates[0])) if gates else None
    baseline = guided_training(
        baseline_config(cfg).to_dict(),
        RunSpec(
            name=f"{spec.name}-baseline",
            mode="baseline",
            fork_from=fork,
            paired_run_id=guided["mlflow_run_id"],
            progress=spec.progress,
        ),
    )
    pair_runs(guided["mlflow_run_id"], baseline["mlflow_run_id"])
    return baseline

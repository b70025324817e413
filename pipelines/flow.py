"""The Prefect flow ``guided_training``: a hill run, told as a story.

prepare → for each segment: train the guided run, train its lockstep baseline, let the guard
judge the last edit → (at a gate) snapshot → gate → record edits → … → evaluate both. The story
itself is ``hill_core.loop.drive``; here each step is a task over checkpoint files. The same
flow runs a baseline alone (α = 0, no gates) and a replay (gates answered from a run's edits).

The flow is safe to run again from the top under the same run name: finished segments come
back from their checkpoints (``pipelines.tasks``), recorded gates from their edits files, and
MLflow logging goes on in the same runs. That is how a suspended gate resumes, how a Prefect
retry continues, and what ``hill resume`` does after a crash.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.states import Failed
from pydantic import BaseModel

from hill_core.config import Config, from_dict
from hill_core.data import load_data
from hill_core.decision import GateDecision
from hill_core.edits import edits_summary, read_edits
from hill_core.errors import HillError
from hill_core.guard import GuardVerdict
from hill_core.loop import GateOutcome, Guidance, Progress, baseline_config, drive
from pipelines import gate, tasks
from pipelines.paths import RunPaths, config_yaml, new_run_name
from pipelines.preflight import DATA_FINGERPRINT, check_run, record_data
from pipelines.tracking import GateRecord, Tracker, pair_runs
from pipelines.versioning import dvc_add, dvc_md5, dvc_push


class RunSpec(BaseModel):
    """Who answers the gates and how the run is named (the flow's second parameter)."""

    name: str | None = None  # folder under runs/ and data/edits/; generated when None
    mode: Literal["guided", "baseline", "replay"] = "guided"
    autopilot: str | None = None  # a simulated-user strategy answers the gates, not a person
    replay_from: str | None = None  # replay: the recorded edits folder that answers the gates
    paired_run_id: str | None = None  # baseline: MLflow run id of its guided run
    parent_run_id: str | None = None  # MLflow parent run (a study's), for both runs of a pair
    progress: bool = False  # progress bars in the terminal
    git_add: bool = False  # `git add` the edits' .dvc pointers and config.yaml after each gate


@flow(name="guided-training")
def guided_training(config: dict[str, Any], spec: RunSpec | None = None) -> dict[str, Any]:
    """Train a hill run with approval gates and its lockstep baseline; returns test scores.

    The story is :func:`hill_core.loop.drive`'s; :class:`FlowSteps` runs each step as a task.

    Args:
        config: a resolved config (``Config.to_dict()``), as read from params.yaml. Plain data,
            so that Prefect can store it (deployments, the UI, ``flow_params.json``); parsed
            here once, and the tasks get the parsed :class:`Config`.
        spec: who answers the gates, the run's name and mode (see :class:`RunSpec`).

    A user's mistake (:class:`HillError`) ends the flow run Failed with its one line as the
    state message, and no traceback; the caller gets the error itself.
    """
    try:
        cfg = from_dict(config)
        spec = named(spec or RunSpec(), cfg)
        name_flow_run(spec.name, prefect_tags(spec, cfg))
        save_spec(cfg, spec)
        with contextlib.ExitStack() as stack:
            steps = FlowSteps(cfg, spec, stack)
            drive(cfg, steps, lockstep=spec.mode != "baseline")
            summary = steps.finish()
    except HillError as err:
        get_run_logger().error(str(err))
        return Failed(message=str(err), data=err)
    RunPaths.of(cfg, spec.name).summary().write_text(json.dumps(summary, indent=1))
    report_summary(spec, summary)
    hint_git_add(cfg, spec)
    return summary


def hint_git_add(cfg: Config, spec: RunSpec) -> None:
    """In a deployment's run (no terminal of the user's: the hint goes to its logs), the
    `git add` of the edits' pointers that `hill run` prints at its end (defect I)."""
    context = FlowRunContext.get()
    deployed = context is not None and context.flow_run.deployment_id is not None
    if spec.mode != "guided" or spec.git_add or not deployed:
        return
    pointers = edits_pointers(cfg, spec.name)
    if pointers:
        get_run_logger().info(f"Version the edits in git: git add {' '.join(map(str, pointers))}")


class FlowSteps:
    """:class:`hill_core.loop.Steps` as Prefect tasks over checkpoint files, logged to MLflow.

    The guided run and its baseline each have a checkpoint chain under ``runs/`` and an MLflow
    run; the baseline's starts at the first gate, forked from the guided checkpoint there.
    """

    def __init__(self, cfg: Config, spec: RunSpec, stack: contextlib.ExitStack):
        self.cfg, self.spec, self.stack = cfg, spec, stack
        self.paths = {"guided": RunPaths.of(cfg, spec.name)}
        self.configs = {"guided": cfg}
        self.trackers = {
            "guided": stack.enter_context(Tracker.start(cfg, spec.name, tags_of(spec)))
        }
        ckpt, inherited = tasks.prepare(cfg, self.paths["guided"])
        if not ckpt.reused:
            self.trackers["guided"].log_history(inherited)
        self.ckpt = {"guided": ckpt}
        self.replaying = False  # the last segment came from the journal: log nothing twice
        self.gate_files: dict[int, str] = {}
        self.guard_note = ""
        self.reverts = 0

    def segment_guidance(self, guidance: Guidance) -> tasks.SegmentGuidance:
        """The guidance as the files a segment reads."""
        files = self.gate_files
        return tasks.SegmentGuidance(
            teacher_file=files[guidance.gate] if guidance.gate is not None else None,
            alpha_scale=guidance.alpha_scale,
            labels_file=files[guidance.labels] if guidance.labels is not None else None,
        )

    def train(self, run: str, first: int, last: int, guidance: Guidance) -> list[dict]:
        self.ckpt[run], history = tasks.train(
            self.configs[run], self.ckpt[run], last, self.segment_guidance(guidance),
            self.paths[run], self.trackers[run].log_epoch, self.spec.progress,
        )  # fmt: skip
        self.replaying = self.ckpt[run].reused
        return history

    def fork_baseline(self) -> None:
        """Open the baseline's MLflow run and fork its checkpoint from the guided one."""
        name = f"{self.spec.name}-baseline"
        base_cfg = baseline_config(self.cfg)
        guided_id = self.trackers["guided"].run_id
        spec = RunSpec(name=name, mode="baseline", paired_run_id=guided_id,
                       parent_run_id=self.spec.parent_run_id)  # fmt: skip
        tags = {**tags_of(spec), "hill.pair": self.spec.name}  # grouped with its guided run
        tracker = self.stack.enter_context(Tracker.start(base_cfg, name, tags))
        pair_runs(guided_id, tracker.run_id)
        self.paths["baseline"] = RunPaths.of(base_cfg, name)
        self.configs["baseline"] = base_cfg
        self.trackers["baseline"] = tracker
        ckpt, inherited = tasks.prepare(
            self.configs["baseline"], self.paths["baseline"], self.ckpt["guided"].path
        )
        if not ckpt.reused:
            tracker.log_history(inherited)
        self.ckpt["baseline"] = ckpt

    def mark(self) -> tasks.Checkpoint:
        return self.ckpt["guided"]  # checkpoints are one file per epoch: the gate's stays

    def rewind(self, mark: tasks.Checkpoint) -> None:
        self.ckpt["guided"] = mark

    def gate(self, epoch: int, progress: Progress, guidance: Guidance) -> GateOutcome:
        labels_file = self.segment_guidance(guidance).labels_file
        paths = self.paths["guided"]
        view = tasks.inspect_gate(self.configs["guided"], self.ckpt["guided"], paths, labels_file)
        context = GateFacts(progress, self.guard_note)
        answer = answer_gate(self.cfg, self.spec, paths, view, context)
        record_gate(self.spec, view, answer, context, self.trackers["guided"], paths.run_dir)
        self.gate_files[epoch] = answer.edits_path
        num_classes = len(view.class_names)
        return GateOutcome(
            answer.decision,
            answer.teacher(num_classes) is not None,
            answer.corrections(num_classes) is not None,
        )

    def judged(self, verdict: GuardVerdict) -> None:
        self.guard_note = verdict.line()
        self.reverts += verdict.action == "revert"
        if self.replaying:
            return  # judged and logged before this re-run
        tracker = self.trackers["guided"]
        tracker.log_history([{**verdict.metrics(), "epoch": verdict.epoch}])
        tracker.set_tag(f"guard.{verdict.gate_epoch:04d}", verdict.action)
        get_run_logger().info(self.guard_note)

    def finish(self) -> dict[str, Any]:
        """Final evaluation of both runs; the guided summary holds the baseline's."""
        from hill_core.data import load_data

        summaries = {}
        for run, ckpt in self.ckpt.items():
            summary = tasks.final_evaluation(self.configs[run], ckpt)
            cfg = self.configs[run]
            data = load_data(cfg.data, cfg.base.seed)  # cached: the evaluation loaded it
            model = tasks.final_model(self.configs[run], ckpt)
            self.trackers[run].log_final(summary, model, data)
            summaries[run] = {
                **summary,
                "run_name": self.paths[run].name,
                "mlflow_run_id": self.trackers[run].run_id,
            }
        summaries["guided"]["guard_reverts"] = self.reverts
        if "baseline" in summaries:
            summaries["guided"]["baseline"] = summaries["baseline"]
        return summaries["guided"]


def named(spec: RunSpec, cfg: Config) -> RunSpec:
    """The spec with a run name, once everything the run needs is checked (``preflight``)."""
    check_run(cfg, spec.mode, spec.name, spec.autopilot, spec.replay_from)
    name = spec.name or flow_run_name(cfg, spec.mode) or new_run_name(cfg, spec.mode)
    spec = spec.model_copy(update={"name": name})
    paths = RunPaths.of(cfg, name)
    if spec.mode == "guided":
        paths.config().parent.mkdir(parents=True, exist_ok=True)
        paths.config().write_text(config_yaml(cfg))  # a replay checks it trains the same
    # What a resume (run_dir) and a replay (edits_dir) check the data against.
    folders = [paths.run_dir, *([paths.edits_dir] if spec.mode == "guided" else [])]
    record_data(load_data(cfg.data, cfg.base.seed), folders)
    return spec


def flow_run_name(cfg: Config, mode: str) -> str | None:
    """A name fixed by the flow run (its scheduled time and id), so that every re-run of one
    flow run (resumed gate, retry) is the same hill run; None outside a flow run."""
    context = FlowRunContext.get()
    if context is None:
        return None
    run = context.flow_run
    when = run.expected_start_time or run.created
    return f"{cfg.data.short_name}-{mode}-{when:%Y%m%d-%H%M%S}-{run.id.hex[:6]}"


def save_spec(cfg: Config, spec: RunSpec) -> None:
    """The flow's parameters beside the run's checkpoints: ``hill resume`` re-runs them."""
    path = RunPaths.of(cfg, spec.name).flow_params()
    path.parent.mkdir(parents=True, exist_ok=True)
    params = {"config": cfg.to_dict(), "spec": spec.model_dump(mode="json")}
    path.write_text(json.dumps(params, indent=1))


def name_flow_run(name: str, tags: list[str] = ()) -> None:
    """The flow run takes the hill run's name (the Prefect UI and `hill gates` show it) and
    ``tags`` beside its own (a deployment's)."""
    from prefect import get_client

    context = FlowRunContext.get()
    if context is not None:
        merged = list(dict.fromkeys([*context.flow_run.tags, *tags]))
        with get_client(sync_client=True) as client:
            client.update_flow_run(context.flow_run.id, name=name, tags=merged)


def prefect_tags(spec: RunSpec, cfg: Config) -> list[str]:
    """``hill``, ``mode:guided``, ``data:digits``, ``user:compactness`` (human, replay, none):
    the Prefect UI filters flow runs on them."""
    users = {"guided": spec.autopilot or "human", "baseline": "none", "replay": "replay"}
    return ["hill", f"mode:{spec.mode}", f"data:{cfg.data.short_name}", f"user:{users[spec.mode]}"]


def report_summary(spec: RunSpec, summary: dict[str, Any]) -> None:
    """The MLflow runs and final scores in the flow run's logs and its ``hill-summary``
    markdown artifact, with links to the MLflow UI when the tracking URI is a server's.

    Best effort: the run is finished and recorded; a report that fails only says so.
    """
    from prefect.artifacts import create_markdown_artifact

    logger = get_run_logger()
    try:
        runs = [("guided" if spec.mode == "guided" else spec.mode, summary)]
        if summary.get("baseline"):
            runs.append(("baseline", summary["baseline"]))
        links = {s["mlflow_run_id"]: mlflow_link(s["mlflow_run_id"]) for _, s in runs}
        for role, s in runs:
            logger.info(summary_line(role, s, links[s["mlflow_run_id"]]))
        create_markdown_artifact(
            summary_markdown(spec, runs, links), key="hill-summary",
            description=f"hill run {spec.name}: MLflow runs and final scores",
        )  # fmt: skip
    except Exception as err:  # noqa: BLE001 - the run itself succeeded
        logger.warning(f"could not report the summary to Prefect: {err}")


def summary_line(role: str, s: dict[str, Any], link: str) -> str:
    """One run's scores, its MLflow run (the UI link where there is one) last on the line:
    a link followed by punctuation opens another page (a trailing "," gave a 404)."""
    return (
        f"{role} run {s['run_name']}: test accuracy {100 * s['test_accuracy']:.2f}%, macro-F1 "
        f"{100 * s['test_macro_f1']:.2f}% after {s['epochs_trained']} epochs; MLflow run "
        f"{link or s['mlflow_run_id']}"
    )


def mlflow_link(run_id: str) -> str:
    """The run's page in the MLflow UI when tracking goes to a server; "" for a local store."""
    from pipelines.tracking import client, tracking_uri

    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return ""
    experiment = client().get_run(run_id).info.experiment_id
    return f"{uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"


def summary_markdown(spec: RunSpec, runs: list[tuple[str, dict]], links: dict[str, str]) -> str:
    """The ``hill-summary`` artifact: one table row per run, the delta, the tracking URI."""
    from pipelines.tracking import tracking_uri

    rows = []
    for role, s in runs:
        run_id = s["mlflow_run_id"]
        shown = f"[{run_id}]({links[run_id]})" if links[run_id] else run_id
        rows.append(  # no code spans: Prefect's artifact view printed their backticks
            f"| {role} | {s['run_name']} | {shown} | {100 * s['test_accuracy']:.2f}% | "
            f"{100 * s['test_macro_f1']:.2f}% | {s['epochs_trained']} |"
        )
    lines = [
        f"# hill run {spec.name}",
        "",
        "| run | name | MLflow run | test accuracy | macro-F1 | epochs |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    if len(runs) == 2:
        (_, g), (_, b) = runs
        delta = 100 * (g["test_accuracy"] - b["test_accuracy"])
        lines.append(f"Guided minus baseline test accuracy: **{delta:+.2f} pp**.")
    lines.append(f"MLflow tracking URI: {tracking_uri()}")
    return "\n".join(lines) + "\n"


def tags_of(spec: RunSpec) -> dict[str, str]:
    """Mode, user (human, strategy, replay or none), pair and Prefect flow run of a run.

    ``hill.pair`` (the guided run's name; its baseline gets the same in ``fork_baseline``)
    lets the MLflow UI group a pair; a study's pairs also sit under its parent run."""
    users = {"guided": spec.autopilot or "human", "baseline": "none", "replay": "replay"}
    context = FlowRunContext.get()
    return {
        "hill.mode": spec.mode,
        "hill.user": users[spec.mode],
        "hill.run_name": spec.name or "",
        "hill.paired_run_id": spec.paired_run_id or "",
        "hill.pair": (spec.name or "") if spec.mode != "baseline" else "",
        "hill.replay_of": spec.replay_from or "",
        "hill.prefect_flow_run_id": str(context.flow_run.id) if context else "",
        "mlflow.parentRunId": spec.parent_run_id or "",
    }


@dataclass(frozen=True)
class GateFacts:
    """What the lockstep baseline and the guard know at a gate."""

    progress: Progress
    guard_note: str

    def gap_pp(self, epoch: int) -> float | None:
        """Guided minus baseline validation accuracy at ``epoch``, pp (None before the fork)."""
        p = self.progress
        if epoch not in p.baseline_val:
            return None
        return 100 * (p.guided_val[epoch] - p.baseline_val[epoch])

    def since_edit_pp(self, epoch: int) -> float | None:
        """How the gap moved since the active edit's gate, pp (None without an active edit)."""
        last = self.progress.last_edit
        now, then = self.gap_pp(epoch), None if last is None else self.gap_pp(last)
        return None if now is None or then is None else now - then


def answer_gate(cfg, spec: RunSpec, paths, view, facts: GateFacts) -> GateDecision:
    """Replay, autopilot, or a person at the gate page; a decision recorded before (by a
    re-run's first try, or the gate service while the run was suspended) stands."""
    if spec.replay_from:
        return gate.replayed(spec.replay_from, view)
    if paths.edits(view.epoch).exists():
        return GateDecision.recorded(paths.edits(view.epoch))
    if spec.autopilot:
        return gate.autopilot(spec.autopilot, cfg, paths, view)
    return gate.ask_person(cfg, paths, view, facts)


def record_gate(spec: RunSpec, view, answer: GateDecision, facts: GateFacts, tracker, workdir):
    """Version the edits with DVC (a replay's are versioned already), log the gate, one line.

    A gate already in the MLflow run (a re-run from the top) is not versioned or logged again.
    """
    if tracker.resumed and tracker.has_tag(f"gate.{view.epoch:04d}.decision"):
        return
    md5 = dvc_md5(answer.edits_path) if spec.replay_from else dvc_add(answer.edits_path)
    remote = "" if spec.replay_from else dvc_push(answer.edits_path)
    edits, _ = read_edits(answer.edits_path)
    record = GateRecord(
        view.epoch, answer.decision, answer.source, Path(answer.edits_path), edits, md5,
        view.val_accuracy, facts.gap_pp(view.epoch), facts.since_edit_pp(view.epoch),
    )  # fmt: skip
    tracker.log_gate(record, view.class_names, workdir)
    get_run_logger().info(
        gate_status(record) + (f", pushed to DVC remote {remote}" if remote else "")
    )
    if spec.git_add and not spec.replay_from:
        added, problem = git_add_edits(Path(answer.edits_path).parent)
        if problem:
            get_run_logger().warning(f"git add of the edits failed: {problem}")
        else:
            get_run_logger().info(f"git add {' '.join(map(str, added))}")


def edits_pointers(cfg: Config, name: str) -> list[Path]:
    """What git should version of a run's edits and does not yet: the ``.dvc`` pointers, the
    ``.gitignore`` DVC wrote beside them and ``config.yaml`` (the Parquet files themselves are
    DVC's). Empty outside git or when nothing is new."""
    import subprocess

    folder = RunPaths.of(cfg, name).edits_dir
    if not folder.is_dir():
        return []
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--modified", "--exclude-standard", "--", str(folder)],
        capture_output=True, text=True,
    )  # fmt: skip
    if listed.returncode != 0:
        return []
    return [Path(line) for line in sorted(set(listed.stdout.splitlines())) if line]


def git_add_edits(folder: Path) -> tuple[list[Path], str]:
    """``git add`` a run's edits pointers and config after a gate (``hill run --git-add``).

    Returns:
        the files added, and git's complaint ("" when it worked). A failure (no git, a held
        index lock) is only a warning: the edits are recorded and tracked by DVC either way.
    """
    import subprocess

    pointers = [p for p in [*folder.glob("*.dvc"), folder / ".gitignore", folder / "config.yaml",
                            folder / DATA_FINGERPRINT]
                if p.is_file()]  # fmt: skip
    done = subprocess.run(["git", "add", "--", *map(str, pointers)], capture_output=True, text=True)
    return pointers, "" if done.returncode == 0 else (done.stderr.strip() or "git add failed")


def gate_status(g: GateRecord) -> str:
    """``gate e4: approve (page), 120 points displaced ...``: one line per gate."""
    size = edits_summary(g.edits)
    gap = "" if g.gap_pp is None else f", {g.gap_pp:+.2f} pp against the baseline"
    since = "" if g.since_edit_pp is None else f" ({g.since_edit_pp:+.2f} pp since the last edit)"
    return (
        f"gate e{g.epoch}: {g.decision} ({g.source}), {int(size['points_displaced'])} of "
        f"{len(g.edits)} points displaced (mean {size['mean_displacement']:.3g}), "
        f"labels corrected {int(size['items_relabelled'])}, excluded "
        f"{int(size['items_excluded'])} (in force from here), val acc {g.val_accuracy:.3f}"
        f"{gap}{since}, dvc md5 {g.md5[:10] or '-'}"
    )

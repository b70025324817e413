"""`hill`: run, replay, compare, gate, serve and demo from the terminal.

Every command reads params.yaml (or ``--params``) with ``-S section.key=value`` overrides on
top, exactly as the flow, the gate page and dvc.yaml do. Commands that talk to Prefect or MLflow
use the servers `hill up` started when they answer (``pipelines.servers``). This module imports
only typer and the config: each command imports what it needs, so `hill --help` and a mistake
in a command line cost a fraction of a second, not torch's, Prefect's and MLflow's imports.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from hill_core.config import Config, from_dict, load_config, load_sections
from hill_core.errors import HillError
from pipelines.cli_errors import OneLineErrors

app = typer.Typer(
    help="hill: guided training with approval gates, tracked in MLflow, edits versioned by DVC.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstrings reflow as paragraphs
    cls=OneLineErrors,  # a user's mistake is one line and exit code 2, never a traceback
)

ParamsOpt = Annotated[Path, typer.Option("--params", help="Params file (YAML).")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-S", help="Override a key: -S train.epochs=5 (repeatable)."),
]
AutopilotOpt = Annotated[
    str | None,
    typer.Option(
        help="Answer gates with a simulated user: compactness, separation, merge, "
        "fix-outliers, confusion, adversarial or noedit (unattended runs).",
    ),
]
MetricsOpt = Annotated[
    Path | None, typer.Option(help="Write the final test scores as JSON (for dvc metrics).")
]
NameOpt = Annotated[str | None, typer.Option(help="Run name (default: `<data>-<mode>-<time>`).")]
# Help texts are rich markdown: a bare <word> is an HTML tag to it and vanishes. Write `<run>`.


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"hill {version('hill')}")
        except PackageNotFoundError:  # a checkout used without `pip install -e .`
            typer.echo("hill (not installed: no version)")
        raise typer.Exit()


@app.callback()
def _quiet_services(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print hill's version and exit."
        ),
    ] = False,
) -> None:
    """Nothing phones home: this runs before any command imports prefect, mlflow or dvc.
    Prefect's temporary server gets a start-up limit that a loaded machine meets."""
    from pipelines.servers import patient_startup

    patient_startup()
    for key, value in {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "MPLBACKEND": "Agg",
    }.items():
        os.environ.setdefault(key, value)


def _config(params: Path, sets: list[str] | None) -> Config:
    return load_config(params, sets or [])


@contextlib.contextmanager
def _servers(announce: bool = True, prefect: bool = True) -> Iterator[Any]:
    """Use the servers `hill up` started, when they answer and nothing explicit says otherwise;
    with ``announce``, say in one line which servers the command uses."""
    from pipelines.servers import resolve, using

    servers = resolve(Path.cwd(), prefect=prefect)
    if announce:
        typer.echo(servers.line(), err=True)
    with using(servers):
        yield servers


def _check_strategy(autopilot: str | None) -> None:
    from pipelines.preflight import check_strategy  # the flow's own check, before any work

    check_strategy(autopilot)


@app.command()
def run(
    params: ParamsOpt = Path("params.yaml"),
    sets: SetOpt = None,
    baseline: Annotated[
        bool, typer.Option("--baseline", help="Only a baseline run: α = 0, no gates.")
    ] = False,
    autopilot: AutopilotOpt = None,
    name: NameOpt = None,
    metrics: MetricsOpt = None,
    progress: Annotated[bool, typer.Option(help="Progress bars per epoch.")] = True,
    git_add: Annotated[
        bool,
        typer.Option(
            "--git-add",
            help="After each gate, `git add` the edits' `.dvc` pointers, their .gitignore and "
            "the run's config.yaml (as `dvc add` suggests); commit them yourself.",
        ),
    ] = False,
) -> None:
    """Run the guided-training flow: train, pause at each gate for a person (or --autopilot).

    At each gate the terminal prints a link to the gate page; the run waits (shown as Paused in
    Prefect) until you approve, skip or stop there, or resume it from the Prefect UI. The paired
    baseline (α = 0, same seed) forks from the guided run at its first gate and trains beside it,
    segment by segment, so each gate shows what your last edit did against it.

    Each gate's edits land in `data/edits/<run>/` and are tracked by DVC; without --git-add the
    run ends by printing the `git add` command for their pointers.
    """
    from hill_core.config import baseline_config

    _check_strategy(autopilot)  # these checks import no torch, Prefect or MLflow: a second
    if baseline and autopilot:
        raise HillError(
            f"--baseline trains without gates, so --autopilot {autopilot} would never act: "
            "drop one (a guided run trains its paired baseline anyway)"
        )
    if baseline:  # no gates, so hill.gate_epochs must not fail a shorter train.epochs
        cfg = baseline_config(_config(params, [*(sets or []), "hill.gate_epochs=[]"]))
    else:
        cfg = _config(params, sets)
    if git_add:
        _check_git()
    from pipelines.flow import RunSpec  # the heavy imports, once the command line is sound
    from pipelines.launch import launch

    mode = "baseline" if baseline else "guided"
    spec = RunSpec(name=name, mode=mode, autopilot=autopilot, progress=progress, git_add=git_add)
    _report(launch(cfg, spec), metrics, cfg, git_add)


def _check_git() -> None:
    """--git-add needs a git work tree here."""
    import subprocess

    try:
        inside = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        inside = ""
    if inside != "true":
        raise HillError("--git-add: this folder is not in a git work tree (run `git init`)")


@app.command()
def replay(
    run_or_edits_dir: Annotated[
        str,
        typer.Argument(
            help="A run's edits folder, a run name under tracking.edits_dir, or the edits root "
            "(then its last run in name order, i.e. the newest).",
        ),
    ],
    params: ParamsOpt = Path("params.yaml"),
    sets: SetOpt = None,
    name: NameOpt = None,
    metrics: MetricsOpt = None,
    progress: Annotated[bool, typer.Option(help="Progress bars per epoch.")] = True,
) -> None:
    """Re-train a guided run from its recorded edits, with no person (same seed, same result).

    The config comes from params.yaml and -S; it must train like the recorded run's
    (``<edits>/config.yaml``), else the command names the keys that differ.
    """
    cfg = _config(params, sets)  # before the heavy imports: a mistake costs a second
    from pipelines.flow import RunSpec
    from pipelines.launch import launch
    from pipelines.replay import check_replay_config, resolve_edits_dir

    folder = resolve_edits_dir(run_or_edits_dir, cfg)
    check_replay_config(cfg, folder)
    spec = RunSpec(name=name, mode="replay", replay_from=str(folder), progress=progress)
    _report(launch(cfg, spec), metrics)


@app.command()
def compare(
    out: Annotated[Path, typer.Option(help="Where to write the plot.")] = Path("runs/compare.png"),
    params: ParamsOpt = Path("params.yaml"),
    sets: SetOpt = None,
) -> None:
    """Table of guided runs against their baselines (test accuracy, macro-F1, deltas), from MLflow.

    Also writes a plot, and says which MLflow UI command shows the same runs. The experiments
    searched are ``<tracking.experiment_prefix>-*`` from params.yaml.
    """
    prefix = _config(params, sets).tracking.experiment_prefix
    from pipelines.compare import browse_hint
    from pipelines.compare import compare as compare_runs

    with _servers(announce=False, prefect=False):
        text, plot = compare_runs(out, prefix)
        hint = browse_hint()  # inside: the store searched, `hill up`'s server included (F)
    typer.echo(text)
    if plot is not None:
        typer.echo(f"\nPlot: {plot}")
    typer.echo(hint)


@app.command()
def gate(
    snapshot: Annotated[
        Path, typer.Option(help="Snapshot Parquet: `runs/<run>/snapshot_*.parquet`.")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the decision's edits Parquet.")] = Path(
        "data/edits/manual"
    ),
    params: ParamsOpt = Path("params.yaml"),
    sets: SetOpt = None,
) -> None:
    """Serve the gate page for a saved snapshot, outside any run; writes the edits on decision."""
    cfg = _config(params, sets)
    from interaction_app.server import serve_snapshot_file

    serve_snapshot_file(snapshot, cfg, out)


@app.command()
def serve(
    cron: Annotated[str, typer.Option(help='Schedule, e.g. "0 9 * * 1-5" (weekdays at 9).')],
    params: ParamsOpt = Path("params.yaml"),
    sets: SetOpt = None,
    autopilot: AutopilotOpt = None,
    name: Annotated[str, typer.Option(help="Deployment name.")] = "hill-guided",
) -> None:
    """Serve the flow as a Prefect deployment on a cron schedule (runs until Ctrl-C).

    Each scheduled run trains by itself, waits at its gates (links in the logs and the Prefect
    UI) and then runs its paired baseline. Uses the Prefect server at PREFECT_API_URL, or starts
    a local one (with its UI on http://127.0.0.1:4200) while serving.
    """
    cfg = _config(params, sets)
    _check_strategy(autopilot)
    from pipelines.deploy import check_cron
    from pipelines.serve import serve as serve_flow

    check_cron(cron, "UTC")
    with _servers(announce=False):
        serve_flow(cfg, cron, name, autopilot)


@app.command()
def resume(
    run_name: Annotated[str, typer.Argument(help="The run's name (its folder under runs/).")],
    params: ParamsOpt = Path("params.yaml"),
    progress: Annotated[bool, typer.Option(help="Progress bars per epoch.")] = True,
    here: Annotated[
        bool,
        typer.Option("--here", help="Continue it in this terminal, even a run of a deployment."),
    ] = False,
) -> None:
    """Continue a run whose process died (mid-segment or at a gate), in its own MLflow runs.

    Finished segments come back from their checkpoints and recorded gates from their edits
    files: only the cut-short segment trains again, from its last checkpoint, and a gate that
    was waiting opens again. The run's own parameters are used; params.yaml only says where
    runs/ is.

    A run of a deployment (`hill deploy`) goes back to its deployment: a new flow run of it,
    under the run's name, for a worker on its work pool; the command says which and returns.
    With --here, or for a run started in a terminal, it trains here until the run ends.
    """
    base = _config(params, None)
    from pipelines.flow import RunSpec
    from pipelines.preflight import check_run
    from pipelines.resume import check_not_waiting, deployment_of, resume_params
    from pipelines.tracking import live_process

    started = resume_params(base, run_name)
    spec = RunSpec(**{**started["spec"], "progress": progress})
    # Before anything starts: the data, the model and the rest are still what the run had.
    check_run(from_dict(started["config"]), spec.mode, spec.name, spec.autopilot, spec.replay_from)

    with _servers(announce=False) as servers:
        check_not_waiting(run_name)  # a suspended run's gate is answered, not resumed
        pid = live_process(from_dict(started["config"]), run_name)
        if pid is not None:
            raise HillError(f"{run_name} is still running (pid {pid}); nothing to resume")
        # Asked before a flow run is retired: a deleted deployment leaves everything as it was.
        deployment = None if here else deployment_of(run_name)
        typer.echo(servers.line(), err=True)
        _retire(run_name)
        if deployment is not None:
            _resume_on_pool(deployment, run_name, started)
        else:
            _resume_here(started, spec)


def _retire(run_name: str) -> None:
    """End the dead process's flow runs as Crashed, saying so."""
    from pipelines.resume import retire_flow_runs

    for flow_run_id in retire_flow_runs(run_name):
        typer.echo(f"Flow run {flow_run_id} of {run_name} ended as Crashed (its process died)")


def _resume_on_pool(deployment: Any, run_name: str, started: dict[str, Any]) -> None:
    """A new flow run of the run's deployment; a worker on its pool continues the run."""
    from pipelines.resume import submit

    flow_run_id = submit(deployment, run_name, started)
    typer.echo(
        f"{run_name} continues as flow run {flow_run_id} of {deployment.name} on work pool "
        f"{deployment.pool}; follow it with `prefect flow-run logs {flow_run_id}` or in the "
        "Prefect UI (`hill resume --here` runs it in a terminal instead)"
    )


def _resume_here(started: dict[str, Any], spec: Any) -> None:
    """The run in this terminal, to its end."""
    from pipelines.flow import guided_training

    cfg = from_dict(started["config"])  # defect I: the `git add` hint after a resume too
    _report(guided_training(started["config"], spec), None, cfg, spec.git_add)


@app.command()
def deploy(
    cron: Annotated[
        str | None, typer.Option(help='Schedule, e.g. "0 3 * * *" (03:00 every day).')
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
    sets: SetOpt = None,
    pool: Annotated[str, typer.Option(help="Prefect work pool its workers poll.")] = "hill-pool",
    name: Annotated[str, typer.Option(help="Deployment name.")] = "hill-guided",
    timezone: Annotated[str, typer.Option(help="Time zone of --cron (IANA).")] = "UTC",
    autopilot: AutopilotOpt = None,
    concurrency: Annotated[int, typer.Option(help="Runs of this deployment at once.", min=1)] = 1,
) -> None:
    """Register the flow as a Prefect deployment on a work pool, with params.yaml as its
    parameters; a worker on the pool runs it (`infra/up.sh` starts one).

    Gates of its runs suspend: the worker is free while a run waits, and the gate service
    (`hill gates serve`) serves the page at the link in the run's logs. Start a run now with
    `prefect deployment run guided-training/<name>`.
    """
    from pipelines.servers import with_gate_service

    cfg = with_gate_service(_config(params, sets), Path.cwd())
    _check_strategy(autopilot)
    from pipelines.deploy import deploy as deploy_flow

    with _servers(announce=False):
        deployment_id = deploy_flow(cfg, name, pool, cron, timezone, autopilot, concurrency)
    when = f"on {cron!r} ({timezone})" if cron else "without a schedule"
    typer.echo(f"Deployment guided-training/{name} ({deployment_id}) on pool {pool}, {when}")
    typer.echo(f"Run it now: prefect deployment run guided-training/{name}")


@app.command()
def study(
    params: ParamsOpt = Path("params.yaml"),
    sets: SetOpt = None,
    strategies: Annotated[
        str, typer.Option(help="Comma-separated simulated users, or all (noedit is the control).")
    ] = "all",
    seeds: Annotated[
        str,
        typer.Option(
            help="A count N (seeds base.seed .. base.seed+N-1) or a list of seeds: 7,1234,31337."
        ),
    ] = "5",
    guard: Annotated[
        str | None, typer.Option(help="Override hill.guard: off, revert or adapt.")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Study name (a stopped study resumes under its name).")
    ] = None,
    dask: Annotated[
        str | None, typer.Option(help="Address of an existing Dask cluster (default: local).")
    ] = None,
) -> None:
    """Every strategy against its paired baseline over several seeds: Δ test accuracy with a 95 %
    t-interval, Δ macro-F1 and seeds improved, printed and saved as study.csv and study.png."""
    from hill_core.strategy_names import ALL_STRATEGIES as STRATEGIES

    chosen = list(STRATEGIES) if strategies == "all" else strategies.split(",")
    for strategy in chosen:
        _check_strategy(strategy)
    cfg = _config(params, [*(sets or []), *([f"hill.guard={guard}"] if guard else [])])
    from pipelines.study import parse_seeds, run_study

    seed_list = parse_seeds(seeds, cfg.base.seed)
    label = str(len(seed_list)) if seeds.strip().isdigit() else "s" + "-".join(map(str, seed_list))
    name = name or f"study-{cfg.data.short_name}-{cfg.hash()[:8]}-{label}x{len(chosen)}"
    with _servers():
        text = run_study(cfg, chosen, seed_list, name, dask)
    typer.echo(text)
    typer.echo(f"\nWrote {cfg.base.run_dir}/{name}/study.csv and study.png")


gates_app = typer.Typer(help="Gates waiting for a decision, from a terminal.", no_args_is_help=True)
app.add_typer(gates_app, name="gates")


@gates_app.command("list")
def gates_list() -> None:
    """The gates waiting for a decision (paused runs at PREFECT_API_URL): run, epoch, link."""
    from prefect import get_client

    from pipelines.gate_service.listing import waiting_gates
    from pipelines.servers import require_prefect_server

    params = Path("params.yaml")  # where this project's edits are, if it says
    cfg = load_sections(params if params.is_file() else None, [], ("base", "tracking"))
    with _servers(announce=False) as servers:
        require_prefect_server(servers, "hill gates list")
        with get_client(sync_client=True) as client:
            gates = waiting_gates(client, lambda run, epoch: decided_here(cfg, run, epoch))
    for g in gates:
        typer.echo(g.line())
    if not gates:
        typer.echo("No gate is waiting.")


def decided_here(cfg: Config, run: str, epoch: int) -> bool:
    """Whether the gate's decision is recorded in this project (its edits file exists)."""
    from pipelines.paths import RunPaths

    return RunPaths.of(cfg, run).edits(epoch).is_file()


@gates_app.command("decide")
def gates_decide(
    run_name: Annotated[str, typer.Argument(help="The hill run, as `hill gates list` shows it.")],
    epoch: Annotated[int, typer.Argument(help="The gate's epoch.")],
    decision: Annotated[str, typer.Argument(help="approve (the unedited layout), skip or stop.")],
) -> None:
    """Answer a waiting gate without the page: the run resumes with ``decision``."""
    from prefect import get_client

    from hill_core.edits import DECISIONS
    from pipelines.gate_service.listing import decide
    from pipelines.servers import require_prefect_server

    if decision not in DECISIONS:
        raise HillError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
    with _servers(announce=False) as servers:
        require_prefect_server(servers, "hill gates decide")
        with get_client(sync_client=True) as client:
            gate = decide(client, run_name, epoch, decision)
    typer.echo(f"{gate.run_name}: gate at epoch {gate.epoch} resumed with {decision}")


@gates_app.command("serve")
def gates_serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback needs gate auth.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (gate.service_url should point here).")] = 7870,
    params: ParamsOpt = Path("params.yaml"),
    sets: SetOpt = None,
) -> None:
    """Serve the page of every gate that waits without a process (runs until Ctrl-C).

    Pages live at ``/<run>/gate/<epoch>?token=...``, the links the runs announce; ``/`` lists
    the open gates. A decision resumes the run; a gate past its deadline gets gate.on_timeout.
    """
    # Only what the service uses: a training mistake in params.yaml (a failed `dvc exp run -S`
    # left behind) must not stop the gates of runs already waiting (defect H).
    cfg = load_sections(params, sets or [], ("base", "gate", "tracking"))
    from interaction_app.gate_checks import check_gate
    from pipelines.gate_service.service import serve as serve_gates
    from pipelines.servers import require_prefect_server

    check_gate(cfg.gate, host)  # the bind, auth and TLS first: local, and the likelier mistake
    with _servers(announce=False) as servers:
        # The runs it resumes are on a server: a temporary one per resume would know none.
        require_prefect_server(servers, "hill gates serve")
        serve_gates(cfg, host, port)  # a bad bind or auth: one line, exit 2


@app.command()
def demo(
    autopilot: AutopilotOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    sets: SetOpt = None,
) -> None:
    """The main job on digits: a guided run that waits for you at the printed links, its
    baseline, then `hill compare`."""
    run(params=params, sets=["data.name=digits", *(sets or [])], autopilot=autopilot)
    typer.echo("")
    compare(params=params, sets=sets)


@app.command()
def up(
    prefect_port: Annotated[
        int, typer.Option(envvar="HILL_PREFECT_PORT", help="Port of the Prefect server and UI.")
    ] = 4200,
    mlflow_port: Annotated[
        int, typer.Option(envvar="HILL_MLFLOW_PORT", help="Port of the MLflow server and UI.")
    ] = 5000,
    postgres: Annotated[
        bool,
        typer.Option(
            "--postgres",
            help="Put both on PostgreSQL (Debian's `postgresql`), as the production stack does, "
            "instead of SQLite.",
        ),
    ] = False,
) -> None:
    """Start a Prefect server and an MLflow server for this project, once, in the background
    on 127.0.0.1; `hill down` stops them.

    Later commands in this folder (`hill run`, replay, resume, study, compare, gates) use them
    while they answer: a run no longer starts Prefect's temporary server and MLflow's store
    each time, and shows in the Prefect UI. MLflow serves this project's own `mlflow.db`
    and `mlartifacts/`: the runs are the same with or without it. An explicit PREFECT_API_URL
    or MLFLOW_TRACKING_URI still wins. State and logs: `.hill-infra/` (HILL_INFRA_DIR). Running
    servers are left alone, dead ones restarted.
    """
    from pipelines.servers import up as start

    start(Path.cwd(), prefect_port, mlflow_port, postgres)
    typer.echo(
        f"Prefect UI http://127.0.0.1:{prefect_port}, MLflow UI http://127.0.0.1:{mlflow_port}; "
        "`hill run` here uses them while they answer; `hill down` stops them."
    )
    for key in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        if os.environ.get(key):
            typer.echo(f"Note: {key} is set ({os.environ[key]}): runs use that, not these.")


@app.command()
def down() -> None:
    """Stop the servers `hill up` (or infra/up.sh) started for this project; data stays."""
    from pipelines.servers import down as stop

    stop(Path.cwd())


def _report(
    summary: dict[str, Any], metrics: Path | None, cfg: Config | None = None, git_add: bool = True
) -> None:
    """One line per run; the scores as JSON when asked (dvc metrics); for a guided run that
    did not `git add` its edits' pointers, the command that does."""
    for s in [summary, summary.get("baseline")]:
        if s:
            typer.echo(
                f"{s['run_name']}: test accuracy {100 * s['test_accuracy']:.2f}%, macro-F1 "
                f"{100 * s['test_macro_f1']:.2f}% after {s['epochs_trained']} epochs "
                f"(MLflow run {s['mlflow_run_id']})"
            )
    if metrics is not None:
        metrics.parent.mkdir(parents=True, exist_ok=True)
        metrics.write_text(json.dumps(metrics_of(summary), indent=2) + "\n")
    if cfg is not None and not git_add:
        from pipelines.flow import edits_pointers

        pointers = edits_pointers(cfg, summary["run_name"])
        if pointers:
            typer.echo(f"Version the edits in git: git add {' '.join(map(str, pointers))}")


def metrics_of(summary: dict[str, Any]) -> dict[str, float]:
    """The scores dvc metrics (and `dvc exp show`) show; a guided run's include its baseline's."""
    keys = ("test_accuracy", "test_macro_f1", "epochs_trained")
    scores = {k: summary[k] for k in keys}
    if summary.get("baseline"):
        base = summary["baseline"]
        scores |= {f"baseline_{k}": base[k] for k in keys}
        scores["delta_accuracy_pp"] = 100 * (summary["test_accuracy"] - base["test_accuracy"])
    return scores

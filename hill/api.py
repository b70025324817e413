"""``hill.run``: the CLI's ``hill run`` as a function (same checks, same flow, same servers)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hill_core.config import Config, from_dict, load_config
from hill_core.errors import HillError

Params = str | os.PathLike | Mapping[str, Any] | None
Overrides = Mapping[str, Any] | Sequence[str] | None


@dataclass(frozen=True)
class RunResult:
    """A finished run's scores (on its test split) and names; ``baseline`` is its paired
    baseline (α = 0, same seed, original labels), None for a baseline-only run."""

    name: str  # the folder under runs/ and data/edits/
    mlflow_run_id: str
    test_accuracy: float  # fraction in [0, 1]
    test_macro_f1: float
    epochs_trained: int
    baseline: RunResult | None
    summary: dict[str, Any]  # everything the flow returned (runs/<name>/summary.json)

    @property
    def delta_pp(self) -> float | None:
        """Test accuracy against the paired baseline, in percentage points."""
        if self.baseline is None:
            return None
        return 100 * (self.test_accuracy - self.baseline.test_accuracy)

    @classmethod
    def of(cls, summary: dict[str, Any]) -> RunResult:
        base = summary.get("baseline")
        return cls(
            name=summary["run_name"],
            mlflow_run_id=summary["mlflow_run_id"],
            test_accuracy=float(summary["test_accuracy"]),
            test_macro_f1=float(summary["test_macro_f1"]),
            epochs_trained=int(summary["epochs_trained"]),
            baseline=cls.of(base) if base else None,
            summary=summary,
        )


def run(
    params: Params = "params.yaml",
    overrides: Overrides = None,
    *,
    autopilot: str | None = None,
    model: str | None = None,
    data: str | None = None,
    baseline: bool = False,
    name: str | None = None,
    progress: bool = False,
) -> RunResult:
    """Train a guided run and its lockstep baseline (or, with ``baseline``, a baseline only).

    Args:
        params: a params file, a mapping of sections (as the YAML holds), or None: defaults.
        overrides: ``{"train.epochs": 6}`` or ``["train.epochs=6"]``, as ``-S`` takes them.
        autopilot: a simulated user answers each gate (e.g. ``"noedit"``); None: a person, on
            the page whose link is printed (the call waits, as ``hill run`` does).
        model: ``model.name``: a preset, ``"torchvision:<arch>"`` or ``"package.module:factory"``.
        data: ``data.name``: a built-in, ``"torchvision:<Dataset>"`` or an import path.
            Code is named by import path, never passed as an object: a deployment's worker
            rebuilds the model from the config alone. A notebook's own network goes in a
            module beside it (docs/python.md).
        name: the run's name (default ``<data>-<mode>-<time>``).

    Raises:
        HillError: a mistake in any input, in one line, before any training.
    """
    from pipelines.servers import patient_startup

    patient_startup()  # before prefect is imported, where this process has not imported it yet
    from pipelines.flow import RunSpec
    from pipelines.launch import launch

    cfg = resolve_config(params, overrides, model=model, data=data, baseline=baseline)
    if baseline and autopilot:
        raise HillError("baseline=True trains without gates: drop autopilot")
    mode = "baseline" if baseline else "guided"
    spec = RunSpec(name=name, mode=mode, autopilot=autopilot, progress=progress)
    return RunResult.of(launch(cfg, spec))


def resolve_config(
    params: Params, overrides: Overrides, model: str | None = None, data: str | None = None,
    baseline: bool = False,
) -> Config:  # fmt: skip
    """The run's config: ``params``, then ``overrides``, then ``model`` and ``data``."""
    from hill_core.config import baseline_config, parse_overrides

    if params is None or isinstance(params, str | os.PathLike):
        cfg = load_config(None if params is None else Path(params))
    elif isinstance(params, Mapping):
        cfg = from_dict({k: dict(v or {}) for k, v in params.items()})
    else:
        raise HillError(
            f"params: a file path or a mapping of sections, not {type(params).__name__}"
        )
    if isinstance(overrides, str):
        overrides = [overrides]
    dotted = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides or [])
    dotted |= {k: v for k, v in (("model.name", model), ("data.name", data)) if v is not None}
    if baseline:
        dotted["hill.gate_epochs"] = []  # no gates: a shorter train.epochs must not fail
    cfg = cfg.replace(**dotted) if dotted else cfg
    return baseline_config(cfg) if baseline else cfg

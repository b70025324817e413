"""The one format every benchmark reports in, so ``make bench`` can print one table.

A benchmark script measures its figures side by side in one run and calls :func:`emit`: it
prints one line per figure and, with ``--json PATH`` (see :func:`add_json_argument`), also writes
them as JSON for ``benchmarks/run_all.py`` to gather.

    fig = Figure("readout per drag, 10,000 points", 18.2, "ms", "<=", 30.0, "median of 200")
    emit([fig], args.json)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """One measured figure and its target.

    Attributes:
        name: what was measured, for a person ("HILL step / CE step, digits model").
        value: the measurement, in ``unit``; NaN when it could not be measured.
        unit: "ratio", "s", "ms", "MB", "items/s", ...
        op: how ``value`` must compare with ``target``: "<=", ">=", or "" for a figure that is
            only reported.
        target: the bound, in ``unit``.
        detail: how it was measured (repetitions, spread, sizes), one short line.
    """

    name: str
    value: float
    unit: str
    op: str = ""
    target: float | None = None
    detail: str = ""

    @property
    def verdict(self) -> str:
        """ "ok", "MISS" or "" (reported only)."""
        if not self.op or self.target is None:
            return ""
        if self.value != self.value:  # NaN: not measured, so not met
            return "MISS"
        met = self.value <= self.target if self.op == "<=" else self.value >= self.target
        return "ok" if met else "MISS"

    def line(self) -> str:
        target = f"target {self.op} {self.target:g} {self.unit}" if self.op else "reported"
        verdict = f" [{self.verdict}]" if self.verdict else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.name}: {self.value:.3f} {self.unit}, {target}{verdict}{detail}"


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")


def emit(figures: list[Figure], json_path: Path | None = None) -> None:
    """Print one line per figure; with ``json_path``, write them there as a JSON list too."""
    for figure in figures:
        print(figure.line(), flush=True)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps([asdict(f) for f in figures], indent=1))


def read_figures(json_path: Path) -> list[Figure]:
    return [Figure(**row) for row in json.loads(Path(json_path).read_text())]

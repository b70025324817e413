"""`hill compare`: guided runs against their paired baselines, from MLflow."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.plots import compare_png
from pipelines.tracking import RunRecord, guided_pairs

UI_COMMAND = "mlflow ui --backend-store-uri sqlite:///mlflow.db"


def pair_row(guided: RunRecord, baseline: RunRecord) -> dict:
    """One table row: test scores of both runs, their deltas, and val deltas at each gate."""
    g, b = guided.metrics, baseline.metrics
    last = max(guided.val_acc, default=0)
    epochs = [e for e in [*guided.gate_epochs[1:], last] if e in baseline.val_acc]
    gate_deltas = " ".join(
        f"e{e}:{100 * (guided.val_acc[e] - baseline.val_acc[e]):+.1f}" for e in epochs
    )
    return {
        "guided": guided.name,
        "user": guided.tags.get("hill.user", "?"),
        "test_acc_guided": g.get("test_acc"),
        "test_acc_baseline": b.get("test_acc"),
        "delta_acc_pp": 100 * (g.get("test_acc", 0.0) - b.get("test_acc", 0.0)),
        "f1_guided": g.get("test_f1"),
        "f1_baseline": b.get("test_f1"),
        "delta_f1_pp": 100 * (g.get("test_f1", 0.0) - b.get("test_f1", 0.0)),
        "val_delta_pp_after_gates": gate_deltas or "-",
    }


def compare_table(prefix: str) -> tuple[pd.DataFrame, dict[str, dict[int, float]]]:
    """The comparison table (one row per pair) and the val-accuracy curve of every run."""
    pairs = guided_pairs(prefix)
    table = pd.DataFrame([pair_row(g, b) for g, b in pairs])
    curves = {}
    for g, b in pairs:
        curves[g.name] = g.val_acc
        curves[b.name] = b.val_acc
    return table, curves


def format_table(table: pd.DataFrame) -> str:
    """Fixed-width text: accuracy in %, deltas in percentage points (pp)."""
    shown = pd.DataFrame(
        {
            "guided run": table["guided"],
            "user": table["user"],
            "test acc": _pct(table["test_acc_guided"]),
            "baseline": _pct(table["test_acc_baseline"]),
            "Δ acc": table["delta_acc_pp"].map("{:+.2f} pp".format),
            "macro-F1": _pct(table["f1_guided"]),
            "baseline F1": _pct(table["f1_baseline"]),
            "Δ F1": table["delta_f1_pp"].map("{:+.2f} pp".format),
            "val Δ after gates (pp)": table["val_delta_pp_after_gates"],
        }
    )
    return shown.to_string(index=False)


def _pct(column: pd.Series) -> pd.Series:
    return column.map(lambda v: "-" if pd.isna(v) else f"{100 * v:.2f}%")


def compare(out: Path | str, prefix: str) -> tuple[str, Path | None]:
    """The printed table and the plot written to ``out`` (None when there is nothing to show)."""
    table, curves = compare_table(prefix)
    if table.empty:
        return "No finished guided run with a paired baseline yet: run `hill run` first.", None
    return format_table(table), compare_png(table, curves, out)

"""`hill compare`: guided runs against their paired baselines, from MLflow."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.plots import compare_png
from pipelines.tracking import RunRecord, guided_pairs, tracking_uri


def browse_hint() -> str:
    """How to see the same runs in the MLflow UI, for the tracking URI in use."""
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        return f"Browse the runs: {uri} (the MLflow server's UI)"
    return (
        f"Browse the runs: mlflow ui --backend-store-uri {uri}  (then open http://127.0.0.1:5000)"
    )


def stopped_at(run: RunRecord) -> int | None:
    """The gate epoch where a person (or the timeout) stopped the run, None if it ran on."""
    stops = [
        int(key.split(".")[1])
        for key, value in run.tags.items()
        if key.startswith("gate.") and key.endswith(".decision") and value == "stop"
    ]
    return min(stops, default=None)


def epochs_note(guided: RunRecord, baseline: RunRecord) -> str:
    """Why the two test scores may not be comparable epoch for epoch ("" when they are)."""
    g, b = max(guided.val_acc, default=0), max(baseline.val_acc, default=0)
    stop = stopped_at(guided)
    notes = [f"stopped at the gate after epoch {stop}"] if stop is not None else []
    if g != b:
        notes.append(f"guided trained {g} epochs, its baseline {b}")
    return "; ".join(notes)


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
        "epochs_guided": last,
        "epochs_baseline": max(baseline.val_acc, default=0),
        "test_acc_guided": g.get("test_acc"),
        "test_acc_baseline": b.get("test_acc"),
        "delta_acc_pp": 100 * (g.get("test_acc", 0.0) - b.get("test_acc", 0.0)),
        "f1_guided": g.get("test_f1"),
        "f1_baseline": b.get("test_f1"),
        "delta_f1_pp": 100 * (g.get("test_f1", 0.0) - b.get("test_f1", 0.0)),
        "val_delta_pp_after_gates": gate_deltas or "-",
        "note": epochs_note(guided, baseline),
    }


def compare_table(prefix: str) -> tuple[pd.DataFrame, list[tuple[RunRecord, RunRecord]]]:
    """The comparison table (one row per pair) and the pairs themselves (for their curves)."""
    pairs = guided_pairs(prefix)
    return pd.DataFrame([pair_row(g, b) for g, b in pairs]), pairs


def format_table(table: pd.DataFrame) -> str:
    """Fixed-width text: accuracy in %, deltas in percentage points (pp), then the notes."""
    epochs = [
        str(g) if g == b else f"{g} vs {b}"
        for g, b in zip(table["epochs_guided"], table["epochs_baseline"], strict=True)
    ]
    shown = pd.DataFrame(
        {
            "guided run": table["guided"],
            "user": table["user"],
            "epochs": epochs,
            "test acc": _pct(table["test_acc_guided"]),
            "baseline": _pct(table["test_acc_baseline"]),
            "Δ acc": table["delta_acc_pp"].map("{:+.2f} pp".format),
            "macro-F1": _pct(table["f1_guided"]),
            "baseline F1": _pct(table["f1_baseline"]),
            "Δ F1": table["delta_f1_pp"].map("{:+.2f} pp".format),
            "val Δ after gates (pp)": table["val_delta_pp_after_gates"],
        }
    )
    notes = [
        f"{run}: {note}" for run, note in zip(table["guided"], table["note"], strict=True) if note
    ]
    text = shown.to_string(index=False)
    return text + ("\n\nNote: " + "\nNote: ".join(notes) if notes else "")


def _pct(column: pd.Series) -> pd.Series:
    return column.map(lambda v: "-" if pd.isna(v) else f"{100 * v:.2f}%")


def compare(out: Path | str, prefix: str) -> tuple[str, Path | None]:
    """The printed table and the plot written to ``out`` (None when there is nothing to show)."""
    table, pairs = compare_table(prefix)
    if table.empty:
        return "No finished guided run with a paired baseline yet: run `hill run` first.", None
    curves = [(g.name, g.val_acc, b.name, b.val_acc) for g, b in pairs]
    return format_table(table), compare_png(table, curves, out)

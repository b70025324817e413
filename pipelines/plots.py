"""PNG figures for MLflow and `hill compare` (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _figure(**kwargs):
    """A figure on the Agg canvas, without pyplot: no global figure registry, thread-safe."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def gate_layout_png(
    edits: pd.DataFrame, class_names: list[str], which: str, title: str, path: Path | str
) -> Path:
    """Scatter of a gate's layout, ``which`` = "before" (the snapshot) or "after" (the edit)."""
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    x, y = edits[f"x_{which}"].to_numpy(), edits[f"y_{which}"].to_numpy()
    labels = edits["label"].to_numpy()
    cmap = colormaps["tab20" if len(class_names) > 10 else "tab10"]
    colors = [cmap(c % cmap.N) for c in range(len(class_names))]
    fig = _figure(figsize=(5, 5), dpi=80)
    ax = fig.add_subplot()
    # One collection for all points: a scatter per class costs a draw call per class.
    ax.scatter(x, y, s=6, c=[colors[c] for c in labels], linewidths=0)
    moved = edits["moved"].to_numpy() if which == "after" else np.zeros(len(x), bool)
    if moved.any():
        ax.scatter(x[moved], y[moved], s=30, facecolors="none", edgecolors="black")
    handles = [
        Line2D([], [], ls="", marker="o", color=c, label=n)
        for c, n in zip(colors, class_names, strict=True)
    ]
    ax.legend(handles=handles, fontsize=6, loc="upper right")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    return _save(fig, path)


def compare_png(table: pd.DataFrame, curves: dict[str, dict[int, float]], path: Path | str) -> Path:
    """Test accuracy of each guided run against its baseline, and their val-accuracy curves.

    Args:
        table: one row per pair with columns guided, test_acc_guided, test_acc_baseline.
        curves: run label -> {epoch: val accuracy}.
    """
    fig = _figure(figsize=(12, 4.5), dpi=100, layout="tight")
    bars, lines = fig.subplots(1, 2)
    pos = np.arange(len(table))
    bars.bar(pos - 0.2, table["test_acc_baseline"], 0.4, label="baseline")
    bars.bar(pos + 0.2, table["test_acc_guided"], 0.4, label="guided")
    bars.set_xticks(pos, table["guided"], rotation=20, ha="right", fontsize=7)
    low = float(np.nanmin(table[["test_acc_guided", "test_acc_baseline"]].to_numpy()))
    bars.set_ylim(max(0.0, low - 0.05), 1.0)
    bars.set_ylabel("test accuracy")
    bars.legend()
    for label, curve in curves.items():
        style = "--" if "baseline" in label else "-"
        lines.plot(list(curve), list(curve.values()), style, label=label)
    lines.set_xlabel("epoch")
    lines.set_ylabel("val accuracy")
    lines.legend(fontsize=6)
    return _save(fig, path)


def _save(fig, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def study_png(summary: pd.DataFrame, title: str, path: Path | str) -> Path:
    """Mean Δ test accuracy per strategy (pp) with its 95 % t-interval, zero marked."""
    fig = _figure(figsize=(7, 3.5), dpi=100)
    ax = fig.add_subplot()
    y = np.arange(len(summary))
    mean = summary["delta_acc_pp"].to_numpy()
    low = np.nan_to_num(mean - summary["ci_low_pp"].to_numpy())
    high = np.nan_to_num(summary["ci_high_pp"].to_numpy() - mean)
    colors = ["#2ca02c" if m > 0 else "#d62728" if m < 0 else "#7f7f7f" for m in mean]
    ax.barh(y, mean, xerr=[low, high], color=colors, capsize=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, summary["strategy"])
    ax.invert_yaxis()
    ax.set_xlabel("Δ test accuracy against the paired baseline (pp), mean and 95 % CI")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)

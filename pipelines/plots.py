"""PNG figures for MLflow and `hill compare` (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import textwrap
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


Curves = list[tuple[str, dict[int, float], str, dict[int, float]]]


def pair_colors(n: int) -> list:
    """``n`` distinct colours: tab10, tab20, then evenly spaced on a wide colormap."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](x) for x in np.linspace(0.03, 0.97, n)]


def compare_png(table: pd.DataFrame, curves: Curves, path: Path | str) -> Path:
    """:func:`compare_figure`, saved as a PNG."""
    return _save(compare_figure(table, curves), path)


def compare_figure(table: pd.DataFrame, curves: Curves):
    """Test accuracy of each guided run against its baseline, and their val-accuracy curves.

    One colour per pair in both panels (never repeated), the bars on an axis from 0 with each
    pair's delta written above it, and both legends outside the plotting areas.

    Args:
        table: one row per pair with columns guided, test_acc_guided, test_acc_baseline.
        curves: per pair, (guided label, {epoch: val acc}, baseline label, {epoch: val acc}).
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    n = len(table)
    colors = pair_colors(n)
    fig = _figure(figsize=(12 + 0.25 * max(0, n - 6), 5), dpi=100, layout="constrained")
    bars, lines = fig.subplots(1, 2, width_ratios=[max(1.0, n / 6), 1.2])
    pos = np.arange(n)
    guided = table["test_acc_guided"].to_numpy(float)
    baseline = table["test_acc_baseline"].to_numpy(float)
    bars.bar(pos - 0.2, baseline, 0.4, color=colors, alpha=0.4, hatch="//", edgecolor=colors)
    bars.bar(pos + 0.2, guided, 0.4, color=colors)
    for x, g, b in zip(pos, guided, baseline, strict=True):
        if not (np.isnan(g) or np.isnan(b)):
            bars.text(x, max(g, b) + 0.01, f"{100 * (g - b):+.2f} pp", ha="center",
                      va="bottom", fontsize=7, rotation=90 if n > 8 else 0)  # fmt: skip
    bars.set_ylim(0.0, 1.12)  # from 0: a cut axis would blow small deltas up
    bars.set_yticks(np.linspace(0, 1, 6))
    bars.set_xticks(pos, table["guided"], rotation=30, ha="right", fontsize=7)
    bars.set_ylabel("test accuracy (delta: guided - baseline)")
    bars.legend(
        handles=[
            Patch(facecolor="grey", alpha=0.4, hatch="//", edgecolor="grey", label="baseline"),
            Patch(facecolor="grey", label="guided"),
        ],
        loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=2, frameon=False, fontsize=8,
    )  # fmt: skip
    for color, (_, g_curve, _, b_curve) in zip(colors, curves, strict=True):
        lines.plot(list(g_curve), list(g_curve.values()), "-", color=color)
        lines.plot(list(b_curve), list(b_curve.values()), "--", color=color, alpha=0.7)
    lines.set_xlabel("epoch")
    lines.set_ylabel("val accuracy")
    handles = [
        Line2D([], [], color="grey", ls="-", label="guided"),
        Line2D([], [], color="grey", ls="--", label="its baseline"),
        *[
            Line2D([], [], color=c, lw=4, label=g)
            for c, (g, *_) in zip(colors, curves, strict=True)
        ],
    ]
    lines.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=6,
                 ncol=1 if n <= 16 else 2, frameon=False)  # fmt: skip
    return fig


def _save(fig, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def study_png(summary: pd.DataFrame, title: str, path: Path | str) -> Path:
    """Mean Δ test accuracy per strategy (pp) with its 95 % t-interval, zero marked."""
    fig = _figure(figsize=(9, 3.5), dpi=100)  # wide enough for "<strategy> (N guard reverts)"
    ax = fig.add_subplot()
    y = np.arange(len(summary))
    mean = summary["delta_acc_pp"].to_numpy()
    low = np.nan_to_num(mean - summary["ci_low_pp"].to_numpy())
    high = np.nan_to_num(summary["ci_high_pp"].to_numpy() - mean)
    colors = ["#2ca02c" if m > 0 else "#d62728" if m < 0 else "#7f7f7f" for m in mean]
    ax.barh(y, mean, xerr=[low, high], color=colors, capsize=3)
    ax.axvline(0, color="black", linewidth=0.8)
    reverts = summary["reverts"].to_numpy() if "reverts" in summary else np.zeros(len(y), int)
    ax.set_yticks(
        y, [f"{s} ({r} guard reverts)" for s, r in zip(summary["strategy"], reverts, strict=True)]
    )
    ax.invert_yaxis()
    ax.set_xlabel("Δ test accuracy against the paired baseline (pp), mean and 95 % CI")
    ax.set_title(textwrap.fill(title, 90), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)

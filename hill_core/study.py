"""A study's arithmetic: paired differences against the baseline, per strategy, with a t-interval.

Pure: rows in, a summary table out. Each row is one (seed, strategy) guided run with the test
scores of its paired baseline (same seed, split and schedule), so the difference cancels the
seed's own luck.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

ROW_COLUMNS = (
    "seed", "strategy", "test_acc", "baseline_test_acc", "test_f1", "baseline_test_f1",
    "reverted",
)  # fmt: skip


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and the two ends of its Student-t confidence interval (NaN ends for one value)."""
    values = np.asarray(values, np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * stats.sem(values)
    return mean, mean - float(half), mean + float(half)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: mean Δ test accuracy (pp) with its 95 % t-interval, Δ macro-F1, seeds better.

    Args:
        rows: one row per (seed, strategy), columns :data:`ROW_COLUMNS` (scores as fractions).
    """
    out = []
    for strategy, group in rows.groupby("strategy", sort=False):
        delta = 100 * (group["test_acc"] - group["baseline_test_acc"]).to_numpy()
        delta_f1 = 100 * (group["test_f1"] - group["baseline_test_f1"]).to_numpy()
        mean, low, high = t_interval(delta)
        out.append(
            {
                "strategy": strategy,
                "seeds": len(group),
                "delta_acc_pp": mean,
                "ci_low_pp": low,
                "ci_high_pp": high,
                "delta_f1_pp": float(delta_f1.mean()),
                "better": int((delta > 0).sum()),
                "worse": int((delta < 0).sum()),
                "worst_pp": float(delta.min()),
                "reverts": int(group["reverted"].sum()),
            }
        )
    return pd.DataFrame(out)


def format_summary(summary: pd.DataFrame) -> str:
    """Fixed-width text of :func:`summarise`'s table."""
    shown = pd.DataFrame(
        {
            "strategy": summary["strategy"],
            "seeds": summary["seeds"],
            "Δ test acc (pp)": summary["delta_acc_pp"].map("{:+.2f}".format),
            "95% CI (pp)": [
                f"[{lo:+.2f}, {hi:+.2f}]"
                for lo, hi in zip(summary["ci_low_pp"], summary["ci_high_pp"], strict=True)
            ],
            "Δ macro-F1 (pp)": summary["delta_f1_pp"].map("{:+.2f}".format),
            "better/worse": [
                f"{b}/{w}" for b, w in zip(summary["better"], summary["worse"], strict=True)
            ],
            "worst (pp)": summary["worst_pp"].map("{:+.2f}".format),
            "guard reverts": summary["reverts"],
        }
    )
    return shown.to_string(index=False)

"""A study's arithmetic: paired differences per strategy with a Student-t interval."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hill_core.study import format_summary, summarise, t_interval


def test_t_interval_matches_its_definition():
    values = np.array([1.0, -0.5, 2.0, 0.5, 1.5])
    mean, low, high = t_interval(values)
    half = stats.t.ppf(0.975, 4) * values.std(ddof=1) / np.sqrt(5)
    assert mean == pytest.approx(0.9)
    assert (low, high) == pytest.approx((0.9 - half, 0.9 + half))
    assert np.isnan(t_interval(np.array([1.0]))[1])


def test_summary_pairs_each_run_with_its_own_baseline():
    rows = pd.DataFrame(
        {
            "seed": [0, 1, 2, 0, 1, 2],
            "strategy": ["noedit"] * 3 + ["merge"] * 3,
            "test_acc": [0.90, 0.80, 0.70, 0.91, 0.78, 0.70],
            "baseline_test_acc": [0.90, 0.80, 0.70, 0.90, 0.80, 0.70],
            "test_f1": [0.9, 0.8, 0.7, 0.9, 0.8, 0.7],
            "baseline_test_f1": [0.9, 0.8, 0.7, 0.9, 0.8, 0.7],
            "reverted": [0, 0, 0, 1, 0, 2],
        }
    )
    summary = summarise(rows).set_index("strategy")
    assert summary.loc["noedit", "delta_acc_pp"] == 0.0
    assert summary.loc["noedit", ["better", "worse"]].tolist() == [0, 0]
    assert summary.loc["merge", "delta_acc_pp"] == pytest.approx((1 - 2 + 0) / 3)
    assert summary.loc["merge", ["better", "worse", "reverts"]].tolist() == [1, 1, 3]
    assert "merge" in format_summary(summarise(rows))

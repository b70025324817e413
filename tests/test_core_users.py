"""Simulated users do what their strategy names, deterministically."""

import numpy as np
import pandas as pd
import pytest

from hill_core.edits import validate_edits
from hill_core.teacher import layout_stats
from hill_core.users import STRATEGIES, simulated_edits


@pytest.fixture
def snapshot():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 25)
    centres = np.array([[0, 0], [3, 0], [0, 3], [3, 3]], float)
    xy = centres[labels] + rng.normal(scale=0.5, size=(100, 2))
    pred = labels.copy()
    pred[[0, 30, 60]] = [1, 2, 3]  # three misclassified items
    return pd.DataFrame(
        {
            "sample_id": np.arange(100),
            "label": labels,
            "class_name": labels.astype(str).astype(object),
            "pred": pred,
            "x": xy[:, 0],
            "y": xy[:, 1],
        }
    )


CONFUSION = np.diag([20, 20, 20, 20]) + np.array(
    [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 9], [0, 0, 4, 0]]
)


def stats(edits, side):
    xy = edits[[f"x_{side}", f"y_{side}"]].to_numpy()
    return layout_stats(xy, edits["label"].to_numpy(), 4)


def run(name, snapshot, seed=0):
    edits = simulated_edits(name, snapshot, CONFUSION, seed, "r", 5)
    return validate_edits(edits, snapshot)


def test_compactness_shrinks_every_cluster_and_keeps_centres(snapshot):
    edits = run("compactness", snapshot)
    (c0, s0, _, _), (c1, s1, _, _) = stats(edits, "before"), stats(edits, "after")
    assert np.allclose(c0, c1) and np.all(s1 < s0) and not edits["moved"].any()


def test_separation_pushes_centres_apart(snapshot):
    edits = run("separation", snapshot)
    (c0, s0, _, _), (c1, s1, _, _) = stats(edits, "before"), stats(edits, "after")
    gaps = lambda c: np.linalg.norm(c[:, None] - c[None], axis=2)  # noqa: E731
    assert np.all(gaps(c1) >= gaps(c0) - 1e-9) and np.allclose(s0, s1)


def test_merge_joins_the_most_confused_pair(snapshot):
    edits = run("merge", snapshot)
    centres, _, _, _ = stats(edits, "after")
    assert np.allclose(centres[2], centres[3])  # classes 2 and 3 are most confused
    before, _, _, _ = stats(edits, "before")
    assert np.allclose(centres[:2], before[:2])


def test_fix_outliers_moves_misclassified_points_to_their_centre(snapshot):
    edits = run("fix-outliers", snapshot)
    assert edits.index[edits["moved"]].tolist() == [0, 30, 60]
    centres, _, _, _ = stats(edits, "before")
    moved = edits[edits["moved"]]
    assert np.allclose(moved[["x_after", "y_after"]], centres[moved["label"]])


def test_adversarial_is_random_but_reproducible(snapshot):
    a, b, c = (
        run("adversarial", snapshot, 0),
        run("adversarial", snapshot, 0),
        run("adversarial", snapshot, 1),
    )
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["x_after"], c["x_after"])
    assert a["moved"].any()


def test_every_strategy_gives_valid_edits_and_unknown_is_an_error(snapshot):
    for name in STRATEGIES:
        run(name, snapshot)
    with pytest.raises(ValueError, match="unknown strategy 'telepathy'"):
        simulated_edits("telepathy", snapshot, CONFUSION, 0, "r", 5)

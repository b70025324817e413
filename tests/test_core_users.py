"""Simulated users do what their strategy names, deterministically."""

import numpy as np
import pandas as pd
import pytest

from hill_core.edits import validate_edits
from hill_core.teacher import layout_stats
from hill_core.users import (
    CONFUSION_COMPACT,
    SEPARATE_TARGET,
    STRATEGIES,
    simulated_edits,
)


def make_snapshot(centres, seed=1, per_class=25):
    """Four Gaussian clusters (sd 0.5 view units) around ``centres``, all predicted right."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(centres)), per_class)
    xy = np.asarray(centres, float)[labels] + rng.normal(scale=0.5, size=(len(labels), 2))
    return pd.DataFrame(
        {
            "sample_id": np.arange(len(labels)),
            "label": labels,
            "class_name": labels.astype(str).astype(object),
            "pred": labels.copy(),
            "x": xy[:, 0],
            "y": xy[:, 1],
        }
    )


@pytest.fixture
def snapshot():
    snap = make_snapshot([[0, 0], [3, 0], [0, 3], [3, 3]])
    snap.loc[[0, 30, 60], "pred"] = [1, 2, 3]  # three misclassified items
    return snap


CONFUSION = np.diag([20, 20, 20, 20]) + np.array(
    [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 9], [0, 0, 4, 0]]
)
DIAGONAL = np.diag([20, 20, 20, 20])


def stats(edits, side):
    xy = edits[[f"x_{side}", f"y_{side}"]].to_numpy()
    return layout_stats(xy, edits["label"].to_numpy(), 4)


def run(name, snapshot, seed=0, confusion=CONFUSION):
    edits = simulated_edits(name, snapshot, confusion, seed, "r", 5)
    return validate_edits(edits, snapshot)


def gap(centres, a, b):
    return np.linalg.norm(centres[a] - centres[b])


def test_compactness_shrinks_every_cluster_and_keeps_centres(snapshot):
    edits = run("compactness", snapshot)
    (c0, s0, _, _), (c1, s1, _, _) = stats(edits, "before"), stats(edits, "after")
    assert np.allclose(c0, c1) and np.all(s1 < s0) and not edits["moved"].any()


@pytest.mark.parametrize(
    "centres",
    [
        [[0, 0], [8, 0], [0, 8], [0.5, 8]],  # 2 and 3 overlap (ratio about 0.4)
        [[0, 0], [8, 0], [0, 8], [1.6, 8]],  # none below 1.0: the closest pair (ratio about 1.3)
    ],
)
def test_separation_moves_the_most_overlapping_pair_apart_rigidly(centres):
    edits = run("separation", make_snapshot(centres))
    (c0, s0, _, _), (c1, s1, _, _) = stats(edits, "before"), stats(edits, "after")
    assert np.isclose(gap(c1, 2, 3), SEPARATE_TARGET * (s0[2] + s0[3]))
    assert gap(c1, 2, 3) > gap(c0, 2, 3) and np.allclose(s0, s1)
    # The pair moves along the line joining its centres, each class by the same amount.
    assert np.allclose(c1[2] + c1[3], c0[2] + c0[3])
    assert np.allclose(
        edits.loc[edits["label"] < 2, ["x_after", "y_after"]].to_numpy(),
        edits.loc[edits["label"] < 2, ["x_before", "y_before"]].to_numpy(),
    )
    assert not edits["moved"].any()


def test_separation_leaves_pairs_already_apart_alone(snapshot):
    edits = run("separation", snapshot)  # most overlapping ratio about 2.4 > SEPARATE_TARGET
    assert np.allclose(edits["x_after"], edits["x_before"])
    assert np.allclose(edits["y_after"], edits["y_before"])


def test_separation_splits_coincident_classes_along_x():
    snap = make_snapshot([[0, 0], [9, 0], [0, 9], [9, 9]])
    snap.loc[snap["label"] == 1, ["x", "y"]] = snap.loc[snap["label"] == 0, ["x", "y"]].to_numpy()
    edits = run("separation", snap)
    (c0, s0, _, _), (c1, _, _, _) = stats(edits, "before"), stats(edits, "after")
    assert np.allclose(c1[1] - c1[0], [SEPARATE_TARGET * 2 * s0[0], 0.0])
    assert np.allclose(c1[0] + c1[1], c0[0] + c0[1]) and np.allclose(c1[2:], c0[2:])


def test_separation_adds_up_the_moves_of_a_class_in_two_pairs():
    # 0-1 and 1-2 overlap (ratio about 0.6), 0-2 does not (about 1.3); 3 is far away.
    edits = run("separation", make_snapshot([[0, 0], [0.8, 0], [1.6, 0], [9, 9]]))
    (c0, _, _, _), (c1, _, _, _) = stats(edits, "before"), stats(edits, "after")
    shift = c1 - c0
    assert np.linalg.norm(shift[0]) > 0.1 and np.linalg.norm(shift[2]) > 0.1
    assert np.allclose(shift[1], -shift[0] - shift[2]) and np.allclose(shift[3], 0.0)


def test_merge_joins_the_most_confused_pair(snapshot):
    edits = run("merge", snapshot)
    centres, _, _, _ = stats(edits, "after")
    assert np.allclose(centres[2], centres[3])  # classes 2 and 3 are most confused
    before, _, _, _ = stats(edits, "before")
    assert np.allclose(centres[:2], before[:2])


def test_merge_without_confusion_joins_the_closest_pair_in_the_view():
    edits = run("merge", make_snapshot([[0, 0], [4, 0], [0, 5], [4, 1.5]]), confusion=DIAGONAL)
    (c0, _, _, _), (c1, _, _, _) = stats(edits, "before"), stats(edits, "after")
    assert np.allclose(c1[1], c1[3]) and np.allclose(c1[1], (c0[1] + c0[3]) / 2)
    assert np.allclose(c1[[0, 2]], c0[[0, 2]])


def test_fix_outliers_moves_only_points_nearer_another_centre(snapshot):
    snapshot.loc[5, ["x", "y"]] = [2.6, 0.1]  # a class-0 point by class 1's centre, predicted 0
    edits = run("fix-outliers", snapshot)
    assert edits.index[edits["moved"]].tolist() == [5]
    centres, _, _, _ = stats(edits, "before")
    assert np.allclose(edits.loc[5, ["x_after", "y_after"]].to_numpy(float), centres[0])
    # Misclassified points inside their own cluster stay put: cross-entropy already sees them.
    still = edits.drop(index=5)
    assert np.array_equal(still["x_after"], still["x_before"])
    assert np.array_equal(still["y_after"], still["y_before"])


def test_fix_outliers_without_outliers_changes_nothing(snapshot):
    edits = run("fix-outliers", snapshot)
    assert not edits["moved"].any()
    assert np.array_equal(edits["x_after"], edits["x_before"])
    assert np.array_equal(edits["y_after"], edits["y_before"])


def test_confusion_separates_confused_pairs_and_compacts_the_weakest_classes():
    # Pairs (0, 1) and (2, 3) overlap and are confused; recall 2: 20/29, 3: 20/24 are the lowest.
    edits = run("confusion", make_snapshot([[0, 0], [1, 0], [0, 6], [1, 6]]))
    (c0, s0, _, _), (c1, s1, _, _) = stats(edits, "before"), stats(edits, "after")
    for a, b in [(0, 1), (2, 3)]:
        assert np.isclose(gap(c1, a, b), SEPARATE_TARGET * (s0[a] + s0[b]))
        assert np.allclose(c1[a] + c1[b], c0[a] + c0[b])
    assert np.allclose(s1[[2, 3]], CONFUSION_COMPACT * s0[[2, 3]])
    assert np.allclose(s1[[0, 1]], s0[[0, 1]]) and not edits["moved"].any()


def test_confusion_without_off_diagonal_counts_only_compacts(snapshot):
    confusion = DIAGONAL.copy()
    confusion[0, 0] = 0  # no validation item of class 0: no recall, never the weakest
    edits = run("confusion", snapshot, confusion=confusion)
    (c0, s0, _, _), (c1, s1, _, _) = stats(edits, "before"), stats(edits, "after")
    assert np.allclose(c0, c1)
    assert np.allclose(s1, s0 * [1, CONFUSION_COMPACT, CONFUSION_COMPACT, 1])


def test_noedit_returns_the_snapshot_unchanged(snapshot):
    edits = run("noedit", snapshot)
    assert np.array_equal(edits["x_after"], snapshot["x"])
    assert np.array_equal(edits["y_after"], snapshot["y"])
    assert not edits["moved"].any()


def test_adversarial_is_random_but_reproducible(snapshot):
    a, b, c = (
        run("adversarial", snapshot, 0),
        run("adversarial", snapshot, 0),
        run("adversarial", snapshot, 1),
    )
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["x_after"], c["x_after"])
    assert a["moved"].any()


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_gives_valid_deterministic_edits(snapshot, name):
    pd.testing.assert_frame_equal(run(name, snapshot, 3), run(name, snapshot, 3))


def test_the_paper_strategies_and_the_control_are_registered():
    assert {"compactness", "separation", "merge", "fix-outliers", "adversarial"} <= set(STRATEGIES)
    assert {"confusion", "noedit"} <= set(STRATEGIES)


def test_the_light_list_of_names_is_the_strategies_list():
    """Commands check --autopilot against hill_core.strategy_names before importing torch."""
    from hill_core import strategy_names, users

    assert tuple(users.STRATEGIES) == strategy_names.LAYOUT_STRATEGIES
    assert tuple(users.LABEL_STRATEGIES) == strategy_names.LABEL_STRATEGIES
    assert strategy_names.ALL_STRATEGIES == users.ALL_STRATEGIES


def test_unknown_strategy_is_an_error(snapshot):
    with pytest.raises(ValueError, match="unknown strategy 'telepathy'"):
        simulated_edits("telepathy", snapshot, CONFUSION, 0, "r", 5)

"""Simulated users (docs/method.md, "Simulated users"): pure functions from a snapshot to targets.

Each strategy takes the snapshot table, the validation confusion matrix (C, C) of counts (rows =
true class) and a numpy Generator, and returns ``(x_after (N,), y_after (N,), moved (N,) bool)``.
``moved`` is True only for points moved one by one; class-level shifts and scalings keep it False.
``simulated_edits`` wraps one into an edits table.

Strategies (all distances are in view units, the frozen projection's units):

* ``compactness``: scale every class about its centre by ``COMPACT_FACTOR``.
* ``separation``: move the class pairs that overlap in the view rigidly apart.
* ``merge``: bring the most confused pair (or, without any confusion, the closest pair) together.
* ``fix-outliers``: move each point nearer another class centre than its own onto its own centre.
* ``confusion``: separate the pairs the validation confusion mixes up and compact the classes
  with the lowest validation recall; uses only what the gate page shows.
* ``adversarial``: conflicting random moves.
* ``noedit``: approve the layout unchanged (the control).

Users who correct labels (docs/method.md, "Label corrections") model a person with a budget of
``K`` looks per gate (``budget``): a look is one item, or one "find similar" group. They
return label corrections as well as targets (:class:`UserEdit`).

* ``oracle``: walks the suspects list (most suspect first) and, after each relabel, the item's
  similar items (:func:`similar_items`); it knows the true class of each item it inspects, and
  only of those, relabels the wrong ones and keeps the right ones.
* ``oracle-random``: the same person inspecting items in a random order: the ranking's value.
* ``oracle-drag``: the oracle's inspections, but each wrong item is dragged onto its true class
  centre as a latent request, its label kept: the value of the label channel.
* ``auto-relabel``: no person: relabels the top ``K`` suspects to the probe's prediction, as an
  automatic cleaning pipeline would: the value of the person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from hill_core.edits import make_edits, snapshot_state
from hill_core.suspects import rank
from hill_core.teacher import layout_stats

Targets = tuple[np.ndarray, np.ndarray, np.ndarray]
Pair = tuple[int, int]
BUDGET = 30  # items a label-correcting user inspects per gate (a person's few minutes)
SIMILAR = 5  # "find similar" offers this many items after a relabel

COMPACT_FACTOR = 0.5  # compactness: each cluster shrinks to half its spread
# separation: a pair overlaps when its overlap ratio (centre distance / (spread_a + spread_b),
# spread = mean distance of a class's points from its centre; dimensionless) is below this
SEPARATE_BELOW = 1.0
SEPARATE_PAIRS = 3  # separation: at most this many overlapping pairs, most overlapping first
SEPARATE_TARGET = 1.5  # separated pairs end with centre distance 1.5 x (spread_a + spread_b)
MERGE_SHARE = 0.5  # merge: the two classes meet halfway between their centres
CONFUSION_PAIRS = 3  # confusion: separate the 3 pairs with the largest symmetric confusion count
CONFUSION_WEAK = 2  # confusion: compact the 2 classes with the lowest validation recall
CONFUSION_COMPACT = 0.7  # confusion: weak classes shrink to 0.7 of their spread
ADVERSARIAL_SCALE = 1.0  # adversarial: random offsets of about one view unit
_COINCIDENT_DIRECTION = np.array([1.0, 0.0])  # pushes apart classes whose centres coincide


def _xy(snapshot: pd.DataFrame) -> np.ndarray:
    return snapshot[["x", "y"]].to_numpy(np.float64)


def _class_centres(xy: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    return {int(c): xy[labels == c].mean(axis=0) for c in np.unique(labels)}


def _class_spreads(
    xy: np.ndarray, labels: np.ndarray, centres: dict[int, np.ndarray]
) -> dict[int, float]:
    """Mean distance (view units) of each class's points from its centre, as the teacher's s0."""
    spreads = layout_stats(xy, labels, int(labels.max()) + 1)[1]
    return {c: float(spreads[c]) for c in centres}


def _split(xy: np.ndarray, moved: np.ndarray) -> Targets:
    return xy[:, 0].copy(), xy[:, 1].copy(), moved


def _unmoved(xy: np.ndarray) -> np.ndarray:
    return np.zeros(len(xy), bool)


def _scale_classes(
    xy: np.ndarray,
    labels: np.ndarray,
    centres: dict[int, np.ndarray],
    factor: float,
    classes: Iterable[int],
) -> np.ndarray:
    """A copy of ``xy`` with each class in ``classes`` scaled about its centre by ``factor``."""
    out = xy.copy()
    for c in classes:
        out[labels == c] = centres[c] + factor * (xy[labels == c] - centres[c])
    return out


def _separate_pairs(
    xy: np.ndarray,
    labels: np.ndarray,
    pairs: list[Pair],
    target: float = SEPARATE_TARGET,
) -> np.ndarray:
    """Move each pair rigidly apart along its centre line; a copy of ``xy`` with the moves.

    Each class of a pair moves half of the shortfall, so that the centre distance becomes
    ``target`` x (spread_a + spread_b). Pairs already that far apart stay put (a pair is never
    pulled together). The moves of a class in several pairs add up; all are computed from the
    snapshot's centres and spreads.
    """
    centres = _class_centres(xy, labels)
    spreads = _class_spreads(xy, labels, centres)
    out = xy.copy()
    for a, b in pairs:
        delta = centres[b] - centres[a]
        gap = float(np.linalg.norm(delta))  # view units
        direction = delta / gap if gap > 0 else _COINCIDENT_DIRECTION
        shortfall = max(target * (spreads[a] + spreads[b]) - gap, 0.0)
        out[labels == a] -= 0.5 * shortfall * direction
        out[labels == b] += 0.5 * shortfall * direction
    return out


def overlapping_pairs(
    centres: dict[int, np.ndarray],
    spreads: dict[int, float],
    below: float = SEPARATE_BELOW,
    limit: int = SEPARATE_PAIRS,
) -> list[Pair]:
    """The class pairs that overlap most in the view, most overlapping first.

    Args:
        centres: class -> centre (2,) in view units.
        spreads: class -> mean distance of its points from its centre, in view units.
        below: a pair overlaps when centre distance / (spread_a + spread_b) is below this.
        limit: the most pairs returned.

    Returns:
        Up to ``limit`` pairs ``(a, b)``, ``a < b``, whose ratio is below ``below``; if none is,
        the single most overlapping pair; empty with fewer than two classes.
    """
    ratios = []
    for a, b in combinations(sorted(centres), 2):
        total = spreads[a] + spreads[b]
        gap = float(np.linalg.norm(centres[a] - centres[b]))
        # Two classes of single (or stacked) points have no spread and nothing to separate.
        ratios.append((gap / total if total > 0 else np.inf, a, b))
    ratios.sort()
    chosen = [(a, b) for ratio, a, b in ratios[:limit] if ratio < below]
    return chosen or [(a, b) for _, a, b in ratios[:1]]


def confused_pairs(confusion: np.ndarray, present: list[int]) -> list[Pair]:
    """Pairs of ``present`` classes the validation confusion mixes up, most confused first.

    Args:
        confusion: (C, C) validation counts, rows = true class.
        present: the classes to consider (those in the snapshot).

    Returns:
        Every pair ``(a, b)``, ``a < b``, with a symmetric off-diagonal count
        ``confusion[a, b] + confusion[b, a]`` above 0; ties in class order.
    """
    sym = confusion + confusion.T
    counts = [(-sym[a, b], a, b) for a, b in combinations(sorted(present), 2) if sym[a, b] > 0]
    return [(a, b) for _, a, b in sorted(counts)]


def closest_pair(centres: dict[int, np.ndarray]) -> list[Pair]:
    """The pair whose centres are closest in the view (what a person sees), as a 0/1-item list."""
    pairs = list(combinations(sorted(centres), 2))
    gaps = [float(np.linalg.norm(centres[a] - centres[b])) for a, b in pairs]
    return [pairs[int(np.argmin(gaps))]] if pairs else []


def weakest_classes(confusion: np.ndarray, present: list[int], count: int) -> list[int]:
    """The ``count`` present classes with the lowest validation recall (diag / row sum).

    Classes whose row holds no validation item have no recall and are never chosen; ties go
    in class order.
    """
    totals = confusion.sum(axis=1)
    recalls = [(confusion[c, c] / totals[c], c) for c in sorted(present) if totals[c] > 0]
    return [c for _, c in sorted(recalls)[:count]]


def compactness(snapshot, confusion, rng, factor: float = COMPACT_FACTOR) -> Targets:
    """Scale every cluster about its centre by ``factor`` < 1."""
    xy, labels = _xy(snapshot), snapshot["label"].to_numpy()
    centres = _class_centres(xy, labels)
    return _split(_scale_classes(xy, labels, centres, factor, centres), _unmoved(xy))


def separation(snapshot, confusion, rng) -> Targets:
    """Move the pairs that overlap in the view rigidly apart (see :func:`overlapping_pairs`).

    Each chosen pair ends with centre distance ``SEPARATE_TARGET`` x (spread_a + spread_b);
    classes in no chosen pair stay where they are.
    """
    xy, labels = _xy(snapshot), snapshot["label"].to_numpy()
    centres = _class_centres(xy, labels)
    pairs = overlapping_pairs(centres, _class_spreads(xy, labels, centres))
    return _split(_separate_pairs(xy, labels, pairs), _unmoved(xy))


def merge(snapshot, confusion, rng, share: float = MERGE_SHARE) -> Targets:
    """Bring two classes together rigidly (each moves ``share`` of the way to the other).

    The pair is the most confused one by symmetric off-diagonal validation counts; without any
    off-diagonal count, the pair whose centres are closest in the view.
    """
    xy, labels = _xy(snapshot), snapshot["label"].to_numpy()
    centres = _class_centres(xy, labels)
    pairs = confused_pairs(np.asarray(confusion), list(centres))[:1] or closest_pair(centres)
    out = xy.copy()
    for a, b in pairs:
        meet = centres[a] + share * (centres[b] - centres[a])
        out[labels == a] += meet - centres[a]
        out[labels == b] += meet - centres[b]
    return _split(out, _unmoved(xy))


def fix_outliers(snapshot, confusion, rng) -> Targets:
    """Move each view outlier onto its own class centre, one by one (``moved=True``).

    A view outlier is a point closer to another class's centre than to its own, whatever the
    model predicts for it. Without outliers the layout comes back unchanged.
    """
    xy, labels = _xy(snapshot), snapshot["label"].to_numpy()
    centres = _class_centres(xy, labels)
    classes = np.array(sorted(centres))
    mus = np.stack([centres[int(c)] for c in classes])
    dist = np.linalg.norm(xy[:, None] - mus[None], axis=2)  # (N, K) view units
    own = dist[np.arange(len(xy)), np.searchsorted(classes, labels)]
    outliers = dist.min(axis=1) < own
    out = xy.copy()
    out[outliers] = mus[np.searchsorted(classes, labels[outliers])]
    return _split(out, outliers)


def confusion_guided(snapshot, confusion, rng) -> Targets:
    """Separate the pairs the validation confusion mixes up; compact the weakest classes.

    The ``CONFUSION_PAIRS`` pairs with the largest symmetric off-diagonal counts move apart as in
    :func:`separation`; the ``CONFUSION_WEAK`` classes with the lowest validation recall shrink
    about their centre by ``CONFUSION_COMPACT``. Without off-diagonal counts, only the latter.
    """
    xy, labels = _xy(snapshot), snapshot["label"].to_numpy()
    confusion = np.asarray(confusion)
    centres = _class_centres(xy, labels)
    weak = weakest_classes(confusion, list(centres), CONFUSION_WEAK)
    compact = _scale_classes(xy, labels, centres, CONFUSION_COMPACT, weak)
    pairs = confused_pairs(confusion, list(centres))[:CONFUSION_PAIRS]
    # The pair shifts are rigid and come from the snapshot's centres and spreads (what the page
    # shows); a rigid shift commutes with a scaling about the class's own centre, so adding the
    # shifts (separated - xy) to the compacted layout applies both.
    out = compact + (_separate_pairs(xy, labels, pairs) - xy)
    return _split(out, _unmoved(xy))


def adversarial(snapshot, confusion, rng, scale: float = ADVERSARIAL_SCALE) -> Targets:
    """Conflicting random moves: random class shifts plus random single-point moves."""
    xy, labels = _xy(snapshot), snapshot["label"].to_numpy()
    out = xy.copy()
    for c in np.unique(labels):
        out[labels == c] += rng.normal(0.0, scale, size=2)
    moved = rng.random(len(xy)) < 0.1
    out[moved] = rng.normal(0.0, 2.0 * scale, size=(int(moved.sum()), 2))
    return _split(out, moved)


def noedit(snapshot, confusion, rng) -> Targets:
    """Approve the layout as shown: nothing moves (the control)."""
    xy = _xy(snapshot)
    return _split(xy, _unmoved(xy))


STRATEGIES: dict[str, Callable[..., Targets]] = {
    "compactness": compactness,
    "separation": separation,
    "merge": merge,
    "fix-outliers": fix_outliers,
    "confusion": confusion_guided,
    "adversarial": adversarial,
    "noedit": noedit,
}


@dataclass(frozen=True)
class UserEdit:
    """A simulated user's edit: targets (N,), moved (N,) bool, labels after (N,), excluded (N,)."""

    x_after: np.ndarray
    y_after: np.ndarray
    moved: np.ndarray
    label_after: np.ndarray
    excluded: np.ndarray


def similar_items(snapshot: pd.DataFrame, row: int, old: int, new: int, k: int = SIMILAR):
    """Rows of "find similar" after row ``row`` was relabelled from ``old`` to ``new``.

    The items still labelled ``old`` (not excluded) whose out-of-fold prediction is ``new``,
    nearest to ``row`` in the view first, at most ``k``. The gate page offers the same.
    """
    state = snapshot_state(snapshot)
    xy = _xy(snapshot)
    same = (state["current_label"].to_numpy() == old) & ~state["excluded"].to_numpy()
    alike = same & (state["suspect_pred"].to_numpy() == new)
    alike[row] = False
    candidates = np.flatnonzero(alike)
    d = np.linalg.norm(xy[candidates] - xy[row], axis=1)
    return candidates[np.argsort(d, kind="stable")][:k].tolist()


def inspect_with_oracle(
    snapshot: pd.DataFrame, truth: np.ndarray, order: np.ndarray, budget: int
) -> np.ndarray:
    """Labels after an oracle spends ``budget`` looks; (N,) int64, the current label where it
    did not look.

    A look is one item of ``order`` (rows), or one "find similar" group: after each relabel
    the page offers the item's similar items (:func:`similar_items`) side by side, and the
    person confirms the ones that are wrong in one go, as a person at a grid of pictures
    does. The oracle sees the true class of every item it looks at, and of no other.

    Args:
        truth: (N,) the true class of each row; read only for rows the oracle looks at.
    """
    state = snapshot_state(snapshot)
    labels = state["current_label"].to_numpy(np.int64).copy()
    done = state["excluded"].to_numpy() | (labels != snapshot["label"].to_numpy())
    looks: list[list[int]] = [[int(r)] for r in order if not done[r]]
    while looks and budget > 0:
        rows = [r for r in looks.pop(0) if not done[r]]
        if not rows:
            continue
        budget -= 1
        offered = []
        for row in rows:
            done[row] = True
            if truth[row] != labels[row]:
                old, labels[row] = labels[row], truth[row]
                view = snapshot.assign(current_label=labels)
                group = [r for r in similar_items(view, row, old, int(truth[row])) if not done[r]]
                offered += [group] if group else []
        looks[:0] = offered
    return labels


def _oracle_edit(snapshot, rng, truth, budget, order: str, channel: str) -> UserEdit:
    state = snapshot_state(snapshot)
    n, xy = len(snapshot), _xy(snapshot)
    rows = rng.permutation(n) if order == "random" else rank(state["suspect_score"].to_numpy())
    labels = inspect_with_oracle(snapshot, truth, rows, budget)
    current = state["current_label"].to_numpy(np.int64)
    excluded = state["excluded"].to_numpy(bool)
    if channel == "labels":
        return UserEdit(xy[:, 0].copy(), xy[:, 1].copy(), _unmoved(xy), labels, excluded)
    # oracle-drag: each item found wrong is dragged onto its true class centre, label kept
    centres = _class_centres(xy, current)
    moved = (labels != current) & np.isin(labels, list(centres))
    out = xy.copy()
    for r in np.flatnonzero(moved):
        out[r] = centres[int(labels[r])]
    return UserEdit(out[:, 0], out[:, 1], moved, current.copy(), excluded)


def auto_relabel(snapshot, rng, budget) -> UserEdit:
    """No person: relabel the top ``budget`` suspects to the probe's prediction."""
    state = snapshot_state(snapshot)
    xy = _xy(snapshot)
    labels = state["current_label"].to_numpy(np.int64).copy()
    pred = state["suspect_pred"].to_numpy(np.int64)
    open_ = ~state["excluded"].to_numpy() & (labels == snapshot["label"].to_numpy())
    ranked = [r for r in rank(state["suspect_score"].to_numpy()) if open_[r] and pred[r] >= 0]
    for r in ranked[:budget]:
        labels[r] = pred[r]
    return UserEdit(xy[:, 0].copy(), xy[:, 1].copy(), _unmoved(xy), labels,
                    state["excluded"].to_numpy(bool))  # fmt: skip


LABEL_STRATEGIES = {  # name -> (inspection order, channel); auto-relabel has no oracle
    "oracle": ("suspects", "labels"),
    "oracle-random": ("random", "labels"),
    "oracle-drag": ("suspects", "drag"),
    "auto-relabel": None,
}
ALL_STRATEGIES = (*STRATEGIES, *LABEL_STRATEGIES)  # as hill_core.strategy_names lists them


def simulated_edits(
    strategy: str,
    snapshot: pd.DataFrame,
    confusion: np.ndarray,
    seed: int,
    run_id: str,
    gate_epoch: int,
    truth=None,
    budget: int = BUDGET,
) -> pd.DataFrame:
    """The edits table a simulated user with ``strategy`` makes at a gate.

    Args:
        strategy: one of :data:`ALL_STRATEGIES`.
        snapshot: the gate's snapshot table.
        confusion: (C, C) validation counts, rows = true class.
        seed: the run's seed; with ``gate_epoch`` it seeds the strategy's Generator.
        run_id: the run the edits belong to.
        gate_epoch: the gate's epoch.
        truth: the data's :class:`~hill_core.data.noise.LabelTruth` (None: the given labels
            are true); only the oracles read it, for the items they inspect.
        budget: items a label-correcting user inspects at this gate.

    Raises:
        ValueError: for an unknown strategy.
    """
    if strategy not in ALL_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(ALL_STRATEGIES)})")
    rng = np.random.default_rng([seed, gate_epoch])
    if strategy in STRATEGIES:
        x_after, y_after, moved = STRATEGIES[strategy](snapshot, confusion, rng)
        return make_edits(snapshot, x_after, y_after, moved, run_id, gate_epoch)
    if strategy == "auto-relabel":
        edit = auto_relabel(snapshot, rng, budget)
    else:
        ids, given = snapshot["sample_id"].to_numpy(), snapshot["label"].to_numpy()
        true = given.copy() if truth is None else truth.of(ids, given)
        order, channel = LABEL_STRATEGIES[strategy]
        edit = _oracle_edit(snapshot, rng, true, budget, order, channel)
    return make_edits(snapshot, edit.x_after, edit.y_after, edit.moved, run_id, gate_epoch,
                      edit.label_after, edit.excluded)  # fmt: skip

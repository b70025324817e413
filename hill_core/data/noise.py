"""Label noise: flip training labels deterministically, to set up a study where a person
(simulated by an oracle) knows more than the labels do.

The flipped labels are what training, the snapshot and the gate page see. The true labels stay
beside the bundle (:class:`LabelTruth`) for simulated users only: nothing that trains or draws
reads them. A user's own noisy data needs none of this: its files simply carry wrong labels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from hill_core.data.base import DataBundle, DataError, labels_by_id


@dataclass(frozen=True)
class LabelTruth:
    """The true labels of the items whose labels were flipped (simulated users only).

    Attributes:
        ids: (K,) int64 sorted sample ids of flipped items.
        labels: (K,) int64 their true labels.
    """

    ids: np.ndarray
    labels: np.ndarray

    def of(self, ids: np.ndarray, given: np.ndarray) -> np.ndarray:
        """True labels of items ``ids`` (N,) whose given labels are ``given`` (N,)."""
        return labels_by_id(ids, given, self.ids, self.labels)


def flip_labels(
    labels: np.ndarray,
    num_classes: int,
    fraction: float,
    kind: str,
    pairs: list[list[int]],
    rng: np.random.Generator,
) -> np.ndarray:
    """A copy of ``labels`` (N,) with ``round(fraction N)`` of them flipped to another class.

    ``symmetric``: to a uniformly drawn other class. ``pairs``: to the item's partner in
    ``pairs`` (each ``[a, b]`` swaps both ways); only items of a paired class can flip, so
    fewer may flip when those classes are rarer than ``fraction`` asks.
    """
    labels = np.asarray(labels, np.int64)
    out = labels.copy()
    if kind == "pairs":
        partner = np.full(num_classes, -1, np.int64)
        for a, b in pairs:
            partner[a], partner[b] = b, a
        eligible = np.flatnonzero(partner[labels] >= 0)
    else:
        eligible = np.arange(len(labels))
    count = min(int(round(fraction * len(labels))), len(eligible))
    chosen = np.sort(rng.choice(eligible, size=count, replace=False))
    if kind == "pairs":
        out[chosen] = partner[labels[chosen]]
    else:  # one of the C - 1 other classes, uniformly
        shift = rng.integers(1, num_classes, size=count)
        out[chosen] = (labels[chosen] + shift) % num_classes
    return out


def parse_pairs(text: str, num_classes: int) -> list[list[int]]:
    """``"1-7,3-8"`` -> ``[[1, 7], [3, 8]]``, checked: two different classes of the data set
    each, each class in one pair at most.

    Raises:
        DataError: one line naming the pair that is wrong.
    """
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        a, sep, b = part.partition("-")
        if not (sep and a.strip().isdigit() and b.strip().isdigit()):
            raise DataError(f"data.label_noise_pairs: {part!r} is not a pair like 1-7")
        pairs.append([int(a), int(b)])
    if not pairs:
        raise DataError("data.label_noise_pairs: no pair given (e.g. 1-7,3-8)")
    check_pairs(pairs, num_classes)
    return pairs


def check_pairs(pairs: list[list[int]], num_classes: int) -> None:
    """Each pair names two different classes of the data set, each class in one pair at most."""
    seen: set[int] = set()
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise DataError(f"data.label_noise_pairs: {pair} is not a pair of two classes")
        for c in pair:
            if not 0 <= c < num_classes:
                raise DataError(f"data.label_noise_pairs: class {c} is not in [0, {num_classes})")
            if c in seen:
                raise DataError(f"data.label_noise_pairs: class {c} is in more than one pair")
            seen.add(c)


def with_label_noise(bundle: DataBundle, cfg, seed: int) -> DataBundle:
    """``bundle`` with flipped training (and, with ``label_noise_splits: train+val``,
    validation) labels; the test split always keeps its true labels.

    The flips depend only on (``data.label_noise_seed``, ``seed``): the same run flips the
    same items every time it loads.
    """
    if cfg.label_noise <= 0:
        return bundle
    pairs = []
    if cfg.label_noise_kind == "pairs":
        pairs = parse_pairs(cfg.label_noise_pairs, bundle.num_classes)
    rng = np.random.default_rng([cfg.label_noise_seed, seed])
    flip = lambda ds: flip_labels(  # noqa: E731
        ds.labels, bundle.num_classes, cfg.label_noise, cfg.label_noise_kind, pairs, rng
    )
    noisy = flip(bundle.train)
    changes = {
        "train": bundle.train.relabelled(noisy),
        "train_eval": bundle.train_eval.relabelled(noisy),
    }
    flipped = noisy != bundle.train.labels
    ids, truth = bundle.train.ids[flipped], bundle.train.labels[flipped]
    if cfg.label_noise_splits == "train+val":
        noisy_val = flip(bundle.val)
        changes["val"] = bundle.val.relabelled(noisy_val)
    order = np.argsort(ids)
    return dataclasses.replace(bundle, **changes, truth=LabelTruth(ids[order], truth[order]))

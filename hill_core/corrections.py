"""Label corrections: what a person says items *are*, applied to the training set.

At a gate a person can relabel an item ("this is a 3") or exclude it ("not a valid item").
The edits file of a gate records, for every item of its snapshot, the label after the gate
(``label_after``) and whether it is ``excluded``. A gate's snapshot always holds the items
corrected before it, so the file of the latest approved gate states *every* correction in
force: corrections accumulate across gates, and a later gate can undo one by setting the label
back. From that gate on, cross-entropy uses the corrected labels and excluded items leave the
training set; the lockstep baseline keeps the original labels (the no-person counterfactual).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hill_core.data.base import IndexedDataset, labels_by_id
from hill_core.edits import check_classes


@dataclass(frozen=True)
class Corrections:
    """The corrections in force after a gate.

    Attributes:
        ids: (K,) int64 sorted sample ids of relabelled items (not excluded).
        labels: (K,) int64 their corrected labels.
        excluded: (E,) int64 sorted sample ids of items out of training.
    """

    ids: np.ndarray
    labels: np.ndarray
    excluded: np.ndarray

    @classmethod
    def none(cls) -> Corrections:
        empty = np.zeros(0, np.int64)
        return cls(empty, empty, empty)

    @property
    def empty(self) -> bool:
        return not (len(self.ids) or len(self.excluded))

    def counts(self) -> dict[str, float]:
        """For the epoch's metrics (MLflow): how many items are relabelled and excluded."""
        return {
            "items_relabelled": float(len(self.ids)),
            "items_excluded": float(len(self.excluded)),
        }

    def label_of(self, ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The labels training uses for items ``ids`` (N,) whose given labels are ``labels``."""
        return labels_by_id(ids, labels, self.ids, self.labels)

    def is_excluded(self, ids: np.ndarray) -> np.ndarray:
        """(N,) bool: which of ``ids`` are out of training."""
        return np.isin(ids, self.excluded)

    def apply(self, train: IndexedDataset) -> IndexedDataset:
        """``train`` as training sees it: excluded items dropped, relabelled items relabelled.

        With no corrections it is ``train`` itself, so an approval without corrections trains
        exactly like the baseline. Relabelling alone keeps the item order (and so every
        epoch's batches but for their labels); an exclusion shortens the epoch.
        """
        if self.empty:
            return train
        keep = np.flatnonzero(~self.is_excluded(train.ids))
        return train.subset(keep, train.transform, train.augment).relabelled(
            self.label_of(train.ids[keep], train.labels[keep])
        )


def corrections_from_edits(edits: pd.DataFrame, num_classes: int) -> Corrections:
    """The corrections an approved gate's validated edits table puts in force.

    Raises:
        EditsError: a ``label_after`` outside [0, ``num_classes``).
    """
    check_classes(edits, "label_after", num_classes, "edits")
    after = edits["label_after"].to_numpy(np.int64)
    excluded = edits["excluded"].to_numpy(bool)
    relabelled = (after != edits["label"].to_numpy(np.int64)) & ~excluded
    ids = edits["sample_id"].to_numpy(np.int64)
    order = np.argsort(ids[relabelled], kind="stable")
    return Corrections(
        ids=ids[relabelled][order],
        labels=after[relabelled][order],
        excluded=np.sort(ids[excluded]),
    )

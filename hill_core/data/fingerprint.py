"""Fingerprints of a data set's splits, so a replay or resume on changed data is refused.

A run records, per split, its length, a hash of its ids and labels and a hash of a fixed sample
of its raw items (:data:`SAMPLED_ITEMS`, spread evenly: hashing every image of a large set would
cost a pass over it each time a run starts), and the class names. Comparing two says, in one
line, what changed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from hill_core.data.base import DataBundle, IndexedDataset

SAMPLED_ITEMS = 64  # raw items hashed per split (evenly spaced rows: the same ones every time)
SPLITS = {"train": "train_eval", "val": "val", "test": "test"}  # name -> DataBundle attribute


def fingerprint(data: DataBundle) -> dict[str, Any]:
    """``{"classes": sha, "train": {"items": N, "labels": sha, "sample": sha}, "val": ...}``."""
    out: dict[str, Any] = {"classes": _sha("\n".join(data.class_names).encode())}
    for name, attribute in SPLITS.items():
        out[name] = split_fingerprint(getattr(data, attribute))
    return out


def split_fingerprint(split: IndexedDataset) -> dict[str, Any]:
    """Length, ids-and-labels hash and sampled-items hash of one split."""
    labels = np.ascontiguousarray(split.ids, np.int64).tobytes()
    labels += np.ascontiguousarray(split.labels, np.int64).tobytes()
    rows = np.unique(np.linspace(0, len(split) - 1, SAMPLED_ITEMS).astype(np.int64))
    sample = hashlib.sha256()
    if len(split):
        raw = split.raw_batch(torch.from_numpy(rows))  # (S, ...) before any transform
        sample.update(str(tuple(raw.shape)).encode() + str(raw.dtype).encode())
        sample.update(raw.detach().cpu().contiguous().numpy().tobytes())
    return {"items": len(split), "labels": _sha(labels), "sample": sample.hexdigest()[:16]}


def what_changed(recorded: dict[str, Any], now: dict[str, Any]) -> str | None:
    """One phrase naming the first difference, or None when the fingerprints agree."""
    if recorded.get("classes") != now.get("classes"):
        return "the class names differ"
    for name in SPLITS:
        old, new = recorded.get(name, {}), now[name]
        if old.get("items") != new["items"]:
            return f"the {name} split has {new['items']} items, the run had {old.get('items')}"
        if old.get("labels") != new["labels"]:
            return f"the {name} split's labels (or ids) differ"
        if old.get("sample") != new["sample"]:
            return f"the {name} split's items differ (in a sample of {SAMPLED_ITEMS})"
    return None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]

"""A gate's snapshot: a stratified sample of training items with their view positions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from hill_core.evaluate import latents_of
from hill_core.sampling import stratified_sample


def take_snapshot(state, size: int | None = None) -> pd.DataFrame:
    """Snapshot table (sample_id, label, class_name, pred, x, y) of ``size`` training items.

    The same items are drawn at every gate of a run (seeded by base.seed), so gates compare.
    Positions are ``P(z)`` in view units; the model is left in eval mode.
    """
    if state.projection is None:
        raise ValueError("no frozen projection yet: a snapshot needs hill.freeze_epoch passed")
    size = state.config.hill.snapshot_size if size is None else size
    data = state.data.train_eval
    rows = stratified_sample(data.labels, size, state.config.base.seed)
    sample = data.subset(rows)
    z, logits = latents_of(state.model, sample, state.device)
    with torch.no_grad():
        p = state.projection(z.to(state.device)).cpu().numpy().astype(np.float64)  # (N, 2)
    names = np.asarray(state.data.class_names, dtype=object)
    return pd.DataFrame(
        {
            "sample_id": sample.ids,
            "label": sample.labels,
            "class_name": names[sample.labels],
            "pred": logits.argmax(1).numpy().astype(np.int64),
            "x": p[:, 0],
            "y": p[:, 1],
        }
    )

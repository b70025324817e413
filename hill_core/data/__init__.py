"""Data sets: each returns a :class:`DataBundle` of items ``(x, y, sample_id)``."""

from __future__ import annotations

from hill_core.config import DataConfig
from hill_core.data.base import DataBundle, DataError, IndexedDataset, stratified_split

__all__ = ["DataBundle", "DataError", "IndexedDataset", "load_data", "stratified_split"]


def load_data(cfg: DataConfig, seed: int) -> DataBundle:
    """Load the data set ``cfg.name`` with a split that depends only on ``seed``."""
    # Loaders are imported here so that importing hill_core touches no data set.
    if cfg.name == "digits":
        from hill_core.data.digits import load_digits_bundle

        return load_digits_bundle(seed, cfg.val_fraction, cfg.test_fraction)
    if cfg.name == "cifar10":
        from hill_core.data.cifar10 import load_cifar10

        return load_cifar10(cfg, seed)
    if cfg.name == "pamap2":
        from hill_core.data.pamap2 import load_pamap2

        return load_pamap2(cfg, seed)
    if cfg.name == "imagefolder":
        from hill_core.data.imagefolder import load_imagefolder

        return load_imagefolder(cfg, seed)
    from hill_core.data.table import load_table

    return load_table(cfg, seed)

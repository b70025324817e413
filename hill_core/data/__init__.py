"""Data sets: each returns a :class:`DataBundle` of items ``(x, y, sample_id)``.

A process loads a data set once: :func:`load_data` keeps the last few bundles, keyed by the
config, the seed and the source's size and modification time (so a file rewritten on disk is
read again). The flow's tasks, the baseline and a preflight check all share one load. Bundles
are read-only by contract: nothing in hill writes to a loaded data set.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from hill_core.config import DataConfig
from hill_core.data.base import DataBundle, DataError, IndexedDataset, stratified_split

__all__ = ["DataBundle", "DataError", "IndexedDataset", "load_data", "stratified_split"]


CACHED_BUNDLES = 4  # a study's process may hold a few seeds at once
_loaded: OrderedDict[tuple, DataBundle] = OrderedDict()


def load_data(cfg: DataConfig, seed: int) -> DataBundle:
    """The data set ``cfg.name`` with a split that depends only on ``seed``, loaded once."""
    key = (cfg, seed, _source_stamp(cfg))
    if key in _loaded:
        _loaded.move_to_end(key)
        return _loaded[key]
    bundle = _load(cfg, seed)
    _loaded[key] = bundle
    while len(_loaded) > CACHED_BUNDLES:
        _loaded.popitem(last=False)
    return bundle


def _source_stamp(cfg: DataConfig) -> tuple[int, int] | None:
    """Size and mtime (ns) of the data's file or folder; None for bundled data (digits)."""
    if cfg.name == "digits":
        return None
    try:
        stat = Path(cfg.root).stat()
    except OSError:
        return None  # the loader says what is missing
    return stat.st_size, stat.st_mtime_ns


def _load(cfg: DataConfig, seed: int) -> DataBundle:
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

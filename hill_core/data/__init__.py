"""Data sets: each returns a :class:`DataBundle` of items ``(x, y, sample_id)``.

A process loads a data set once: :func:`load_data` keeps the last few bundles, keyed by the
config, the seed and the size and modification time of each file the loader reads (so a file
rewritten on disk is read again). The flow's tasks, the baseline and a preflight check all
share one load. Bundles are read-only by contract: nothing in hill writes to a loaded data set.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from pathlib import Path

from hill_core.config import DataConfig
from hill_core.data.base import DataBundle, DataError, IndexedDataset, stratified_split
from hill_core.data.noise import with_label_noise

__all__ = ["DataBundle", "DataError", "IndexedDataset", "load_data", "stratified_split"]


CACHED_BUNDLES = 4  # a study's process may hold a few seeds at once
_loaded: OrderedDict[tuple, DataBundle] = OrderedDict()


def load_data(cfg: DataConfig, seed: int) -> DataBundle:
    """The data set ``cfg.name`` with a split that depends only on ``seed``, loaded once."""
    # The config as text: its kwargs mapping cannot be a dict key itself.
    key = (json.dumps(dataclasses.asdict(cfg), sort_keys=True), seed, _source_stamp(cfg))
    if key in _loaded:
        _loaded.move_to_end(key)
        return _loaded[key]
    bundle = with_label_noise(_load(cfg, seed), cfg, seed)
    for old in [k for k in _loaded if k[:2] == key[:2]]:
        del _loaded[old]  # the same data before its files changed: never asked for again
    _loaded[key] = bundle
    while len(_loaded) > CACHED_BUNDLES:
        _loaded.popitem(last=False)
    return bundle


def _source_stamp(cfg: DataConfig) -> tuple | None:
    """(path, size, mtime ns) of each file or folder the loader reads; None for bundled data.

    Stat only (no reading), since this runs on every call: a file rewritten inside an unchanged
    folder changes the stamp, and a missing one stamps as (path, None, None).
    """
    if cfg.name == "digits":
        return None
    stamp = []
    for path in _source_paths(cfg):
        try:
            stat = path.stat()
        except OSError:
            stamp.append((str(path), None, None))  # the loader says what is missing
            continue
        stamp.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(stamp)


def _source_paths(cfg: DataConfig) -> list[Path]:
    """What the loader of ``cfg.name`` reads: CIFAR-10's batch files, PAMAP2's subject files,
    the table file, or an image folder and its class folders (whose mtime moves when an image
    is added or removed; an image rewritten in place is not seen)."""
    root = Path(cfg.root)
    if cfg.name == "cifar10":
        from hill_core.data.cifar10 import source_files

        return source_files(root) or [root]
    if cfg.name == "pamap2":
        from hill_core.data.pamap2 import source_files

        return source_files(root) or [root]
    if cfg.name.startswith("torchvision:"):
        from hill_core.data.torchvision_sets import source_files

        return source_files(cfg) or [root]
    if cfg.name == "imagefolder" and root.is_dir():
        return [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    return [root]


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
    if cfg.name.startswith("torchvision:"):
        from hill_core.data.torchvision_sets import load_torchvision

        return load_torchvision(cfg, seed)
    if cfg.name != "table":
        from hill_core.data.factory import load_factory

        return load_factory(cfg, seed)
    from hill_core.data.table import load_table

    return load_table(cfg, seed)

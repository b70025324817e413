"""Bring-your-own table: a CSV or Parquet file with one row per sample and a label column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hill_core.config import DataConfig
from hill_core.data.base import (
    DataBundle,
    DataError,
    check_class_sizes,
    in_memory_bundle,
    stratified_split,
    tensor_dataset,
)

ID_COLUMNS = ("sample_id", "id")  # the first one present gives the sample ids


def load_table(cfg: DataConfig, seed: int) -> DataBundle:
    """Rows as standardised feature vectors (F,), float32.

    Every column other than the label and id columns is a feature and must be numeric without
    NaN or inf: a bad column is an error naming it rather than silently imputed, because a
    guessed value would shape the latent space the person edits. Labels may be strings or
    integers; class names are the sorted distinct labels, as strings. Sample ids come from a
    ``sample_id`` or ``id`` column (unique integers) when present, else the row number.
    Features are standardised with the mean and std of the training rows.

    Args:
        cfg: ``root`` is the ``.csv`` or ``.parquet`` file; ``label_column`` names the labels.
        seed: draws the stratified split.
    """
    path = Path(cfg.root)
    frame = _read(path)
    if cfg.label_column not in frame.columns:
        raise DataError(
            f"table: {path} has no label column {cfg.label_column!r} "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    labels, class_names = _labels(frame[cfg.label_column], path)
    ids = _ids(frame, path)
    feature_columns = [c for c in frame.columns if c != cfg.label_column and c not in ID_COLUMNS]
    features = _features(frame, feature_columns, path)  # (N, F) float64
    check_class_sizes(labels, class_names, f"table {path}", "rows")
    splits = stratified_split(labels, cfg.val_fraction, cfg.test_fraction, seed, f"table {path}")
    x = torch.from_numpy(_standardise(features, splits[0]))
    full = tensor_dataset(x, labels, ids)
    return in_memory_bundle("table", full, splits, class_names, (x.shape[1],))


def _read(path: Path) -> pd.DataFrame:
    """The file as a frame, by suffix: .csv, or .parquet / .pq."""
    if not path.is_file():
        raise DataError(f"table: no file {path} (data.root names a .csv or .parquet file)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as e:  # pandas and pyarrow raise many types for one thing: unreadable
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"table: cannot read {path}: {msg}") from e
    raise DataError(f"table: {path} must end in .csv, .parquet or .pq")


def _labels(column: pd.Series, path: Path) -> tuple[np.ndarray, list[str]]:
    """Labels (N,) int64 = rank of each value among the sorted distinct values, and the names."""
    if column.isna().any():
        raise DataError(f"table: label column {column.name!r} of {path} has empty values")
    try:
        codes, uniques = pd.factorize(column, sort=True)
    except TypeError:  # mixed types that do not sort, e.g. 1 and "a": sort them as strings
        codes, uniques = pd.factorize(column.astype(str), sort=True)
    return codes.astype(np.int64), [str(u) for u in uniques]


def _ids(frame: pd.DataFrame, path: Path) -> np.ndarray:
    """Sample ids (N,) int64 from the first id column present, else the row number."""
    name = next((c for c in ID_COLUMNS if c in frame.columns), None)
    if name is None:
        return np.arange(len(frame), dtype=np.int64)
    column = frame[name]
    if not pd.api.types.is_integer_dtype(column) or column.hasnans:
        raise DataError(f"table: id column {name!r} of {path} must hold integers only")
    if not column.is_unique:
        dup = column[column.duplicated()].iloc[0]
        raise DataError(f"table: id column {name!r} of {path} repeats id {dup}")
    return column.to_numpy(np.int64)


def _features(frame: pd.DataFrame, columns: list, path: Path) -> np.ndarray:
    """Features (N, F) float64; every column numeric and finite."""
    if not columns:
        raise DataError(f"table: {path} has no feature column besides the label and ids")
    for c in columns:
        if not pd.api.types.is_numeric_dtype(frame[c]):
            raise DataError(f"table: feature column {c!r} of {path} is not numeric")
    values = frame[columns].to_numpy(np.float64)
    bad = ~np.isfinite(values).all(axis=0)
    if bad.any():
        c = columns[int(np.flatnonzero(bad)[0])]
        raise DataError(f"table: feature column {c!r} of {path} has NaN or infinite values")
    return values


def _standardise(features: np.ndarray, train: np.ndarray) -> np.ndarray:
    """(N, F) float32 with zero mean and unit std over the ``train`` rows."""
    mean = features[train].mean(axis=0)
    std = features[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant feature stays 0 instead of dividing by 0
    return ((features - mean) / std).astype(np.float32)

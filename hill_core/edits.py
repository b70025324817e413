"""The file contract between a gate and training: snapshot and edits tables in Parquet.

A *snapshot* is what a gate shows: one row per sampled training item with its stable
``sample_id``, ``label``, ``class_name``, the model's prediction ``pred`` and its view position
``x, y`` (2-D, in the frozen projection's units).

An *edits* table is what a gate decides: one row per snapshot item with the position before
and after the edit, whether the person moved that single point (a latent request), and the
item's label after the gate (``label_after``: the class the person says it is) and whether it
is ``excluded`` from training ("not a valid item"). File-level metadata holds the schema
version, the config hash, the number of classes and the decision (approve, skip or stop), so
that a replay needs nothing but these files.

Label corrections are *cumulative*: a gate's snapshot holds every item corrected before it
(``current_label``, ``excluded``), so the edits file of the latest approved gate states every
correction in force (see :mod:`hill_core.corrections`). Files of schema version 1 (before label
corrections) still read: their items keep their labels and none is excluded.

Every read and write validates; a bad table raises :class:`EditsError` with one line and
writes nothing. Writes are atomic: temp file, fsync, rename.

Finite is not enough: every position must also lie in the *edit box* (:func:`edit_box`), a
square around the gate's own layout far larger than anything a person drags to, so that no
accepted file can overflow the float32 teacher and loss (docs/method.md, "Gate, snapshot and
edits").
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hill_core.errors import HillError

SCHEMA_VERSION = 2
READABLE_VERSIONS = ("1", "2")  # 1: before label corrections (no label_after, excluded)
DECISIONS = ("approve", "skip", "stop")

SNAPSHOT_COLUMNS = {
    "sample_id": "int64",
    "label": "int64",
    "class_name": "str",
    "pred": "int64",
    "x": "float64",
    "y": "float64",
}
# Optional snapshot columns, kept when present: ``item`` is a small preview of each item for the
# gate page (a data: URL of a PNG or WebP image, or a line of text; hill_core/snapshot.py).
SNAPSHOT_OPTIONAL_COLUMNS = ("item",)
# Optional snapshot columns with a default where absent (older files): the label training uses
# now (earlier gates' corrections; ``label`` where none), whether the item is excluded, and the
# suspects ranking (hill_core/suspects.py): how likely the given label is wrong, in [0, 1] (NaN:
# not scored), and the class a model that did not fit the item predicts (-1: not scored).
SNAPSHOT_STATE_COLUMNS = {
    "current_label": "int64",
    "excluded": "bool",
    "suspect_score": "float64",
    "suspect_pred": "int64",
}
EDITS_COLUMNS = {
    "run_id": "str",
    "gate_epoch": "int64",
    "sample_id": "int64",
    "label": "int64",
    "x_before": "float64",
    "y_before": "float64",
    "x_after": "float64",
    "y_after": "float64",
    "moved": "bool",
    "label_after": "int64",  # the label training uses from this gate on (= label: unchanged)
    "excluded": "bool",  # the item leaves the training set from this gate on
}


# The edit box (view units: the view's RMS radius is 1 at the freeze). Every edited position
# must lie within EDIT_BOX_FACTOR x the layout's extent (the larger side of the before-layout's
# bounding box, at least EDIT_BOX_MIN_EXTENT) of the bounding box's centre, per coordinate. At
# the page's "fit" zoom the canvas shows about 1.1 extents, so a point 10 extents out needs the
# view zoomed out about 9x first; the scale slider (at most 3x a class's spread) stays far inside.
EDIT_BOX_FACTOR = 10.0
EDIT_BOX_MIN_EXTENT = 1.0  # a collapsed layout (all points at one spot) still gets a box
# Snapshot positions beyond this are a diverged model, not a layout: refused before anything
# squares them in float32 (which overflows at about 1.8e19).
VIEW_LIMIT = 1e6


class EditsError(HillError):
    """A snapshot or edits table that breaks the contract; the message says what, in one line."""


@dataclass(frozen=True)
class EditsMeta:
    """File-level metadata of an edits file."""

    config_hash: str
    decision: str = "approve"
    schema_version: int = SCHEMA_VERSION
    source: str = ""  # who decided: page | prefect | timeout | autopilot:<strategy>
    num_classes: int = 0  # C of the data set; label_after must lie in [0, C) (0: not known)

    def to_bytes(self) -> dict[bytes, bytes]:
        return {
            b"hill.schema_version": str(self.schema_version).encode(),
            b"hill.config_hash": self.config_hash.encode(),
            b"hill.decision": self.decision.encode(),
            b"hill.source": self.source.encode(),
            b"hill.num_classes": str(self.num_classes).encode(),
        }


def make_edits(
    snapshot: pd.DataFrame,
    x_after: np.ndarray,
    y_after: np.ndarray,
    moved: np.ndarray,
    run_id: str,
    gate_epoch: int,
    label_after: np.ndarray | None = None,
    excluded: np.ndarray | None = None,
) -> pd.DataFrame:
    """Build an edits table from a snapshot and target positions.

    Args:
        snapshot: the gate's snapshot table, N rows.
        x_after, y_after: (N,) target view positions q_i, aligned with the snapshot rows.
        moved: (N,) bool, True where the person moved that single point.
        label_after: (N,) int64 class of each item after the gate; None keeps the snapshot's
            ``current_label`` (the corrections in force).
        excluded: (N,) bool, items out of training after the gate; None keeps the snapshot's.
    """
    state = snapshot_state(snapshot)
    label_after = state["current_label"] if label_after is None else label_after
    excluded = state["excluded"] if excluded is None else excluded
    return pd.DataFrame(
        {
            "run_id": run_id,
            "gate_epoch": int(gate_epoch),
            "sample_id": snapshot["sample_id"].to_numpy(np.int64),
            "label": snapshot["label"].to_numpy(np.int64),
            "x_before": snapshot["x"].to_numpy(np.float64),
            "y_before": snapshot["y"].to_numpy(np.float64),
            "x_after": np.asarray(x_after, np.float64),
            "y_after": np.asarray(y_after, np.float64),
            "moved": np.asarray(moved, bool),
            "label_after": np.asarray(label_after, np.int64),
            "excluded": np.asarray(excluded, bool),
        }
    )


def snapshot_state(snapshot: pd.DataFrame) -> pd.DataFrame:
    """The snapshot's :data:`SNAPSHOT_STATE_COLUMNS`, with their defaults where absent."""
    n = len(snapshot)
    defaults = {
        "current_label": snapshot["label"].to_numpy(np.int64),
        "excluded": np.zeros(n, bool),
        "suspect_score": np.full(n, np.nan),
        "suspect_pred": np.full(n, -1, np.int64),
    }
    return pd.DataFrame(
        {
            c: snapshot[c].to_numpy(dtype) if c in snapshot.columns else defaults[c]
            for c, dtype in SNAPSHOT_STATE_COLUMNS.items()
        }
    )


def unedited(snapshot: pd.DataFrame, run_id: str, gate_epoch: int) -> pd.DataFrame:
    """The edits table of a gate where nothing moved (a skip, or approve without edits)."""
    n = len(snapshot)
    return make_edits(snapshot, snapshot["x"], snapshot["y"], np.zeros(n, bool), run_id, gate_epoch)


def edit_box(before_xy: np.ndarray) -> tuple[np.ndarray, float]:
    """The square every position of a gate must lie in: its centre (2,) and half-width.

    Args:
        before_xy: (N, 2) the gate's own layout (the snapshot's x, y; an edits file's
            x_before, y_before, which are the same numbers), finite, N >= 1.
    Returns:
        the centre of the layout's bounding box and ``EDIT_BOX_FACTOR`` x its extent (view units).
    """
    xy = np.asarray(before_xy, np.float64).reshape(-1, 2)
    low, high = xy.min(axis=0), xy.max(axis=0)
    extent = max(float((high - low).max()), EDIT_BOX_MIN_EXTENT)
    return (low + high) / 2.0, EDIT_BOX_FACTOR * extent


def check_in_box(df: pd.DataFrame, columns: list[str], before: list[str], what: str) -> None:
    """Raise :class:`EditsError` (one line) for the first position in ``columns`` off the box.

    ``columns`` and ``before`` are [x, y] column pairs; the box comes from ``before``.
    """
    centre, half = edit_box(df[before].to_numpy(np.float64))
    values = df[columns].to_numpy(np.float64)  # (N, 2)
    outside = np.abs(values - centre) > half
    if outside.any():
        row, col = np.argwhere(outside)[0]
        low, high = centre[col] - half, centre[col] + half
        raise EditsError(
            f"{what}: {columns[col]} of sample {df['sample_id'].iloc[row]} is "
            f"{values[row, col]:.6g}, outside the edit box [{low:.6g}, {high:.6g}] "
            f"({EDIT_BOX_FACTOR:g} x the layout's extent around its centre)"
        )


def validate_snapshot(snapshot: pd.DataFrame) -> pd.DataFrame:
    """Check a snapshot table and return it with canonical dtypes.

    Raises:
        EditsError: no rows (a gate with nothing to show), NaN/inf or positions beyond
            ``VIEW_LIMIT``, or duplicate sample ids.
    """
    columns = getattr(snapshot, "columns", ())
    optional = [c for c in SNAPSHOT_OPTIONAL_COLUMNS if c in columns]
    extra = {c: _text_column(snapshot[c], c) for c in optional}
    state = {c: t for c, t in SNAPSHOT_STATE_COLUMNS.items() if c in columns}
    snapshot = _with_columns(snapshot, {**SNAPSHOT_COLUMNS, **state}, "snapshot")
    for column, values in extra.items():
        snapshot[column] = values
    if snapshot.empty:
        raise EditsError("snapshot: table is empty (a gate needs at least one item to show)")
    _check_finite(snapshot, ["x", "y"], "snapshot")
    _check_view_limit(snapshot, ["x", "y"], "snapshot")
    _check_unique_ids(snapshot, "snapshot")
    if "current_label" in snapshot:
        check_classes(snapshot, "current_label", 0, "snapshot")
    return snapshot


def validate_edits(
    edits: pd.DataFrame, snapshot: pd.DataFrame | None = None, num_classes: int = 0
) -> pd.DataFrame:
    """Check an edits table (against its snapshot when given) and return it with canonical dtypes.

    Args:
        num_classes: C of the data set: every ``label_after`` must be a class id in [0, C)
            (0: C not known, ids must still be non-negative).
    Raises:
        EditsError: NaN/inf positions, positions outside the edit box (:func:`edit_box`),
            duplicate or unknown sample ids, labels that differ from the snapshot,
            before-positions that differ from the snapshot, a ``label_after`` that names no
            class, or several gates in one table.
    """
    edits = _with_columns(edits, EDITS_COLUMNS, "edits")
    if edits.empty:
        raise EditsError("edits: table is empty")
    _check_finite(edits, ["x_before", "y_before", "x_after", "y_after"], "edits")
    _check_view_limit(edits, ["x_before", "y_before"], "edits")
    check_in_box(edits, ["x_after", "y_after"], ["x_before", "y_before"], "edits")
    _check_unique_ids(edits, "edits")
    check_classes(edits, "label_after", num_classes, "edits")
    if edits["gate_epoch"].nunique() != 1 or edits["run_id"].nunique() != 1:
        raise EditsError("edits: one file must hold one gate of one run")
    if snapshot is not None:
        _check_against_snapshot(edits, snapshot)
    return edits


def write_edits(
    path: str | Path, edits: pd.DataFrame, meta: EditsMeta, snapshot=None, exclusive=False
) -> Path:
    """Validate and write an edits table atomically. Nothing is written when it is invalid.

    ``exclusive``: never replace an existing file (a gate's decision is recorded once, even by
    two processes at the same moment); raises :class:`EditsExistError` instead.
    """
    if meta.decision not in DECISIONS:
        raise EditsError(f"edits: decision {meta.decision!r} is not one of {', '.join(DECISIONS)}")
    edits = validate_edits(edits, snapshot, meta.num_classes)
    return _write_parquet(Path(path), edits, meta.to_bytes(), exclusive)


class EditsExistError(EditsError):
    """An exclusive write found the gate's edits file already recorded."""


def read_edits(
    path: str | Path, snapshot: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, EditsMeta]:
    """Read and validate an edits file; returns the table and its metadata."""
    path = Path(path)
    table = _read_parquet(path)
    raw = table.schema.metadata or {}
    version = raw.get(b"hill.schema_version", b"?").decode()
    if version not in READABLE_VERSIONS:
        readable = " or ".join(READABLE_VERSIONS)
        raise EditsError(f"{path}: schema version {version}, expected {readable}")
    meta = EditsMeta(
        config_hash=raw.get(b"hill.config_hash", b"").decode(),
        decision=raw.get(b"hill.decision", b"approve").decode(),
        schema_version=int(version),
        source=raw.get(b"hill.source", b"").decode(),  # absent in files of earlier versions
        num_classes=_int_meta(raw, b"hill.num_classes", path),
    )
    if meta.decision not in DECISIONS:
        raise EditsError(f"{path}: decision {meta.decision!r} is not one of {', '.join(DECISIONS)}")
    edits = table.to_pandas()
    if version == "1":
        edits = edits.assign(label_after=edits.get("label"), excluded=False)
    try:
        return validate_edits(edits, snapshot, meta.num_classes), meta
    except EditsError as err:
        raise EditsError(f"{path}: {err}") from None


def _int_meta(raw: dict[bytes, bytes], key: bytes, path: Path) -> int:
    """A non-negative whole number of a file's metadata; 0 where absent (older files)."""
    text = raw.get(key, b"0").decode()
    if not text.isdigit():
        raise EditsError(f"{path}: metadata {key.decode()} is {text!r}, not a whole number")
    return int(text)


def write_snapshot(
    path: str | Path, snapshot: pd.DataFrame, gate_epoch: int, run_id: str, num_classes: int = 0
) -> Path:
    """Validate and write a snapshot atomically, with its gate epoch, run id and number of
    classes (0: not known) as metadata."""
    snapshot = validate_snapshot(snapshot)
    meta = {b"hill.gate_epoch": str(gate_epoch).encode(), b"hill.run_id": run_id.encode()}
    meta[b"hill.num_classes"] = str(num_classes).encode()
    meta[b"hill.schema_version"] = str(SCHEMA_VERSION).encode()
    return _write_parquet(Path(path), snapshot, meta)


def read_snapshot(path: str | Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read and validate a snapshot file; returns the table and its metadata
    ``{"gate_epoch", "run_id", "num_classes"}`` (text; num_classes "0" where not known)."""
    path = Path(path)
    table = _read_parquet(path)
    raw = table.schema.metadata or {}
    meta = {
        "gate_epoch": str(_int_meta(raw, b"hill.gate_epoch", path)),
        "run_id": raw.get(b"hill.run_id", b"").decode(),
        "num_classes": str(_int_meta(raw, b"hill.num_classes", path)),
    }
    try:
        return validate_snapshot(table.to_pandas()), meta
    except EditsError as err:
        raise EditsError(f"{path}: {err}") from None


def _with_columns(df: pd.DataFrame, columns: dict[str, str], what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise EditsError(f"{what}: expected a table, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise EditsError(f"{what}: missing column(s) {', '.join(missing)}")
    out = df[list(columns)].copy()
    for column, dtype in columns.items():
        if dtype == "bool" and not pd.api.types.is_bool_dtype(out[column]):
            raise EditsError(f"{what}: column {column} must be bool")
        try:
            out[column] = out[column].astype(dtype)
        except (TypeError, ValueError):
            raise EditsError(f"{what}: column {column} must be {dtype}") from None
    return out.reset_index(drop=True)


def _text_column(column: pd.Series, name: str) -> list[str | None]:
    """An optional text column as a list of str or None (NaN counts as None)."""
    values = [
        None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v for v in column
    ]
    if not all(v is None or isinstance(v, str) for v in values):
        raise EditsError(f"snapshot: column {name} must hold text (or nothing)")
    return values


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _check_finite(df: pd.DataFrame, columns: list[str], what: str) -> None:
    values = df[columns].to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        sample = df["sample_id"].iloc[row]
        raise EditsError(
            f"{what}: {columns[col]} of sample {sample} is {values[row, col]} (must be finite)"
        )


def _check_view_limit(df: pd.DataFrame, columns: list[str], what: str) -> None:
    values = df[columns].to_numpy(np.float64)
    beyond = np.abs(values) > VIEW_LIMIT
    if beyond.any():
        row, col = np.argwhere(beyond)[0]
        raise EditsError(
            f"{what}: {columns[col]} of sample {df['sample_id'].iloc[row]} is "
            f"{values[row, col]:.6g}, beyond the view's limit of +-{VIEW_LIMIT:g} "
            "(a diverged model?)"
        )


def check_classes(df: pd.DataFrame, column: str, num_classes: int, what: str) -> None:
    """Every value of ``column`` is a class id: >= 0, and < ``num_classes`` when known (> 0)."""
    values = df[column].to_numpy(np.int64)
    bad = (values < 0) | ((values >= num_classes) if num_classes > 0 else False)
    if bad.any():
        i = int(np.argmax(bad))
        known = f"[0, {num_classes})" if num_classes > 0 else "non-negative"
        raise EditsError(
            f"{what}: {column} of sample {df['sample_id'].iloc[i]} is {values[i]}, "
            f"not a known class id ({known})"
        )


def _check_unique_ids(df: pd.DataFrame, what: str) -> None:
    duplicated = df["sample_id"][df["sample_id"].duplicated()]
    if len(duplicated):
        raise EditsError(f"{what}: sample id {duplicated.iloc[0]} appears more than once")


def _check_against_snapshot(edits: pd.DataFrame, snapshot: pd.DataFrame) -> None:
    known = snapshot.set_index("sample_id")
    unknown = ~edits["sample_id"].isin(known.index)
    if unknown.any():
        raise EditsError(f"edits: unknown sample id {edits['sample_id'][unknown].iloc[0]}")
    missing = ~known.index.isin(edits["sample_id"])
    if missing.any():
        raise EditsError(f"edits: snapshot sample {known.index[missing][0]} has no row")
    ref = known.loc[edits["sample_id"]]
    wrong = edits["label"].to_numpy() != ref["label"].to_numpy()
    if wrong.any():
        i = int(np.argmax(wrong))
        raise EditsError(
            f"edits: sample {edits['sample_id'].iloc[i]} has label {edits['label'].iloc[i]}, "
            f"snapshot says {ref['label'].iloc[i]}"
        )
    before = edits[["x_before", "y_before"]].to_numpy()
    if not np.allclose(before, ref[["x", "y"]].to_numpy(), atol=1e-6):
        raise EditsError("edits: before-positions differ from the snapshot")


def _write_parquet(
    path: Path, df: pd.DataFrame, meta: dict[bytes, bytes], exclusive: bool = False
) -> Path:
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            _link_new(tmp, path)  # fails, atomically, when the file exists
            Path(tmp).unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _link_new(tmp: str, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise EditsExistError(f"{path} is already recorded") from None


def _read_parquet(path: Path) -> pa.Table:
    if not path.is_file():
        raise EditsError(f"{path}: no such file")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise EditsError(f"{path}: not a readable Parquet file ({err})") from None


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes: names exactly what a gate recorded."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def edits_summary(edits: pd.DataFrame) -> dict[str, float]:
    """Size of an edit: how many points moved (individually) and the mean displacement."""
    d = np.hypot(edits["x_after"] - edits["x_before"], edits["y_after"] - edits["y_before"])
    return {
        "points_moved": float(edits["moved"].sum()),
        "points_displaced": float((d > 1e-9).sum()),
        "mean_displacement": float(d.mean()) if len(d) else 0.0,
        **correction_counts(edits),
    }


def correction_counts(edits: pd.DataFrame) -> dict[str, float]:
    """How many items a gate's file has relabelled and excluded (the corrections in force)."""
    excluded = edits["excluded"].to_numpy(bool)
    relabelled = (edits["label_after"] != edits["label"]).to_numpy() & ~excluded
    return {"items_relabelled": float(relabelled.sum()), "items_excluded": float(excluded.sum())}

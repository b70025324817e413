"""The page's edit state (``ops``) as the live readout takes it, checked field by field.

The page sends its whole edit state on each drag: per-class ``offsets`` (C pairs) and
``scales`` (C numbers), ``moved`` points ``[sample_id, x, y]`` and label corrections ``labels``
``[sample_id, label_after, excluded]``. Anything else is refused with one line naming the field,
which the readout route answers as 400 (it used to be a 500 with a traceback).
"""

from __future__ import annotations

import math
from typing import Any


class OpsError(ValueError):
    """An edit state the readout cannot take; the message names the field, in one line."""


def check_ops(ops: Any, num_classes: int) -> dict[str, Any]:
    """``ops`` checked (None: no edit); returns it as a dict with every field a list."""
    if ops is None:
        return {}
    if not isinstance(ops, dict):
        raise OpsError(f"ops must be an object, got {_kind(ops)}")
    unknown = sorted(set(ops) - {"offsets", "scales", "moved", "labels"})
    if unknown:
        raise OpsError(f"ops.{unknown[0]} is not a field of the edit state")
    out = {}
    for name, check in (("offsets", _offsets), ("scales", _scales), ("moved", _moved),
                        ("labels", _labels)):  # fmt: skip
        value = ops.get(name)
        if value is None:
            continue
        if not isinstance(value, list):
            raise OpsError(f"ops.{name} must be a list, got {_kind(value)}")
        out[name] = check(value, num_classes)
    return out


def _offsets(value: list, num_classes: int) -> list:
    _length("offsets", value, num_classes)
    for k, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2 and all(map(_finite, pair))):
            raise OpsError(f"ops.offsets[{k}] must be two finite numbers, got {pair!r:.60}")
    return value


def _scales(value: list, num_classes: int) -> list:
    _length("scales", value, num_classes)
    for k, scale in enumerate(value):
        if not (_finite(scale) and scale >= 0):
            raise OpsError(f"ops.scales[{k}] must be a finite number >= 0, got {scale!r:.60}")
    return value


def _moved(value: list, num_classes: int) -> list:
    for k, row in enumerate(value):
        ok = isinstance(row, list) and len(row) == 3 and _whole(row[0])
        if not (ok and _finite(row[1]) and _finite(row[2])):
            raise OpsError(f"ops.moved[{k}] must be [sample_id, x, y], got {row!r:.60}")
    return value


def _labels(value: list, num_classes: int) -> list:
    for k, row in enumerate(value):
        ok = isinstance(row, list) and len(row) == 3 and _whole(row[0])
        ok = ok and _whole(row[1]) and 0 <= row[1] < num_classes and isinstance(row[2], bool)
        if not ok:
            raise OpsError(
                f"ops.labels[{k}] must be [sample_id, label_after in 0..{num_classes - 1}, "
                f"excluded (true/false)], got {row!r:.60}"
            )
    return value


def check_sample_id(value: Any) -> int:
    """The item preview's ``sample_id``: a whole JSON number (3006.0 too, as a script may send
    it). An id the snapshot lacks is no error (its preview is None); anything else is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not _whole(value) or not -(2**63) <= value < 2**63:  # int64, as the snapshot's ids
        shown = f"{value!r:.40}" if not _whole(value) else "a number past int64"
        raise OpsError(f"sample_id must be a whole number (int64), got {shown}")
    return value


def _length(name: str, value: list, num_classes: int) -> None:
    if len(value) != num_classes:
        raise OpsError(
            f"ops.{name} must hold {num_classes} entries (one per class), got {len(value)}"
        )


def _finite(x: Any) -> bool:
    if not isinstance(x, int | float) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:  # an int past float's range (10**400): it answered 500
        return False


def _whole(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _kind(value: Any) -> str:
    return {str: "a string", int: "a number", float: "a number", bool: "true/false",
            list: "a list", dict: "an object", type(None): "null"}.get(
                type(value), type(value).__name__)  # fmt: skip

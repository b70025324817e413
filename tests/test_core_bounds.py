"""Finite is not enough: edited positions are bounded by the edit box, on write and on read, and
any accepted edit gives a finite teacher and a finite loss (issue 9, item 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from app_helpers import synthetic_context, synthetic_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from hill_core.decision import GateDecision
from hill_core.edits import (
    EDIT_BOX_FACTOR,
    VIEW_LIMIT,
    EditsError,
    EditsMeta,
    edit_box,
    make_edits,
    read_edits,
    validate_edits,
    validate_snapshot,
    write_edits,
    write_snapshot,
)
from hill_core.losses import LossWeights, hill_loss
from hill_core.teacher import teacher_from_edits
from interaction_app.layout import rows_to_positions
from interaction_app.recorder import GateRecorder

C = 3


@pytest.fixture
def snapshot():
    """12 points, 3 classes, inside the square [-2, 2] x [-1, 1]: box centre 0, extent 4."""
    labels = np.repeat(np.arange(C), 4)
    rng = np.random.default_rng(0)
    x = np.concatenate([[-2.0, 2.0], rng.uniform(-2, 2, 10)])
    y = np.concatenate([[-1.0, 1.0], rng.uniform(-1, 1, 10)])
    return pd.DataFrame(
        {
            "sample_id": np.arange(100, 112),
            "label": labels,
            "class_name": np.array(["a", "b", "c"], dtype=object)[labels],
            "pred": labels,
            "x": x,
            "y": y,
        }
    )


def moved_to(snapshot, x: float, row: int = 3) -> pd.DataFrame:
    """Edits where one point (sample 100 + row) is moved to (x, its y)."""
    xs = snapshot["x"].to_numpy().copy()
    xs[row] = x
    moved = np.zeros(len(snapshot), bool)
    moved[row] = True
    return make_edits(snapshot, xs, snapshot["y"], moved, "run-1", 4)


def test_the_box_is_ten_extents_around_the_bounding_box_centre(snapshot):
    centre, half = edit_box(snapshot[["x", "y"]].to_numpy())
    assert centre.tolist() == [0.0, 0.0]
    assert half == EDIT_BOX_FACTOR * 4.0 == 40.0  # extent: the larger side, 4 view units
    # a collapsed layout (one spot) still gets a box of EDIT_BOX_FACTOR view units
    assert edit_box(np.array([[5.0, 5.0], [5.0, 5.0]]))[1] == EDIT_BOX_FACTOR


OUTSIDE = [1e39, 1e20, 40.0 + 1e-6, -40.0 - 1e-6]


@pytest.mark.parametrize("x", OUTSIDE)
def test_positions_outside_the_box_are_refused_on_write(tmp_path, snapshot, x):
    path = tmp_path / "g.parquet"
    with pytest.raises(EditsError) as err:
        write_edits(path, moved_to(snapshot, x), EditsMeta("abc"), snapshot)
    message = str(err.value)
    assert "x_after of sample 103" in message and f"{x:.6g}" in message
    assert "outside the edit box [-40, 40]" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def crafted_file(path, edits: pd.DataFrame, decision: str = "approve"):
    """An edits Parquet written with pyarrow directly: no hill validation on the way."""
    table = pa.Table.from_pandas(edits, preserve_index=False)
    meta = EditsMeta("abc", decision).to_bytes()
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, **meta}), path)
    return path


@pytest.mark.parametrize("x", OUTSIDE)
def test_positions_outside_the_box_are_refused_on_read_and_replay(tmp_path, snapshot, x):
    path = crafted_file(tmp_path / "gate_0004.parquet", moved_to(snapshot, x))
    for read in (
        lambda: read_edits(path),
        lambda: read_edits(path, snapshot),
        lambda: GateDecision.recorded(path),  # what replay and the flow use
        lambda: GateDecision("approve", str(path), "-", "replay").teacher(C),
    ):
        with pytest.raises(EditsError, match="x_after of sample 103 .*outside the edit box"):
            read()


@pytest.mark.parametrize("x", [40.0, -40.0, 39.999, 0.0])
def test_positions_inside_the_box_are_accepted(tmp_path, snapshot, x):
    path = write_edits(tmp_path / "g.parquet", moved_to(snapshot, x), EditsMeta("a"), snapshot)
    edits, _ = read_edits(path, snapshot)
    assert edits.loc[3, "x_after"] == x
    assert GateDecision.recorded(path).teacher(C) is not None


def test_the_box_holds_for_every_coordinate_and_class_shifts(snapshot):
    edits = make_edits(snapshot, snapshot["x"], snapshot["y"] + 50.0, np.zeros(12, bool), "r", 4)
    with pytest.raises(EditsError, match="y_after of sample 100 is 49, outside .*\\[-40, 40\\]"):
        validate_edits(edits)


def test_snapshot_positions_beyond_the_view_limit_are_refused(tmp_path, snapshot):
    snapshot.loc[5, "y"] = 2 * VIEW_LIMIT
    with pytest.raises(EditsError, match="y of sample 105 is 2e\\+06, beyond the view's limit"):
        write_snapshot(tmp_path / "s.parquet", snapshot, 4, "r")
    edits = make_edits(snapshot, snapshot["x"], snapshot["y"], np.zeros(12, bool), "r", 4)
    with pytest.raises(EditsError, match="y_before of sample 105"):
        validate_edits(edits)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_snapshot_is_refused(tmp_path, snapshot):
    with pytest.raises(EditsError, match="snapshot: table is empty"):
        validate_snapshot(snapshot.iloc[:0])
    with pytest.raises(EditsError, match="table is empty"):
        write_snapshot(tmp_path / "s.parquet", snapshot.iloc[:0], 4, "r")
    assert list(tmp_path.iterdir()) == []


def test_the_teacher_refuses_numbers_that_overflow_float32(snapshot):
    # bypasses validate_edits on purpose: the teacher is the last line of defence
    with pytest.raises(EditsError, match="teacher: moved_targets is not finite in float32"):
        teacher_from_edits(moved_to(snapshot, 1e39), C)
    edits = make_edits(snapshot, snapshot["x"] + 1e39, snapshot["y"], np.zeros(12, bool), "r", 4)
    with pytest.raises(EditsError, match="teacher: shifts is not finite in float32"):
        teacher_from_edits(edits, C)


def random_batch(edits: pd.DataFrame, seed: int, scale: float):
    """A batch of 32 snapshot items at noisy view positions, with logits that need a grad."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, len(edits), (32,), generator=g)
    xy = torch.tensor(edits[["x_before", "y_before"]].to_numpy(np.float32))[rows]
    p = (xy + scale * torch.randn(32, 2, generator=g)).requires_grad_(True)
    y = torch.tensor(edits["label"].to_numpy())[rows]
    ids = torch.tensor(edits["sample_id"].to_numpy())[rows]
    logits = torch.randn(32, C, generator=g, requires_grad=True)
    return logits, y, p, ids


@st.composite
def gate_edit(draw):
    """A snapshot at any plausible scale and an edit anywhere near, on or past its box."""
    scale = draw(st.sampled_from([1e-6, 1e-3, 1.0, 1e3, 1e5]))
    n = draw(st.integers(3, 24))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % C
    xy = scale * rng.normal(size=(n, 2))
    snap = pd.DataFrame(
        {"sample_id": np.arange(n) * 7, "label": labels, "class_name": labels.astype(str)}
    ).assign(pred=labels, x=xy[:, 0], y=xy[:, 1])
    _, half = edit_box(xy)
    factor = st.floats(-1.5, 1.5, allow_nan=False)  # in box half-widths: some land outside
    after = xy.copy()
    moved = np.zeros(n, bool)
    for i in draw(st.lists(st.integers(0, n - 1), max_size=n, unique=True)):
        after[i] = xy[i] + half * np.array([draw(factor), draw(factor)])
        moved[i] = draw(st.booleans())
    if draw(st.booleans()):  # an extreme value outright
        after[0, 0] = draw(st.floats(allow_nan=False, allow_infinity=False))
    return snap, make_edits(snap, after[:, 0], after[:, 1], moved, "r", 4), seed, scale


@pytest.mark.slow
@settings(max_examples=200, deadline=None, derandomize=True)
@given(case=gate_edit())
def test_any_accepted_edit_gives_a_finite_teacher_and_loss(case):
    snap, edits, seed, scale = case
    try:
        edits = validate_edits(edits, snap)
    except EditsError as err:
        assert "outside the edit box" in str(err) and "\n" not in str(err)
        return
    teacher = teacher_from_edits(edits, C)
    for name, value in teacher.__dict__.items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), name
    logits, y, p, ids = random_batch(edits, seed, scale)
    loss, terms = hill_loss(logits, y, p, ids, teacher, LossWeights())
    assert torch.isfinite(loss), terms
    loss.backward()
    assert torch.isfinite(p.grad).all() and torch.isfinite(logits.grad).all()


def test_the_gate_api_path_refuses_a_huge_coordinate_in_one_line(tmp_path):
    snapshot = synthetic_snapshot(60)
    context = synthetic_context(tmp_path / "edits.parquet")
    decisions = []
    recorder = GateRecorder(snapshot, context, decisions.append)
    rows = [{"sample_id": 3000, "x": 1e39, "y": 0.0, "moved": True}]
    x, y, moved = rows_to_positions(snapshot, rows)  # finite: passes the row parser
    with pytest.raises(EditsError) as err:
        recorder.record("approve", x, y, moved)
    message = str(err.value)
    assert "x_after of sample 3000 is 1e+39, outside the edit box" in message
    assert "\n" not in message
    assert not context.edits_path.exists() and decisions == []
    ok = rows_to_positions(snapshot, [{"sample_id": 3000, "x": 9.0, "y": 9.0, "moved": True}])
    assert recorder.record("approve", *ok).decision == "approve"  # the gate is still open

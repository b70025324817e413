"""The edits contract: validated Parquet, atomic writes, one-line errors that write nothing."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hill_core.edits import (
    EditsError,
    EditsMeta,
    edits_summary,
    make_edits,
    read_edits,
    read_snapshot,
    unedited,
    validate_edits,
    validate_snapshot,
    write_edits,
    write_snapshot,
)
from hill_core.teacher import teacher_from_edits


@pytest.fixture
def snapshot():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 4)
    return pd.DataFrame(
        {
            "sample_id": np.arange(100, 112),
            "label": labels,
            "class_name": np.array(["a", "b", "c"], dtype=object)[labels],
            "pred": labels,
            "x": rng.normal(size=12),
            "y": rng.normal(size=12),
        }
    )


def edited(snapshot):
    x, y = snapshot["x"].to_numpy() + 1.0, snapshot["y"].to_numpy()
    moved = np.zeros(12, bool)
    moved[3] = True
    return make_edits(snapshot, x, y, moved, "run-1", 4)


def test_round_trip_keeps_values_and_metadata(tmp_path, snapshot):
    path = write_edits(tmp_path / "g.parquet", edited(snapshot), EditsMeta("abc"), snapshot)
    table, meta = read_edits(path, snapshot)
    pd.testing.assert_frame_equal(table, validate_edits(edited(snapshot)))
    assert meta == EditsMeta("abc", "approve")
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind


def test_snapshot_round_trip(tmp_path, snapshot):
    path = write_snapshot(tmp_path / "s.parquet", snapshot, gate_epoch=4, run_id="r")
    table, meta = read_snapshot(path)
    pd.testing.assert_frame_equal(table, validate_snapshot(snapshot))
    assert meta == {"gate_epoch": "4", "run_id": "r", "num_classes": "0"}


def corrupt(kind, snapshot):
    edits = edited(snapshot)
    if kind == "nan":
        edits.loc[2, "x_after"] = np.nan
    elif kind == "inf":
        edits.loc[2, "y_after"] = np.inf
    elif kind == "unknown id":
        edits.loc[2, "sample_id"] = 999
    elif kind == "duplicate id":
        edits.loc[2, "sample_id"] = edits.loc[1, "sample_id"]
    elif kind == "wrong label":
        edits.loc[2, "label"] = 2
    elif kind == "missing column":
        edits = edits.drop(columns="moved")
    elif kind == "moved not bool":
        edits["moved"] = edits["moved"].astype(int)
    return edits


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("nan", "x_after of sample 102 is nan"),
        ("inf", "y_after of sample 102 is inf"),
        ("unknown id", "unknown sample id 999"),
        ("duplicate id", "sample id 101 appears more than once"),
        ("wrong label", "sample 102 has label 2, snapshot says 0"),
        ("missing column", "missing column(s) moved"),
        ("moved not bool", "column moved must be bool"),
    ],
)
def test_bad_edits_raise_one_line_and_leave_files_intact(tmp_path, snapshot, kind, says):
    path = tmp_path / "g.parquet"
    write_edits(path, unedited(snapshot, "run-1", 4), EditsMeta("abc"), snapshot)
    before = path.read_bytes()
    with pytest.raises(EditsError) as err:
        write_edits(path, corrupt(kind, snapshot), EditsMeta("abc"), snapshot)
    assert says in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == before
    with pytest.raises(EditsError):
        write_edits(tmp_path / "new.parquet", corrupt(kind, snapshot), EditsMeta("a"), snapshot)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.parquet"]


def test_malformed_files_on_read_name_the_file(tmp_path, snapshot):
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(EditsError, match="garbage.parquet: not a readable Parquet file"):
        read_edits(garbage)
    table = pa.Table.from_pandas(edited(snapshot), preserve_index=False)
    table = table.replace_schema_metadata({b"hill.schema_version": b"99"})
    old = tmp_path / "old.parquet"
    pq.write_table(table, old)
    with pytest.raises(EditsError, match="schema version 99, expected 1"):
        read_edits(old)
    with pytest.raises(EditsError, match="decision 'maybe'"):
        write_edits(tmp_path / "d.parquet", edited(snapshot), EditsMeta("a", "maybe"))


def test_teacher_from_edits_follows_the_definitions(snapshot):
    edits = edited(snapshot)  # every point shifted by +1 in x; sample 103 moved on its own
    teacher = teacher_from_edits(edits, 4)
    p = edits[["x_before", "y_before"]].to_numpy()
    for c in range(3):
        points = p[edits["label"] == c]
        mu = points.mean(0)
        assert np.allclose(teacher.gate_centers[c].numpy(), mu, atol=1e-6)
        assert np.isclose(
            float(teacher.gate_spreads[c]), np.linalg.norm(points - mu, axis=1).mean()
        )
        assert np.allclose(teacher.shifts[c].numpy(), [1.0, 0.0], atol=1e-6)
    assert teacher.shifted.tolist() == [True, True, True, False]
    assert not teacher.scaled.any() and not teacher.anchors.any()
    assert teacher.moved_ids.tolist() == [103]
    rms = np.sqrt(((p - p.mean(0)) ** 2).sum(1).mean())
    assert float(teacher.gate_radius) == pytest.approx(rms, rel=1e-6)


def test_edit_summary_counts_moves(snapshot):
    summary = edits_summary(edited(snapshot))
    assert summary == {
        "points_moved": 1.0,
        "points_displaced": 12.0,
        "mean_displacement": 1.0,
        "items_relabelled": 0.0,
        "items_excluded": 0.0,
    }

"""App tier, no browser: label corrections (relabel, exclude) from the page's rows to the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from app_helpers import synthetic_context, synthetic_snapshot

from hill_core.edits import EditsError, read_edits
from interaction_app.layout import Readout, view_payload
from interaction_app.recorder import GateClosedError, GateRecorder
from interaction_app.rows import rows_to_edits, rows_to_positions


def corrected_snapshot(n: int = 60):
    """A snapshot whose rows 0-2 were relabelled and row 3 excluded at earlier gates, with a
    suspects ranking (row 5 not scored)."""
    snapshot = synthetic_snapshot(n)
    current = snapshot["label"].to_numpy().copy()
    current[:3] = (current[:3] + 2) % 10
    excluded = np.zeros(n, bool)
    excluded[3] = True
    score = np.linspace(1.0, 0.0, n)
    score[5] = np.nan
    return snapshot.assign(
        current_label=current,
        excluded=excluded,
        suspect_score=score,
        suspect_pred=(snapshot["label"].to_numpy() + 1) % 10,
    )


def recorder_for(snapshot, tmp_path):
    decisions = []
    context = synthetic_context(tmp_path / "edits.parquet")
    return GateRecorder(snapshot, context, decisions.append), context, decisions


def test_recorder_writes_label_after_and_excluded(tmp_path):
    snapshot = synthetic_snapshot(40)
    recorder, context, decisions = recorder_for(snapshot, tmp_path)
    n = len(snapshot)
    label_after = snapshot["label"].to_numpy().copy()
    label_after[[4, 9]] = [7, 0]
    excluded = np.zeros(n, bool)
    excluded[12] = True
    x, y = snapshot["x"].to_numpy(), snapshot["y"].to_numpy()
    recorder.record("approve", x, y, np.zeros(n, bool), label_after=label_after, excluded=excluded)
    edits, meta = read_edits(context.edits_path, snapshot)
    assert meta.num_classes == 10 and meta.decision == "approve" and meta.schema_version == 2
    np.testing.assert_array_equal(edits["label_after"], label_after)
    np.testing.assert_array_equal(edits["excluded"], excluded)
    assert [d.decision for d in decisions] == ["approve"]


def test_recorder_refuses_an_unknown_class_and_writes_nothing(tmp_path):
    snapshot = synthetic_snapshot(40)
    recorder, context, decisions = recorder_for(snapshot, tmp_path)
    n = len(snapshot)
    label_after = snapshot["label"].to_numpy().copy()
    label_after[6] = 10  # ten classes: 0-9
    x, y, moved = snapshot["x"].to_numpy(), snapshot["y"].to_numpy(), np.zeros(n, bool)
    with pytest.raises(EditsError) as err:
        recorder.record("approve", x, y, moved, label_after=label_after)
    message = str(err.value)
    assert "\n" not in message and "label_after" in message and "not a known class id" in message
    assert not Path(context.edits_path).exists() and decisions == []
    assert recorder.record("approve", x, y, moved).decision == "approve"  # still open


def test_skip_and_plain_approve_keep_earlier_corrections(tmp_path):
    snapshot = corrected_snapshot()
    recorder, context, _ = recorder_for(snapshot, tmp_path)
    n = len(snapshot)
    relabel = snapshot["label"].to_numpy().copy()  # a skip ignores what the page sent
    recorder.record("skip", snapshot["x"], snapshot["y"], np.zeros(n, bool), label_after=relabel)
    edits, _ = read_edits(context.edits_path, snapshot)
    np.testing.assert_array_equal(edits["label_after"], snapshot["current_label"])
    np.testing.assert_array_equal(edits["excluded"], snapshot["excluded"])


def test_rows_carry_corrections_and_unlisted_rows_keep_the_snapshot_state():
    snapshot = corrected_snapshot()
    ids = snapshot["sample_id"].tolist()
    x0, y0 = float(snapshot["x"][0]), float(snapshot["y"][0])
    rows = [
        {"sample_id": ids[0], "x": x0, "y": y0, "label_after": int(snapshot["label"][0])},
        {"sample_id": ids[3], "x": float(snapshot["x"][3]), "y": 0.0, "excluded": False},
        {"sample_id": ids[7], "x": 1.0, "y": 2.0, "moved": True, "label_after": 4.0},
    ]
    edit = rows_to_edits(snapshot, rows, num_classes=10)
    want = snapshot["current_label"].to_numpy().copy()
    want[0], want[7] = snapshot["label"][0], 4  # row 0's earlier correction undone
    np.testing.assert_array_equal(edit.label_after, want)
    assert not edit.excluded.any()  # row 3 included again
    assert edit.moved.tolist().count(True) == 1 and edit.moved[7]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"label_after": 10}, "label_after of sample 3000 is 10, not a known class id ([0, 10))"),
        ({"label_after": -1}, "not a known class id"),
        ({"label_after": "3"}, "label_after of sample 3000 is '3' (must be a 64-bit integer)"),
        ({"label_after": 2.5}, "must be a 64-bit integer"),
        ({"excluded": "yes"}, "excluded of sample 3000 must be true or false"),
    ],
)
def test_bad_corrections_are_one_line_errors(extra, message):
    row = {"sample_id": 3000, "x": 0.0, "y": 0.0, **extra}
    with pytest.raises(EditsError) as err:
        rows_to_edits(synthetic_snapshot(30), [row], num_classes=10)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_positions_only_callers_refuse_corrections_rather_than_drop_them():
    row = {"sample_id": 3000, "x": 0.0, "y": 0.0, "label_after": 3}
    with pytest.raises(EditsError, match="label_after/excluded"):
        rows_to_positions(synthetic_snapshot(30), [row])
    x, _, moved = rows_to_positions(synthetic_snapshot(30), [{"sample_id": 3000, "x": 9.0, "y": 0}])
    assert x[0] == 9.0 and not moved.any()


def test_view_payload_carries_the_state_and_sends_nan_as_null():
    payload = view_payload(corrected_snapshot(), [str(c) for c in range(10)])
    assert payload["excluded"][3] is True and payload["current_label"][0] != payload["label"][0]
    assert payload["suspect_score"][5] is None and payload["suspect_score"][0] == 1.0
    plain = view_payload(synthetic_snapshot(20), [str(c) for c in range(10)])
    assert plain["current_label"] == plain["label"] and not any(plain["excluded"])
    assert plain["suspect_score"] == [None] * 20 and plain["suspect_pred"] == [-1] * 20


def test_readout_with_corrections_equals_the_long_way():
    """Corrections change the teacher (hill_core.teacher.latent_rows): the live readout follows
    the same rule as teacher_from_edits + layout_loss, and counts them as the file does."""
    snapshot = corrected_snapshot(600)
    readout = Readout(snapshot, 10, synthetic_context(Path("unused")).weights)
    ids = snapshot["sample_id"].tolist()
    offsets = np.zeros((10, 2))
    offsets[2] = (0.6, -0.3)
    moved = [[ids[20], 1.0, 2.0], [ids[21], -1.0, 0.5], [ids[1], 0.0, 0.0]]
    given0 = int(snapshot["label"][0])  # undoes row 0's earlier relabel
    cases = [
        {},
        {"offsets": offsets.tolist(), "moved": moved},
        {"offsets": offsets.tolist(), "moved": moved, "labels": [[ids[21], 5, False]]},
        {"moved": moved, "labels": [[ids[0], given0, False], [ids[20], 0, True]]},
    ]
    for ops in cases:
        fast, slow = readout(ops), readout.reference(ops)
        assert fast.keys() == slow.keys()
        for key in fast:
            assert fast[key] == pytest.approx(slow[key], rel=2e-4, abs=1e-7), (key, ops)
    assert readout({})["items_relabelled"] == 3 and readout({})["items_excluded"] == 1
    last = readout(cases[-1])
    assert last["items_relabelled"] == 2 and last["items_excluded"] == 2


@pytest.mark.parametrize("moved", [False, True])
def test_an_approval_announces_a_layout_teacher_only_when_a_point_moved(tmp_path, moved):
    """Minor defect of issue 17: after an unedited approve the page spoke of "the edited
    layout as its teacher"; an approval that moved nothing teaches no layout."""
    snapshot = synthetic_snapshot(30)
    recorder, _, _ = recorder_for(snapshot, tmp_path)
    x, y = snapshot["x"].to_numpy().copy(), snapshot["y"].to_numpy().copy()
    flags = np.zeros(len(snapshot), bool)
    if moved:
        x[0], flags[0] = x[0] + 0.5, True
    label_after = snapshot["label"].to_numpy().copy()
    label_after[1] = (label_after[1] + 1) % 10  # a correction alone is not a layout edit
    recorder.record("approve", x, y, flags, label_after=label_after)
    line = recorder.announcement()
    assert ("edited layout as its teacher" in line) is moved
    assert ("nothing was moved" in line) is not moved
    again = GateRecorder(snapshot, recorder.context, lambda _: None)  # a tab opened since
    with pytest.raises(GateClosedError):
        again.record("stop", None, None, None)
    assert again.announcement().split(": ", 1)[1] == line.split(": ", 1)[1]

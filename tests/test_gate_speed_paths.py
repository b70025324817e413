"""The gate's fast paths at real size, each tied to its readable reference.

- the live readout (``Readout.__call__``, NumPy over class statistics) against
  ``Readout.reference`` (hill_core's ``teacher_from_edits`` + ``layout_loss`` over every point),
  on edge cases and at 10,000 points, in-process, over HTTP and as the page shows it;
- the page's item lookup, built at the first hover instead of at start-up;
- ``take_snapshot`` in chunks against one pass over the whole sample.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from app_helpers import (
    browser_missing_reason,
    browser_required,
    gate_page,
    page_call,
    synthetic_context,
    synthetic_snapshot,
)

from hill_core import snapshot as snapshot_module
from hill_core.config import Config, GateConfig
from hill_core.data import load_data
from hill_core.edits import EditsError, make_edits
from hill_core.evaluate import latents_of
from hill_core.projection import fit_projection
from hill_core.snapshot import CHUNK, item_preview, take_snapshot
from hill_core.teacher import layout_stats, teacher_from_edits
from interaction_app.layout import Readout, class_stats_np
from interaction_app.page_state import ItemLookup

ROOT = "document.querySelector('#hill-plot .hill-root')"


def weights():
    return synthetic_context(Path("unused")).weights


def edit_cases(snapshot: pd.DataFrame, num_classes: int, count: int, seed: int) -> list[dict]:
    """Edit states as the page sends them, random and at the edges of the rule: nothing, shifts,
    scales (to 0 too), merges, single points (unknown ids too), a class moved entirely point by
    point, and every class shifted (fewer untouched classes than the frame needs)."""
    rng = np.random.default_rng(seed)
    ids, labels = snapshot["sample_id"].to_numpy(), snapshot["label"].to_numpy()
    present = np.unique(labels)
    zero, one = np.zeros((num_classes, 2)), np.ones(num_classes)
    cases = [{}, {"offsets": zero.tolist(), "scales": one.tolist(), "moved": []}]
    everything = rng.normal(size=(num_classes, 2))
    cases.append({"offsets": everything.tolist(), "scales": one.tolist()})  # frame on all
    collapsed = one.copy()
    collapsed[present[0]] = 0.0
    cases.append({"scales": collapsed.tolist(), "moved": [[-5, 1.0, 1.0]]})  # unknown id
    for k in range(count):
        offsets, scales = zero.copy(), one.copy()
        for c in rng.choice(present, rng.integers(0, 4), replace=False):
            offsets[c] = rng.normal(size=2)
        for c in rng.choice(present, rng.integers(0, 3), replace=False):
            scales[c] = rng.uniform(0.0, 2.5)
        picked = rng.choice(ids, rng.integers(0, 40), replace=False)
        moved = [[int(i), float(rng.normal() * 4), float(rng.normal() * 4)] for i in picked]
        if k % 3 == 0:  # one class moved entirely point by point: only its points ask
            c, taken = present[-1], {m[0] for m in moved}
            moved += [[int(i), 0.5, -0.5] for i in ids[labels == c] if int(i) not in taken]
        if k % 3 == 1:  # a merge: one centre dropped on another's
            centres = snapshot.groupby("label")[["x", "y"]].mean()
            a, b = present[1], present[2]
            offsets[a] = centres.loc[b].to_numpy() - centres.loc[a].to_numpy()
        cases.append({"offsets": offsets.tolist(), "scales": scales.tolist(), "moved": moved})
    return cases


def assert_same_readout(readout: Readout, ops: dict) -> None:
    fast, slow = readout(ops), readout.reference(ops)
    assert fast.keys() == slow.keys()
    for key in fast:  # float64 over class statistics against float32 over every point
        assert fast[key] == pytest.approx(slow[key], rel=2e-4, abs=1e-7), (key, ops)


def assert_same_teacher(readout: Readout, snapshot: pd.DataFrame, ops: dict) -> None:
    q, moved = readout.positions(ops)
    a = readout.teacher(q, moved)
    b = teacher_from_edits(
        make_edits(snapshot, q[:, 0], q[:, 1], moved, "", 0), readout.num_classes
    )
    for field in a.__dict__:
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and torch.allclose(x.double(), y.double(), atol=1e-6), field


@pytest.mark.parametrize(
    ("points", "num_classes", "absent"),
    [(600, 10, ()), (900, 12, (4, 11))],  # 12 classes, two of them not in the snapshot
)
def test_fast_readout_is_the_long_way_at_the_edges(points, num_classes, absent):
    snapshot = synthetic_snapshot(points, num_classes=num_classes, seed=points)
    snapshot = snapshot[~snapshot["label"].isin(absent)].reset_index(drop=True)
    readout = Readout(snapshot, num_classes, weights())
    for ops in edit_cases(snapshot, num_classes, 12, seed=points):
        assert_same_readout(readout, ops)
        assert_same_teacher(readout, snapshot, ops)


def test_fast_readout_is_the_long_way_at_10000_points():
    snapshot = synthetic_snapshot(10_000)
    readout = Readout(snapshot, 10, weights())
    for ops in edit_cases(snapshot, 10, 4, seed=7):
        assert_same_readout(readout, ops)


def test_fast_readout_refuses_what_the_teacher_refuses():
    snapshot = synthetic_snapshot(300)
    readout = Readout(snapshot, 10, weights())
    offsets = np.zeros((10, 2))
    offsets[2] = (1e39, 0.0)  # finite in float64, not in the loss's float32
    for ops in ({"offsets": offsets.tolist()}, {"moved": [[3000, 1e39, 0.0]]}):
        for way in (readout, readout.reference):
            with pytest.raises(EditsError, match="not finite in float32"):
                way(ops)
    with pytest.raises(ValueError, match="non-finite"):
        readout({"moved": [[3000, float("nan"), 0.0]]})


def test_class_statistics_in_one_pass_are_layout_stats():
    rng = np.random.default_rng(3)
    xy, labels = rng.normal(size=(5000, 2)) * 3, rng.integers(0, 9, 5000)
    labels[labels == 4] = 8  # class 4 absent: zeros, as layout_stats gives
    ours, theirs = class_stats_np(xy, labels, 10), layout_stats(xy, labels, 10)
    for a, b in zip(ours, theirs[:3], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_readout_over_http_is_the_in_process_one(tmp_path):
    """The page's readout call (on the server's loop) answers what
    ``Readout`` computes; a non-finite edit is refused, and the next call still answers."""
    from interaction_app.server import launch_gate

    snapshot = synthetic_snapshot(2000)
    context = synthetic_context(tmp_path / "edits.parquet")
    readout = Readout(snapshot, 10, context.weights)
    ops = edit_cases(snapshot, 10, 2, seed=1)[-1]
    with launch_gate(snapshot, context, lambda d: None, GateConfig()) as server:
        assert page_call(server.url, "readout", ops) == pytest.approx(readout(ops), rel=1e-12)
        with pytest.raises(urllib.error.HTTPError) as refused:
            page_call(server.url, "readout", {"moved": [[3000, 1e39, 0.0]]})
        assert refused.value.code == 400  # named in one line, not a 500
        assert page_call(server.url, "readout", {}) == pytest.approx(readout({}), abs=1e-12)


def test_item_lookup_is_built_at_the_first_lookup():
    snapshot = synthetic_snapshot(50)
    assert not ItemLookup(snapshot) and ItemLookup(snapshot).get(3000) is None  # no column
    snapshot["item"] = [f"features {i}" if i % 7 else None for i in range(50)]
    items = ItemLookup(snapshot)
    assert items and items._table is None  # nothing built at start-up
    assert items.get(3003) == "features 1" and items.get(3003.0) == "features 1"
    assert items.get(3000) is None and items.get("3003") is None and items.get(True) is None
    assert len(items._table) == 50 - 8  # rows 0, 7, ..., 49 have no preview
    snapshot["item"] = None
    assert not ItemLookup(snapshot)


@pytest.fixture(scope="module")
def digits_state():
    """Digits, an untrained model and a projection fitted on its latents: enough for snapshots."""
    from hill_core.train import init_state

    cfg = Config()
    state = init_state(cfg, load_data(cfg.data, cfg.base.seed))
    data = state.data.train_eval
    z, _ = latents_of(state.model, data, state.device)
    state.projection = fit_projection(z.numpy(), data.labels)
    return state


def test_snapshot_in_chunks_is_one_pass_over_the_sample(digits_state, monkeypatch):
    """``take_snapshot`` sends CHUNK items at a time through the model and keeps only their
    positions, and builds the previews column in chunks: the same table as one pass over every
    item (float32 rounding aside)."""
    state = digits_state
    monkeypatch.setattr(snapshot_module, "PREVIEW_CHUNK", 40)
    size = 3 * CHUNK + 37  # full chunks and a partial one, of both kinds
    table = take_snapshot(state, size)
    data = state.data.train_eval
    rows = np.flatnonzero(np.isin(data.ids, table["sample_id"].to_numpy()))
    sample = data.subset(rows, data.transform)
    assert (sample.ids == table["sample_id"].to_numpy()).all()
    z, logits = latents_of(state.model, sample, state.device)
    with torch.no_grad():
        p = state.projection(z).numpy()
    np.testing.assert_allclose(table[["x", "y"]].to_numpy(), p, rtol=1e-5, atol=1e-5)
    assert (table["pred"].to_numpy() == logits.argmax(1).numpy()).all()
    raw = data.subset(rows)
    assert table["item"].tolist() == [item_preview(raw.get_x(i)) for i in range(len(raw))]
    assert table["item"].dtype == pd.Series(["text"]).dtype  # the default text column
    assert table.dtypes.to_dict() == take_snapshot(state, 20).dtypes.to_dict()


@pytest.mark.browser
@pytest.mark.slow
def test_the_readout_after_a_drag_is_of_the_final_layout(tmp_path):
    """While dragging, calls are coalesced (one in flight, the latest state wins); the one
    after the drag shows exactly ``Readout`` of the layout the page ends with."""
    reason = browser_missing_reason()
    if reason:
        if browser_required():
            pytest.fail(f"HILL_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    snapshot = synthetic_snapshot(10_000)
    context = synthetic_context(tmp_path / "edits.parquet")
    with gate_page(snapshot, context) as (_, page):
        x, y = page.evaluate(f"() => {ROOT}.hill.toClient(...{ROOT}.hill.handle(3))")
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 90, y - 40, steps=40)  # faster than one readout per move
        page.mouse.up()
        page.wait_for_function(
            f"""() => new Promise(done => {{
              const n = {ROOT}.hill.readoutPerf.calls;
              setTimeout(() => done(n > 0 && {ROOT}.hill.readoutPerf.calls === n), 600);
            }})"""
        )
        ops = page.evaluate(f"() => {ROOT}.hill.ops()")
        shown = page.locator("#hill-plot .hill-readout code").all_inner_texts()
    expected = Readout(snapshot, 10, context.weights)(ops)
    keys = ("l_center", "l_spread", "l_point", "l_human")
    assert shown == [f"{expected[k]:.4f}" for k in keys]
    assert expected["l_center"] > 0

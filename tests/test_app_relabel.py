"""App tier, real browser: relabel and exclude at the gate, and suspects-first triage.

Every test drives headless Chromium with real mouse and keyboard events, approves, and reads
the written edits Parquet back.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from app_helpers import (
    PLOT_ROOT,
    module_browser,
    synthetic_context,
    synthetic_snapshot,
    wait_ready,
)

from hill_core.config import GateConfig
from hill_core.edits import read_edits
from hill_core.snapshot import item_preview
from hill_core.users import similar_items
from interaction_app.server import launch_gate

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = PLOT_ROOT  # the plot's element, in page JS


@pytest.fixture(scope="module")
def browser():
    yield from module_browser()


def open_page(browser, snapshot, tmp_path):
    """Serve ``snapshot`` at a gate and open it; returns (page, context, decisions, close)."""
    context = synthetic_context(tmp_path / "edits.parquet")
    decisions = []
    server = launch_gate(snapshot, context, decisions.append, GateConfig())
    server.__enter__()
    bctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = bctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(server.url)
    wait_ready(page)

    def close():
        bctx.close()
        server.__exit__(None, None, None)

    return page, context, decisions, close


@pytest.fixture
def gate_page(browser, tmp_path):
    """A factory: gate_page(snapshot) -> (page, context, decisions); closed after the test."""
    opened = []

    def make(snapshot):
        page, context, decisions, close = open_page(browser, snapshot, tmp_path)
        opened.append(close)
        return page, context, decisions

    yield make
    for close in opened:
        close()


def approve(page) -> None:
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("Approve?").wait_for()
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("Decision recorded: approve").wait_for()


def pickable(page, rows) -> list[int]:
    """Those of ``rows`` (row indices) that a press on them picks, away from every handle."""
    return page.evaluate(
        f"""rows => {{
          const h = {ROOT}.hill;
          const handles = Array.from({{length: 10}}, (_, c) => h.toClient(...h.handle(c)));
          return rows.filter((i) => {{
            const [x, y] = h.toClient(...h.point(i));
            const hit = h.pickAt(x, y);
            return hit.kind === 'point' && hit.index === i
              && handles.every(([a, b]) => Math.hypot(a - x, b - y) > 40);
          }});
        }}""",
        [int(r) for r in rows],
    )


def at(page, i):
    return page.evaluate(f"i => {ROOT}.hill.toClient(...{ROOT}.hill.point(i))", i)


def handle_at(page, c):
    return page.evaluate(f"c => {ROOT}.hill.toClient(...{ROOT}.hill.handle(c))", c)


def hover(page, i) -> None:
    """Put the pointer on point i and wait for its hover card."""
    page.mouse.move(*at(page, i))
    page.wait_for_function(f"id => {ROOT}.hill.tipText().includes('sample ' + id)", arg=SIDS[i])


def legend(page) -> str:
    return page.locator("#hill-plot .hill-corrections").inner_text()


SIDS: dict[int, int] = {}  # row -> sample id, for hover (filled per test)


def use(snapshot: pd.DataFrame) -> pd.DataFrame:
    SIDS.clear()
    SIDS.update(enumerate(snapshot["sample_id"].tolist()))
    return snapshot


def test_drop_on_another_class_relabels_and_shift_drop_only_moves(gate_page):
    snapshot = use(synthetic_snapshot(400))
    page, context, _ = gate_page(snapshot)
    labels = snapshot["label"].to_numpy()
    i, j = pickable(page, np.flatnonzero(labels == 7))[:2]
    target = handle_at(page, 3)

    start = at(page, i)  # drop i on class 3's centre: a relabel, shown while dragging
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*target, steps=10)
    page.wait_for_function(f"() => {ROOT}.hill.tipText().includes('drop: relabel as 3')")
    page.mouse.up()
    page.wait_for_function(f"i => {ROOT}.hill.labelAfter(i) === 3", arg=i)
    assert "relabelled 1" in legend(page)

    page.keyboard.down("Shift")  # j with Shift: a latent request, label unchanged
    page.mouse.move(*at(page, j))
    page.mouse.down()
    page.mouse.move(target[0] + 3, target[1] + 3, steps=10)
    page.wait_for_function(f"() => {ROOT}.hill.tipText().includes('drop: move only')")
    page.mouse.up()
    page.keyboard.up("Shift")
    assert page.evaluate(f"j => {ROOT}.hill.labelAfter(j)", j) == 7

    approve(page)
    edits, meta = read_edits(context.edits_path, snapshot)
    assert meta.num_classes == 10
    assert edits["label_after"][i] == 3 and not edits["moved"][i]
    assert edits["x_after"][i] == edits["x_before"][i]  # a relabel asks nothing of the layout
    assert edits["moved"][j] and edits["label_after"][j] == 7 and not edits["excluded"].any()
    assert edits["x_after"][j] != edits["x_before"][j]
    rest = np.ones(len(edits), bool)
    rest[i] = False
    assert (edits["label_after"][rest] == edits["label"][rest]).all()
    assert page.errors == []


def test_relabel_and_exclude_from_the_hover_card_with_undo(gate_page):
    snapshot = use(synthetic_snapshot(400))
    page, context, _ = gate_page(snapshot)
    labels = snapshot["label"].to_numpy()
    a, b, c, d = pickable(page, np.flatnonzero(labels == 2))[:4]

    hover(page, a)
    page.keyboard.press("5")  # over a point: 5 relabels it
    page.wait_for_function(f"a => {ROOT}.hill.labelAfter(a) === 5", arg=a)
    hover(page, b)
    page.keyboard.press("x")  # X excludes
    page.wait_for_function(f"b => {ROOT}.hill.excluded(b)", arg=b)

    page.mouse.click(*at(page, c))  # a click pins its card: class menu and exclude
    card = page.locator("#hill-plot .hill-card")
    card.wait_for(state="visible")
    card.locator("select.hill-card-class").select_option("4")
    page.wait_for_function(f"c => {ROOT}.hill.labelAfter(c) === 4", arg=c)
    page.mouse.click(*at(page, d))
    page.wait_for_function(f"d => {ROOT}.hill.cardItem() === d", arg=d)
    card.get_by_role("button", name="Exclude (not a valid item)").click()
    page.wait_for_function(f"d => {ROOT}.hill.excluded(d)", arg=d)
    assert "relabelled 2, excluded 2" in legend(page)

    page.keyboard.press("Escape")  # the card closes; Ctrl+Z then undoes d's exclusion
    page.mouse.move(5, 5)
    page.keyboard.press("Control+z")
    page.wait_for_function(f"d => !{ROOT}.hill.excluded(d)", arg=d)
    assert "relabelled 2, excluded 1" in legend(page)
    readout = page.locator("#hill-plot .hill-readout", has_text="relabelled 2, excluded 1")
    readout.wait_for()  # the live readout counts them too

    approve(page)
    edits, _ = read_edits(context.edits_path, snapshot)
    assert edits["label_after"][a] == 5 and edits["label_after"][c] == 4
    assert edits["excluded"][b] and not edits["excluded"][d] and edits["excluded"].sum() == 1
    assert not edits["moved"].any() and (edits["x_after"] == edits["x_before"]).all()
    assert page.errors == []


def suspects_snapshot(n: int = 300) -> pd.DataFrame:
    """A snapshot with pictures and a suspects ranking: score falls with the row, so the
    ranking is the row order; the probe predicts label + 1 for every third item."""
    snapshot = synthetic_snapshot(n, seed=3)
    labels = snapshot["label"].to_numpy()
    rng = np.random.default_rng(0)
    pictures = [
        item_preview(torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(k)))
        for k in range(8)
    ]
    pred = np.where(np.arange(n) % 3 == 0, (labels + 1) % 10, labels)
    pred[:6] = (labels[:6] + 1) % 10
    return snapshot.assign(
        item=[pictures[k % 8] for k in range(n)],
        suspect_score=np.sort(rng.random(n))[::-1],
        suspect_pred=pred,
    )


def test_keyboard_triage_of_the_suspects_list(gate_page):
    snapshot = use(suspects_snapshot())
    page, context, _ = gate_page(snapshot)
    labels = snapshot["label"].to_numpy()
    pred = snapshot["suspect_pred"].to_numpy()
    panel = page.locator("#hill-plot .hill-suspects")
    panel.locator(".hill-suspect-current img[src^='data:image/']").wait_for()  # its picture
    assert page.evaluate(f"() => {ROOT}.hill.suspect().order.slice(0, 6)") == list(range(6))
    panel.locator(".hill-suspect").first.click()  # focus the list

    page.keyboard.press("a")  # row 0: relabel as predicted; "find similar" offers the rest
    page.wait_for_function(f"() => {ROOT}.hill.similar().length > 0")
    offered = page.evaluate(f"() => {ROOT}.hill.similar()")
    assert offered == similar_items(snapshot, 0, int(labels[0]), int(pred[0]))  # the core's rule
    page.keyboard.press("Escape")  # dismissed: nothing changes without confirmation
    page.wait_for_function(f"() => {ROOT}.hill.similar().length === 0")
    page.keyboard.press("n")  # row 1: keep
    page.keyboard.press("x")  # row 2: exclude
    page.keyboard.press("3" if labels[3] != 3 else "4")  # row 3: class 3
    page.keyboard.press("k")  # back to row 3, then on to row 4
    page.keyboard.press("j")
    page.wait_for_function(f"() => {ROOT}.hill.suspect().cursor === 4")
    page.keyboard.press("a")  # row 4: as predicted, and this time relabel all similar
    page.wait_for_function(f"() => {ROOT}.hill.similar().length > 0")
    similar = page.evaluate(f"() => {ROOT}.hill.similar()")
    page.keyboard.press("y")
    page.wait_for_function(f"() => {ROOT}.hill.similar().length === 0")
    assert page.evaluate(f"() => {ROOT}.hill.suspect().cursor") == 5
    panel.get_by_text("5 of 300 inspected").wait_for()

    approve(page)
    edits, _ = read_edits(context.edits_path, snapshot)
    want = labels.copy()
    want[0], want[3], want[4] = pred[0], 3 if labels[3] != 3 else 4, pred[4]
    want[similar] = pred[4]
    np.testing.assert_array_equal(edits["label_after"], want)
    assert edits["excluded"].tolist() == [k == 2 for k in range(len(edits))]
    assert not edits["moved"].any()
    assert page.errors == []


def test_earlier_corrections_show_and_an_undo_is_recorded(gate_page):
    base = synthetic_snapshot(300)
    xy = base[["x", "y"]].to_numpy()
    gap = np.sort(np.linalg.norm(xy[:, None] - xy[None], axis=2), axis=1)[:, 1]
    isolated = np.flatnonzero(gap > 0.25)  # easy to point at
    r0, r1, r2, r3 = (int(r) for r in isolated[:4])
    current = base["label"].to_numpy().copy()
    current[[r0, r1, r2]] = (current[[r0, r1, r2]] + 2) % 10
    excluded = np.zeros(len(base), bool)
    excluded[r3] = True
    snapshot = use(base.assign(current_label=current, excluded=excluded))
    page, context, _ = gate_page(snapshot)
    assert "relabelled 3, excluded 1" in legend(page)  # corrected from the start
    assert pickable(page, [r0, r3]) == [r0, r3]

    hover(page, r0)
    page.keyboard.press(str(int(base["label"][r0])))  # back to its given label
    page.wait_for_function(f"() => {ROOT}.hill.corrections().relabelled === 2")
    page.mouse.click(*at(page, r3))
    page.locator("#hill-plot .hill-card").get_by_role("button", name="Include again").click()
    page.wait_for_function(f"() => {ROOT}.hill.corrections().excluded === 0")
    assert "relabelled 2, excluded 0 (2 changed here)" in legend(page)

    approve(page)
    edits, _ = read_edits(context.edits_path, snapshot)
    assert edits["label_after"][r0] == edits["label"][r0]  # the correction undone
    assert edits["label_after"][r1] == current[r1] and edits["label_after"][r2] == current[r2]
    assert not edits["excluded"].any()
    assert page.errors == []

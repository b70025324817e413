"""App tier, real browser: headless Debian Chromium drives the gate page with real mouse events."""

from __future__ import annotations

import threading
import time
import urllib.request
from dataclasses import replace
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
import torch
from app_helpers import (
    PLOT_ROOT,
    free_point,
    module_browser,
    scale_class,
    synthetic_context,
    synthetic_snapshot,
    wait_ready,
)

from hill_core.config import Config, GateConfig
from hill_core.edits import read_edits, write_snapshot
from hill_core.snapshot import item_preview
from interaction_app.server import free_port, launch_gate, serve_snapshot_file

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = PLOT_ROOT  # the plot's element, in page JS


@pytest.fixture(scope="module")
def browser():
    yield from module_browser()


@pytest.fixture
def gate(tmp_path):
    """A gate on a 2,000-point snapshot; yields (server, snapshot, context, decisions)."""
    snapshot = synthetic_snapshot(2000)
    context = synthetic_context(tmp_path / "edits.parquet")
    decisions = []
    with launch_gate(snapshot, context, decisions.append, GateConfig()) as server:
        yield server, snapshot, context, decisions


@pytest.fixture
def page(browser, gate):
    """A page on the gate with every request and page error recorded."""
    server = gate[0]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.requests, page.errors = [], []
    context.on("request", lambda r: page.requests.append(r.url))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(server.url)
    wait_ready(page)
    yield page
    context.close()


def drag(page, start, offset, steps=12):
    """Press at ``start`` (client px), move by ``offset`` in steps, release: real mouse events."""
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + offset[0], start[1] + offset[1], steps=steps)
    page.mouse.up()


def handle_at(page, c):
    return page.evaluate(f"c => {ROOT}.hill.toClient(...{ROOT}.hill.handle(c))", c)


def lonely_point(page, snapshot, label):
    """Row index of a point of ``label`` that a press on it picks, far from every handle."""
    return free_point(page, np.flatnonzero(snapshot["label"].to_numpy() == label))


def test_drag_class_and_point_then_approve(page, gate):
    server, snapshot, context, decisions = gate
    per_px = page.evaluate(f"() => {ROOT}.hill.dataPerPixel()")
    drag(page, handle_at(page, 3), (60, -40))  # class 3: right and up on screen
    i = lonely_point(page, snapshot, 7)
    assert i >= 0
    drag(page, page.evaluate(f"i => {ROOT}.hill.toClient(...{ROOT}.hill.point(i))", i), (45, 30))
    page.get_by_text("L_human").first.wait_for()  # the live readout answered

    page.get_by_role("button", name="Approve").click()
    page.get_by_text("Approve?").wait_for()
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("Decision recorded: approve").wait_for()
    page.wait_for_function(f"() => {ROOT}.hill.isLocked()")

    assert len(decisions) == 1 and decisions[0].decision == "approve"
    edits, meta = read_edits(context.edits_path, snapshot)
    assert meta.decision == "approve"
    dx = edits["x_after"] - edits["x_before"]
    dy = edits["y_after"] - edits["y_before"]
    cls3 = (edits["label"] == 3).to_numpy()
    np.testing.assert_allclose(dx[cls3], 60 * per_px, atol=per_px)
    np.testing.assert_allclose(dy[cls3], 40 * per_px, atol=per_px)  # screen up = data up
    assert not edits["moved"][cls3].any()
    assert edits["moved"].iloc[i]
    assert abs(dx.iloc[i] - 45 * per_px) < per_px and abs(dy.iloc[i] + 30 * per_px) < per_px
    rest = ~cls3
    rest[i] = False
    assert (dx[rest] == 0).all() and (dy[rest] == 0).all() and not edits["moved"][rest].any()

    host = urlsplit(server.url).netloc
    assert page.requests and all(urlsplit(u).netloc == host for u in page.requests), {
        urlsplit(u).netloc for u in page.requests
    }
    assert page.errors == []


def test_zoom_pan_undo_merge_and_second_tab(page, gate, browser):
    server, snapshot, _, decisions = gate
    i = lonely_point(page, snapshot, 2)
    before = page.evaluate(f"i => {ROOT}.hill.point(i)", i)
    drag(page, page.evaluate(f"i => {ROOT}.hill.toClient(...{ROOT}.hill.point(i))", i), (30, 0))
    moved = page.evaluate(f"i => {ROOT}.hill.point(i)", i)
    assert moved != before

    box = page.locator("#hill-plot canvas").bounding_box()
    page.mouse.move(box["x"] + 100, box["y"] + 100)
    page.mouse.wheel(0, -400)  # zoom in
    drag(page, (box["x"] + 20, box["y"] + box["height"] - 20), (50, -30))  # pan on background
    assert page.evaluate(f"i => {ROOT}.hill.point(i)", i) == moved  # view changes, edits stay

    page.get_by_role("button", name="Undo (1)").click()
    assert page.evaluate(f"i => {ROOT}.hill.point(i)", i) == before
    assert page.evaluate(f"() => {ROOT}.hill.payload().rows.length") == 0

    page.get_by_role("button", name="Fit view").click()  # the zoom may have hidden the centres
    one, two = handle_at(page, 1), handle_at(page, 2)
    drag(page, one, (two[0] - one[0], two[1] - one[1]))  # drop centre 1 on centre 2: merge
    page.get_by_text("Merged 1 into 2").wait_for()
    merged = page.evaluate(f"() => [{ROOT}.hill.handle(1), {ROOT}.hill.handle(2)]")
    assert merged[0] == pytest.approx(merged[1], abs=1e-9)
    page.keyboard.press("Control+z")
    assert handle_at(page, 1) == one

    page.get_by_role("button", name="Skip").click()
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("Decision recorded: skip").wait_for()
    other = page.context.new_page()  # a second tab opened after the decision
    other.goto(server.url)
    wait_ready(other)
    other.wait_for_function(f"() => {ROOT}.hill.isLocked()", timeout=60000)
    other.get_by_text("Decision recorded: skip").wait_for()
    assert [d.decision for d in decisions] == ["skip"]
    time.sleep(0.2)
    assert page.errors == []


def test_second_gate_context_panel_shows_guided_against_baseline(browser, tmp_path):
    """Gate 8 after an edit at gate 4: the chart fits the side panel, the figures are right."""
    context = replace(
        synthetic_context(tmp_path / "edits.parquet", gate_epoch=8), last_edit_epoch=4
    )
    g, b = context.val_accuracy, context.baseline_val_accuracy
    assert len(g) == len(b) == 8
    since = 100 * ((g[7] - b[7]) - (g[3] - b[3]))
    since_text = f"{since:+.2f} pp".replace("-", "\u2212")
    with launch_gate(synthetic_snapshot(300), context, lambda d: None, GateConfig()) as server:
        bctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = bctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        wait_ready(page)
        chart = page.locator("svg.hill-val-chart")
        chart.wait_for(state="visible")
        geometry = chart.evaluate(
            """svg => {
              const panel = svg.closest('.column') || svg.closest('.hill-ctx');
              const box = r => ({left: r.left, right: r.right, width: r.width, height: r.height});
              return {
                chart: box(svg.getBoundingClientRect()),
                panel: box(panel.getBoundingClientRect()),
                ctx: box(svg.closest('.hill-ctx').getBoundingClientRect()),
                series: Array.from(svg.querySelectorAll('polyline[data-series]')).map(p => [
                  p.dataset.series, Number(p.dataset.points), p.points.numberOfItems,
                ]),
              };
            }"""
        )
        page_text = page.inner_text("body")
        bctx.close()
    chart_box, panel = geometry["chart"], geometry["panel"]
    assert chart_box["width"] > 200 and 100 <= chart_box["height"] <= 180, chart_box
    assert chart_box["left"] >= panel["left"] - 0.5 and chart_box["right"] <= panel["right"] + 0.5
    assert chart_box["right"] <= geometry["ctx"]["right"] + 0.5
    assert sorted(geometry["series"]) == [["baseline", 8, 8], ["gap", 8, 8], ["guided", 8, 8]]
    assert f"Since your last edit (gate 4): guided {since_text} against the baseline" in page_text
    assert f"Now: guided {100 * g[7]:.1f} % · baseline {100 * b[7]:.1f} %" in page_text
    assert errors == []


def rich_snapshot() -> pd.DataFrame:
    """2,000 points with an 8x8 picture each, and class 9 sitting on class 3 (hidden centres)."""
    snapshot = synthetic_snapshot(2000)
    labels = snapshot["label"].to_numpy()
    on3 = snapshot.loc[labels == 3, ["x", "y"]].to_numpy()
    snapshot.loc[labels == 9, ["x", "y"]] = on3[: (labels == 9).sum()] + 0.05
    rng = np.random.default_rng(3)
    pictures = [torch.tensor(rng.random((1, 8, 8)), dtype=torch.float32) for _ in range(8)]
    snapshot["item"] = [item_preview(pictures[k % 8]) for k in range(len(snapshot))]
    return snapshot


@pytest.fixture
def rich(browser, tmp_path):
    """A page on :func:`rich_snapshot` at 1400 x 900; yields (page, snapshot)."""
    snapshot = rich_snapshot()
    context = synthetic_context(tmp_path / "edits.parquet")
    with launch_gate(snapshot, context, lambda d: None, GateConfig()) as server:
        bctx = browser.new_context(viewport={"width": 1400, "height": 900})
        page = bctx.new_page()
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(server.url)
        wait_ready(page)
        yield page, snapshot
        bctx.close()


def test_hover_shows_the_item_its_label_and_prediction(rich):
    page, snapshot = rich
    wrong = (snapshot["label"] != snapshot["pred"]).to_numpy()
    assert page.evaluate(f"() => {ROOT}.hill.wrongCount()") == wrong.sum()
    assert f"misclassified: {wrong.sum()} of 2000" in page.inner_text("#hill-plot .hill-legend")
    label = 5
    rows = np.flatnonzero((snapshot["label"].to_numpy() == label) & wrong)
    i = page.evaluate(
        f"""rows => {{
          const h = {ROOT}.hill;
          for (const i of rows) {{
            const [x, y] = h.toClient(...h.point(i));
            const hit = h.pickAt(x, y);
            if (hit.kind === 'point' && hit.index === i) return i;
          }}
          return -1;
        }}""",
        rows.tolist(),
    )
    assert i >= 0
    page.mouse.move(*page.evaluate(f"i => {ROOT}.hill.toClient(...{ROOT}.hill.point(i))", i))
    thumb = page.locator("#hill-plot .hill-tip img.hill-thumb")
    thumb.wait_for()
    assert thumb.get_attribute("src") == snapshot["item"].iloc[i]
    assert thumb.evaluate("img => img.naturalWidth") == 8
    assert thumb.bounding_box()["width"] >= 60  # 8x8 shown at 64 px
    text = page.evaluate(f"() => {ROOT}.hill.tipText()")
    pred = int(snapshot["pred"].iloc[i])
    assert f"sample {snapshot['sample_id'].iloc[i]}" in text
    assert f"label {label} · predicted {pred}" in text and "misclassified" in text
    assert page.errors == []


def test_confusion_cell_highlights_its_points(rich):
    page, snapshot = rich
    labels, pred = snapshot["label"].to_numpy(), snapshot["pred"].to_numpy()
    cell = page.locator(".hill-confusion td[data-true='4'][data-pred='5']")
    assert cell.bounding_box()["y"] + cell.bounding_box()["height"] <= 900  # above the fold
    table = page.locator(".hill-confusion").bounding_box()
    assert table["y"] + table["height"] <= 900
    cell.click()
    got = page.evaluate(f"() => {ROOT}.hill.highlighted()")
    assert got == {"t": 4, "p": 5, "count": int(((labels == 4) & (pred == 5)).sum())}
    assert "hill-cell-on" in cell.get_attribute("class")
    said = (  # the matrix counts validation items, the map shows snapshot points: both
        f"{got['count']} snapshot points of 4 predicted as 5; the cell counts "
        f"{cell.get_attribute('data-count')} validation item"
    )
    assert said in page.inner_text(".hill-status")
    page.keyboard.press("Escape")
    assert page.evaluate(f"() => {ROOT}.hill.highlighted()") is None
    assert "hill-cell-on" not in (cell.get_attribute("class") or "")
    page.locator(".hill-confusion td[data-true='2'][data-pred='2']").click()
    page.locator(".hill-confusion td[data-true='2'][data-pred='2']").click()  # again: off
    assert page.evaluate(f"() => {ROOT}.hill.highlighted()") is None


def drawn(page, c):
    return page.evaluate(f"c => {ROOT}.hill.handleClient(c)", c)


def assert_reachable(page, classes):
    """Each class's handle is drawn apart from the others and picks that class; labels clear."""
    spots = {c: drawn(page, c) for c in classes}
    for a in classes:
        hit = page.evaluate(f"([x, y]) => {ROOT}.hill.pickAt(x, y)", spots[a])
        assert hit == {"kind": "class", "index": a}
        for b in classes:
            if a < b:
                assert np.hypot(*np.subtract(spots[a], spots[b])) >= 24, (a, b)
    boxes = [page.evaluate(f"c => {ROOT}.hill.labelBox(c)", c) for c in range(10)]
    for k, (x, y, w, h) in enumerate(boxes):
        for x2, y2, w2, h2 in boxes[k + 1 :]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, boxes


def test_overlapping_and_merged_centres_stay_reachable(rich):
    page, _ = rich
    assert page.evaluate(f"() => [{ROOT}.hill.fanned(3), {ROOT}.hill.fanned(9)]") == [True, True]
    assert_reachable(page, [3, 9])
    three = page.evaluate(f"() => {ROOT}.hill.handle(3)")
    nine = page.evaluate(f"() => {ROOT}.hill.handle(9)")
    drag(page, drawn(page, 9), (90, 0))  # grab 9 where it is drawn: 9 moves, 3 stays
    assert page.evaluate(f"() => {ROOT}.hill.handle(3)") == three
    per_px = page.evaluate(f"() => {ROOT}.hill.dataPerPixel()")
    moved = page.evaluate(f"() => {ROOT}.hill.handle(9)")
    assert moved[0] - nine[0] == pytest.approx(90 * per_px, abs=per_px)

    one, two = handle_at(page, 1), handle_at(page, 2)
    drag(page, one, (two[0] - one[0], two[1] - one[1]))  # drop 1 on 2: merge
    page.get_by_text("Merged 1 into 2").wait_for()
    assert page.evaluate(f"() => {ROOT}.hill.handle(1)") == pytest.approx(
        page.evaluate(f"() => {ROOT}.hill.handle(2)"), abs=1e-9
    )
    assert_reachable(page, [1, 2])
    drag(page, drawn(page, 1), (0, 80))  # and 1 can be pulled out again
    # fanning is laid out when the next frame is drawn, not at the drop
    page.wait_for_function(f"() => {ROOT}.hill.fanned(1) === false", timeout=60000)
    assert page.errors == []


def test_ctrl_z_anywhere_but_in_text_fields_and_the_scale_target(rich):
    page, snapshot = rich
    scale_class(page, "5", 0.4)
    drag(page, handle_at(page, 6), (40, 30))  # moving another class keeps the slider on 5
    assert page.evaluate(f"() => {ROOT}.hill.selectedClass()") == 5
    assert page.input_value("#hill-plot .hill-scale-class") == "5"
    assert page.input_value("#hill-plot .hill-scale") == "0.4"
    assert page.evaluate(f"() => {ROOT}.hill.undoDepth()") == 2

    page.locator(".hill-ctx h3").click()  # focus away from the plot
    page.keyboard.press("Control+z")
    assert page.evaluate(f"() => {ROOT}.hill.undoDepth()") == 1
    page.evaluate(
        "() => { const t = document.createElement('input'); t.id = 'typing'; "
        "document.body.append(t); }"
    )
    page.locator("#typing").focus()
    page.keyboard.press("Control+z")  # undoes typing there, not the layout
    assert page.evaluate(f"() => {ROOT}.hill.undoDepth()") == 1
    page.locator("#hill-plot .hill-scale").focus()
    page.keyboard.press("Control+z")  # the slider is not a text field
    assert page.evaluate(f"() => {ROOT}.hill.undoDepth()") == 0

    x, y = handle_at(page, 6)
    page.mouse.click(x, y)  # a click (no drag) on a centre chooses it for the slider
    assert page.input_value("#hill-plot .hill-scale-class") == "6"
    assert page.input_value("#hill-plot .hill-scale") == "1"
    assert page.errors == []


def wait_answering(url: str, runner: threading.Thread, timeout_s: float = 180.0) -> None:
    """Until the page's server, starting in ``runner``, answers (a loaded machine takes long)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=60).close()
            return
        except OSError:  # not listening yet (refused), or reset while starting
            assert runner.is_alive() and time.monotonic() < deadline, "the gate did not start"
            time.sleep(0.2)


def test_snapshot_gate_confirm_reaches_every_open_page(browser, tmp_path, capsys):
    """``hill gate --snapshot`` + Confirm: the deciding tab gets its reply, a tab in the same
    browser and one in another lock with the decision, then the command ends."""
    snapshot = synthetic_snapshot(300)
    path = write_snapshot(tmp_path / "snap.parquet", snapshot, gate_epoch=5, run_id="r7")
    port = free_port("127.0.0.1")
    cfg = Config().replace(**{"gate.port": port, "gate.timeout_s": 120})
    done = []
    runner = threading.Thread(
        target=lambda: done.append(serve_snapshot_file(path, cfg, tmp_path / "out"))
    )
    runner.start()
    url = f"http://127.0.0.1:{port}/"
    try:
        pages = []
        here = browser.new_context(viewport={"width": 1400, "height": 1000})
        elsewhere = browser.new_context(viewport={"width": 1400, "height": 1000})
        for bctx in (here, here, elsewhere):
            page = bctx.new_page()
            page.errors = []
            page.on("pageerror", lambda e, page=page: page.errors.append(str(e)))
            wait_answering(url, runner)
            page.goto(url)
            wait_ready(page)
            pages.append(page)
        for page in pages:  # every tab has polled the status once: the server knows it
            page.wait_for_function(f"() => {ROOT}.hill.statusReplies() >= 1", timeout=60000)
        deciding, sibling, other = pages
        deciding.get_by_role("button", name="Approve").click()
        deciding.get_by_role("button", name="Confirm").click()
        deciding.get_by_text("Decision recorded: approve").wait_for(timeout=60000)
        for name, page in zip(("deciding", "sibling", "other"), pages, strict=True):
            page.wait_for_function(f"() => {ROOT}.hill.isLocked()", timeout=60000)
            banner = page.locator("#hill-plot .hill-lock")
            try:
                banner.get_by_text("Recorded approve at").wait_for(timeout=60000)
            except Exception:
                raise AssertionError(f"{name} tab locked with: {banner.inner_text()!r}") from None
            assert "no run waits on this snapshot" in banner.inner_text()
        for page in (sibling, other):
            page.locator("#hill-decision-note").get_by_text(
                "Decision recorded: approve."
            ).wait_for()
            assert not page.get_by_role("button", name="Approve").is_visible()
        runner.join(timeout=60)
        assert not runner.is_alive()
        time.sleep(4)  # the server is gone: nothing may turn into an error now
        for page in pages:
            assert "Connection to the server was lost" not in page.inner_text("body")
            assert page.errors == []
        here.close()
        elsewhere.close()
    finally:
        runner.join(timeout=30)
    out = capsys.readouterr().out
    assert "Decision: approve" in out
    edits, meta = read_edits(tmp_path / "out" / "gate_0005.parquet", snapshot)
    assert meta.decision == "approve"

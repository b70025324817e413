"""App tier, real browser: headless Debian Chromium drives the gate page with real mouse events."""

from __future__ import annotations

import time
from dataclasses import replace
from urllib.parse import urlsplit

import numpy as np
import pytest
from app_helpers import (
    browser_missing_reason,
    browser_required,
    launch_chromium,
    synthetic_context,
    synthetic_snapshot,
)

from hill_core.config import GateConfig
from hill_core.edits import read_edits
from interaction_app.server import launch_gate

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = "document.querySelector('#hill-plot .hill-root')"


@pytest.fixture(scope="module")
def browser():
    reason = browser_missing_reason()
    if reason:
        if browser_required():
            pytest.fail(f"HILL_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()


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


def wait_ready(page):
    """Wait for the plot, the fonts and a settled layout: a shifting canvas would miss a handle."""
    page.wait_for_function(f"() => {ROOT} && {ROOT}.hill && {ROOT}.hill.perf.draws > 0")
    page.evaluate("() => document.fonts.ready.then(() => true)")
    page.wait_for_function(
        f"""() => new Promise(done => {{
          const top = () => {ROOT}.querySelector('canvas').getBoundingClientRect().top;
          const t0 = top();
          setTimeout(() => done(top() === t0), 200);
        }})"""
    )


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
    rows = np.flatnonzero(snapshot["label"].to_numpy() == label)
    return page.evaluate(
        f"""rows => {{
          const h = {ROOT}.hill;
          const handles = Array.from({{length: 10}}, (_, c) => h.toClient(...h.handle(c)));
          for (const i of rows) {{
            const [x, y] = h.toClient(...h.point(i));
            const hit = h.pickAt(x, y);
            const far = handles.every(([a, b]) => Math.hypot(a - x, b - y) > 40);
            if (hit.kind === 'point' && hit.index === i && far) return i;
          }}
          return -1;
        }}""",
        rows.tolist(),
    )


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
    other.wait_for_function(f"() => {ROOT}.hill.isLocked()", timeout=10000)
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
    assert sorted(geometry["series"]) == [["baseline", 8, 8], ["guided", 8, 8]]
    assert f"Since your last edit (gate 4): guided {since_text} against the baseline" in page_text
    assert f"Now: guided {100 * g[7]:.1f} % · baseline {100 * b[7]:.1f} %" in page_text
    assert errors == []

"""App tier, real browser: the gate page's fast drawing against its one-path-per-point
reference, highlighted points above the handles, and handles that stay grabbable."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
from app_helpers import (
    PLOT_ROOT,
    free_point,
    module_browser,
    synthetic_context,
    synthetic_snapshot,
    wait_ready,
)

from hill_core.config import GateConfig
from interaction_app.layout import class_colors
from interaction_app.server import launch_gate

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = PLOT_ROOT  # the plot's element, in page JS
HANDLE_R = 12  # px, as gate_state.js: two handles closer than 2 * HANDLE_R overlap

# Pixels of the fast canvas against the reference's, as seen over white (RGB, 0-255): sprites
# land within 1/8 device px of a point, so the edges of rings differ by a little from the arcs.
PIXEL_TOLERANCE = 64  # a pixel counts as different when a channel differs by more than this
MAX_DIFFERENT = 0.005  # of all pixels
MAX_MEAN_DIFF = 2.0  # mean absolute difference per channel (0-255); ~1.2 at rest, dpr 1


@pytest.fixture(scope="module")
def browser():
    yield from module_browser()


@contextmanager
def gate_page(browser, snapshot, tmp_path, num_classes=10, dpr=1):
    """A page on a gate of ``snapshot`` at 1400 x 900 and device pixel ratio ``dpr``."""
    context = synthetic_context(tmp_path / "edits.parquet", num_classes=num_classes)
    with launch_gate(snapshot, context, lambda d: None, GateConfig()) as server:
        bctx = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=dpr)
        page = bctx.new_page()
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(server.url)
        wait_ready(page)
        try:
            yield page
        finally:
            bctx.close()


def ringed_snapshot() -> pd.DataFrame:
    """2,000 points, 70 % misclassified (ringed); 60 relabelled and 40 excluded at an earlier
    gate (drawn as corrected)."""
    snapshot = synthetic_snapshot(2000, wrong=0.7)
    labels = snapshot["label"].to_numpy()
    snapshot["current_label"] = labels.copy()
    snapshot.loc[10:69, "current_label"] = (labels[10:70] + 2) % 10
    snapshot["excluded"] = False
    snapshot.loc[100:139, "excluded"] = True
    return snapshot


def drag_by(page, start, offset, steps=8):
    """Press at ``start`` (client px), move by ``offset`` in steps, release: real mouse events."""
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + offset[0], start[1] + offset[1], steps=steps)
    page.mouse.up()


def compare_with_reference(page, redraw=True) -> dict:
    """How far the fast picture is from the reference's, on the page's canvas: the fast path
    drawn from scratch (``redraw``), or the frame the page drew last (mid-drag: from its cached
    layer); then the reference."""
    return page.evaluate(
        f"""([tol, redraw]) => {{
          const h = {ROOT}.hill, canvas = {ROOT}.querySelector('canvas');
          const g = canvas.getContext('2d'), W = canvas.width, H = canvas.height;
          if (redraw) h.redraw();
          const b = g.getImageData(0, 0, W, H).data;
          h.drawReference();
          const a = g.getImageData(0, 0, W, H).data;
          // As a person sees them: over the page's white background.
          const seen = (d, k, j) => 255 - (d[k + 3] / 255) * (255 - d[k + j]);
          let different = 0, sum = 0, inked = 0;
          for (let k = 0; k < a.length; k += 4) {{
            let worst = 0;
            for (let j = 0; j < 3; j++) {{
              const d = Math.abs(seen(a, k, j) - seen(b, k, j));
              sum += d; worst = Math.max(worst, d);
            }}
            if (worst > tol) different += 1;
            if (a[k + 3] > 0) inked += 1;
          }}
          return {{ different: different / (W * H), mean: sum / (3 * W * H), inked: inked / (W * H),
                    scale: W / canvas.clientWidth }};
        }}""",
        [PIXEL_TOLERANCE, redraw],
    )


def point_client(page, i):
    return page.evaluate(f"i => {ROOT}.hill.toClient(...{ROOT}.hill.point(i))", i)


@pytest.mark.parametrize("dpr", [1, 2])
def test_fast_drawing_matches_the_reference(browser, tmp_path, dpr):
    snapshot = ringed_snapshot()
    with gate_page(browser, snapshot, tmp_path, dpr=dpr) as page:
        assert page.evaluate(f"() => {ROOT}.hill.wrongCount()") >= 0.6 * len(snapshot)
        c3 = page.evaluate(f"() => {ROOT}.hill.handleClient(3)")
        drag_by(page, c3, (50, 30))  # a moved class: its trail, and its points elsewhere
        page.wait_for_function(f"() => {ROOT}.hill.undoDepth() === 1")
        labels = snapshot["label"].to_numpy()
        for k, i in enumerate(free_point(page, np.flatnonzero(labels == c)) for c in (6, 7)):
            assert i >= 0
            drag_by(page, point_client(page, i), (25, -20 + 40 * k))  # moved points: haloes
        page.wait_for_function(f"() => {ROOT}.hill.undoDepth() === 3")
        got = compare_with_reference(page)
        assert got["scale"] == pytest.approx(dpr, abs=0.01)  # device pixels per CSS px
        assert got["inked"] > 0.05, got  # the points are drawn at all
        assert got["different"] <= MAX_DIFFERENT and got["mean"] <= MAX_MEAN_DIFF, got
        page.evaluate(f"() => {ROOT}.hill.highlight(4, 5)")  # faded points, a highlight
        got = compare_with_reference(page)
        assert got["different"] <= MAX_DIFFERENT and got["mean"] <= MAX_MEAN_DIFF, got
        assert page.errors == []


def test_drag_frames_from_the_cached_layer_match_the_reference(browser, tmp_path):
    """Mid-drag the page draws the points a drag cannot move from a cached layer and the
    dragged class on top (so only where it covers other points may the two differ a little);
    once dropped, the fast picture is the reference's again."""
    snapshot = ringed_snapshot()
    with gate_page(browser, snapshot, tmp_path) as page:
        x, y = page.evaluate(f"() => {ROOT}.hill.handleClient(5)")
        page.mouse.move(x, y)
        page.mouse.down()
        for k in range(1, 6):
            draws = page.evaluate(f"() => {ROOT}.hill.perf.draws")
            page.mouse.move(x + 12 * k, y + 6 * k)
            page.wait_for_function(f"n => {ROOT}.hill.perf.draws > n", arg=draws)
            # the class's points go with the pointer, in every frame
            got = page.evaluate(f"() => {ROOT}.hill.handleClient(5)")
            assert got == pytest.approx([x + 12 * k, y + 6 * k], abs=1)
            got = compare_with_reference(page, redraw=False)
            assert got["different"] <= 4 * MAX_DIFFERENT and got["mean"] <= MAX_MEAN_DIFF, got
        page.mouse.up()
        page.wait_for_function(f"() => {ROOT}.hill.undoDepth() === 1")
        got = compare_with_reference(page)
        assert got["different"] <= MAX_DIFFERENT and got["mean"] <= MAX_MEAN_DIFF, got
        samples = page.evaluate(f"() => {ROOT}.hill.paintMs.slice()")
        assert len(samples) >= 5 and all(s > 0 for s in samples)  # event to frame painted
        assert page.errors == []


def hex_rgb(colour: str) -> list[int]:
    return [int(colour[k : k + 2], 16) for k in (1, 3, 5)]


def test_highlighted_points_are_drawn_above_handles_and_labels(browser, tmp_path):
    """A point of class 4 predicted as 5 sits on class 5's centre: highlighted, it shows."""
    snapshot = synthetic_snapshot(2000)
    labels, pred = snapshot["label"].to_numpy(), snapshot["pred"].to_numpy()
    centre5 = snapshot.loc[labels == 5, ["x", "y"]].mean().to_numpy()
    i = int(np.flatnonzero((labels == 4) & (pred == 5))[0])
    snapshot.loc[i, ["x", "y"]] = centre5  # right under class 5's handle
    with gate_page(browser, snapshot, tmp_path) as page:

        def pixel():
            return page.evaluate(
                f"""i => {{
                  const h = {ROOT}.hill, canvas = {ROOT}.querySelector('canvas');
                  const b = canvas.getBoundingClientRect(), [x, y] = h.toClient(...h.point(i));
                  const s = canvas.width / b.width;
                  const d = canvas.getContext('2d').getImageData(
                    Math.round((x - b.left) * s), Math.round((y - b.top) * s), 1, 1).data;
                  return [d[0], d[1], d[2]];
                }}""",
                i,
            )

        assert page.evaluate(f"() => {ROOT}.hill.fanned(5)") is False
        colours = class_colors(10)
        assert pixel() == pytest.approx(hex_rgb(colours[5]), abs=8)  # the handle covers it
        page.evaluate(f"() => {{ {ROOT}.hill.highlight(4, 5); {ROOT}.hill.redraw(); }}")
        assert pixel() == pytest.approx(hex_rgb(colours[4]), abs=8)  # on top, in its class
        assert page.errors == []


def drawn(page, c):
    return page.evaluate(f"c => {ROOT}.hill.handleClient(c)", c)


def held_at(page, target):
    """Move the pressed pointer to ``target`` (client px) and wait for a frame drawn after it."""
    draws = page.evaluate(f"() => {ROOT}.hill.perf.draws")
    page.mouse.move(*target, steps=6)
    page.wait_for_function(f"n => {ROOT}.hill.perf.draws > n", arg=draws)


def assert_no_overlap(page, num_classes):
    """Every drawn handle apart from every other (2 * HANDLE_R px), each picking its class."""
    spots = [drawn(page, c) for c in range(num_classes)]
    for a in range(num_classes):
        hit = page.evaluate(f"([x, y]) => {ROOT}.hill.pickAt(x, y)", spots[a])
        assert hit == {"kind": "class", "index": a}
        for b in range(a + 1, num_classes):
            gap = float(np.hypot(*np.subtract(spots[a], spots[b])))
            assert gap >= 2 * HANDLE_R, (a, b, gap)


def test_a_grabbed_fanned_handle_stays_under_the_pointer(browser, tmp_path):
    """Class 9 sits on class 3 (both fanned), then 1 is merged into 2: each grabbed fanned
    handle follows the pointer exactly for the whole drag, and its class moves by as much."""
    snapshot = synthetic_snapshot(2000)
    labels = snapshot["label"].to_numpy()
    on3 = snapshot.loc[labels == 3, ["x", "y"]].to_numpy()
    snapshot.loc[labels == 9, ["x", "y"]] = on3[: (labels == 9).sum()] + 0.05
    with gate_page(browser, snapshot, tmp_path) as page:
        assert page.evaluate(f"() => {ROOT}.hill.fanned(9)") is True
        per_px = page.evaluate(f"() => {ROOT}.hill.dataPerPixel()")
        start, centre = drawn(page, 9), page.evaluate(f"() => {ROOT}.hill.handle(9)")
        page.mouse.move(*start)
        page.mouse.down()
        for dx, dy in [(5, 3), (30, -10), (90, 0)]:
            target = (start[0] + dx, start[1] + dy)
            held_at(page, target)
            assert drawn(page, 9) == pytest.approx(target, abs=1)
        page.mouse.up()
        moved = page.evaluate(f"() => {ROOT}.hill.handle(9)")
        assert moved[0] - centre[0] == pytest.approx(90 * per_px, abs=per_px)

        one, two = drawn(page, 1), drawn(page, 2)
        drag_by(page, one, (two[0] - one[0], two[1] - one[1]))  # drop 1 on 2: merge
        page.get_by_text("Merged 1 into 2").wait_for()
        page.wait_for_function(f"() => {ROOT}.hill.fanned(1)")  # the frame after the drop
        start = drawn(page, 1)
        page.mouse.move(*start)
        page.mouse.down()
        for dx, dy in [(2, 2), (-20, 15), (0, 80)]:
            target = (start[0] + dx, start[1] + dy)
            held_at(page, target)
            assert drawn(page, 1) == pytest.approx(target, abs=1)
        page.mouse.up()
        assert page.errors == []


def test_fanned_handles_never_overlap_another_handle(browser, tmp_path):
    """After 1 is merged into 2, class 8 is dropped 34 px above them: the fan of {1, 2} put
    handle 1 15 px above their centre, 19 px from 8. The three are fanned together instead."""
    with gate_page(browser, synthetic_snapshot(2000), tmp_path) as page:
        one, two = drawn(page, 1), drawn(page, 2)
        drag_by(page, one, (two[0] - one[0], two[1] - one[1]))
        page.get_by_text("Merged 1 into 2").wait_for()
        page.wait_for_function(f"() => {ROOT}.hill.fanned(1)")
        centre = page.evaluate(f"() => {ROOT}.hill.toClient(...{ROOT}.hill.handle(2))")
        eight = drawn(page, 8)
        drag_by(page, eight, (centre[0] - eight[0], centre[1] - 34 - eight[1]))
        page.get_by_text("Moved class 8").wait_for()
        page.wait_for_function(f"() => [1, 2, 8].every({ROOT}.hill.fanned)")  # fanned together
        assert_no_overlap(page, 10)
        assert page.errors == []


def test_crowded_centres_of_20_classes_never_overlap(browser, tmp_path):
    """20 class centres scattered in a small square (about 220 px wide, so chains of near
    centres form), each class spread around its own."""
    snapshot = synthetic_snapshot(4000, num_classes=20)
    labels = snapshot["label"].to_numpy()
    centres = np.random.default_rng(7).uniform(-1, 1, size=(20, 2))  # view units
    own = snapshot[["x", "y"]] - snapshot.groupby("label")[["x", "y"]].transform("mean")
    snapshot[["x", "y"]] = centres[labels] + own.to_numpy()
    with gate_page(browser, snapshot, tmp_path, num_classes=20) as page:
        assert sum(page.evaluate(f"() => [...Array(20).keys()].map({ROOT}.hill.fanned)")) >= 4
        assert_no_overlap(page, 20)
        assert page.errors == []

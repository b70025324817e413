"""App tier, real browser: after a decision every open tab shows what was recorded.

Three tabs on one gate (two in one browser, told by BroadcastChannel; one in another, told by
its status poll); one of them decides. Each tab then shows the recorded layout, whatever it
had edited itself, hides the editing hints, keeps the lock banner off the points, and says
what the decision does (an unedited approve teaches no layout).
"""

from __future__ import annotations

import numpy as np
import pytest
from app_helpers import PLOT_ROOT, module_browser, synthetic_context, synthetic_snapshot, wait_ready

from hill_core.config import GateConfig
from hill_core.edits import read_edits
from interaction_app.server import launch_gate

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = PLOT_ROOT
WAIT_MS = 60000  # a condition's limit on a loaded machine, not an expected time


@pytest.fixture(scope="module")
def browser():
    yield from module_browser()


@pytest.fixture
def gate(tmp_path):
    """A 2,000-point gate; yields (server, snapshot, context)."""
    snapshot = synthetic_snapshot(2000)
    context = synthetic_context(tmp_path / "edits.parquet")
    with launch_gate(snapshot, context, lambda _: None, GateConfig()) as server:
        yield server, snapshot, context


@pytest.fixture
def tabs(browser, gate):
    """Deciding tab, its sibling (same browser) and a tab in another browser, each polled once."""
    server = gate[0]
    here = browser.new_context(viewport={"width": 1400, "height": 900})
    elsewhere = browser.new_context(viewport={"width": 1400, "height": 900})
    pages = []
    for bctx in (here, here, elsewhere):
        page = bctx.new_page()
        page.errors = []
        page.on("pageerror", lambda e, page=page: page.errors.append(str(e)))
        page.goto(server.url)
        wait_ready(page)
        page.wait_for_function(f"() => {ROOT}.hill.statusReplies() >= 1", timeout=WAIT_MS)
        pages.append(page)
    yield pages
    here.close()
    elsewhere.close()


def drag_class(page, c: int, offset: tuple[float, float]) -> None:
    """Real mouse events: press on class ``c``'s handle, move by ``offset`` px, release."""
    x, y = page.evaluate(f"c => {ROOT}.hill.handleClient(c)", c)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + offset[0], y + offset[1], steps=10)
    page.mouse.up()


def decide(page, button: str) -> None:
    page.get_by_role("button", name=button).click()
    page.get_by_role("button", name="Confirm").click()


def shown_positions(page, n: int) -> np.ndarray:
    """(n, 2) positions the tab draws, data units."""
    return np.array(
        page.evaluate(f"n => Array.from({{length: n}}, (_, i) => {ROOT}.hill.point(i))", n)
    )


def wait_shows_recorded(page) -> None:
    page.wait_for_function(f"() => {ROOT}.hill.shownRecorded()", timeout=WAIT_MS)


def banner_text(page) -> str:
    return page.locator("#hill-plot .hill-lock").inner_text()


def assert_locked_view(page) -> None:
    """No editing hints, and the banner above the plot rather than over its points."""
    assert not page.locator("#hill-plot .hill-status").is_visible()
    banner = page.locator("#hill-plot .hill-lock").bounding_box()
    canvas = page.locator("#hill-plot canvas").bounding_box()
    assert banner["y"] + banner["height"] <= canvas["y"], (banner, canvas)


def test_every_tab_shows_the_recorded_edited_layout(tabs, gate):
    _, snapshot, context = gate
    deciding, sibling, other = tabs
    drag_class(sibling, 5, (-50, 40))  # edits the deciding tab never records
    drag_class(other, 7, (40, 40))
    drag_class(deciding, 3, (60, -40))
    decide(deciding, "Approve")
    edits, _ = read_edits_when_written(deciding, context, snapshot)
    recorded = edits[["x_after", "y_after"]].to_numpy()
    assert (edits["x_after"] != edits["x_before"]).sum() > 0  # class 3 moved
    for name, page in zip(("deciding", "sibling", "other"), tabs, strict=True):
        wait_shows_recorded(page)
        np.testing.assert_allclose(
            shown_positions(page, len(snapshot)), recorded, atol=1e-9, err_msg=name
        )
        assert "Recorded approve at" in banner_text(page), name
        assert "edited layout as its teacher" in banner_text(page), name
        assert_locked_view(page)
        assert page.errors == [], name


def test_unedited_approve_says_no_teacher_and_every_tab_shows_the_models_layout(tabs, gate):
    _, snapshot, context = gate
    deciding, sibling, other = tabs
    drag_class(other, 7, (40, 40))  # never recorded: the deciding tab moves nothing
    deciding.get_by_role("button", name="Approve").click()
    deciding.get_by_text("cross-entropy alone").first.wait_for(timeout=WAIT_MS)
    confirm = deciding.locator("#hill-decision-confirm").filter(has_text="Approve?").first
    assert "edited layout" not in confirm.inner_text()
    deciding.get_by_role("button", name="Confirm").click()
    model = snapshot[["x", "y"]].to_numpy()
    for name, page in zip(("deciding", "sibling", "other"), tabs, strict=True):
        wait_shows_recorded(page)
        np.testing.assert_allclose(shown_positions(page, len(snapshot)), model, err_msg=name)
        assert "cross-entropy alone" in banner_text(page), name
        assert "edited layout" not in banner_text(page), name
        assert "the model's own, unedited" in page.locator("#hill-plot .hill-readout").inner_text()
        assert_locked_view(page)


def test_stop_banner_names_the_recorded_stop_at_once(tabs):
    deciding = tabs[0]
    # Every text the banner ever shows, from before the click on.
    deciding.evaluate(
        f"""() => {{
          const banner = {ROOT}.querySelector('.hill-lock');
          window.bannerTexts = [];
          new MutationObserver(() => window.bannerTexts.push(banner.textContent))
            .observe(banner, {{ childList: true, characterData: true, subtree: true }});
        }}"""
    )
    decide(deciding, "Stop run")
    deciding.wait_for_function(f"() => {ROOT}.hill.isLocked()", timeout=WAIT_MS)
    deciding.locator("#hill-plot .hill-lock").get_by_text("Recorded stop at").wait_for(
        timeout=WAIT_MS
    )
    texts = deciding.evaluate("() => window.bannerTexts")
    assert texts and all(t.startswith("Recorded stop at") for t in texts), texts


def read_edits_when_written(page, context, snapshot):
    """The edits file, once the deciding tab has heard that it is written."""
    page.get_by_text("Decision recorded: approve").first.wait_for(timeout=WAIT_MS)
    return read_edits(context.edits_path, snapshot)

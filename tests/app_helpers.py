"""Shared helpers for the gate-page tests and benchmark: synthetic snapshots and contexts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from interaction_app.context import GateContext

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def synthetic_snapshot(
    n: int, num_classes: int = 10, seed: int = 0, wrong: float = 0.1
) -> pd.DataFrame:
    """A digits-like snapshot: ``num_classes`` Gaussian blobs on a ring, view units ~ [-5, 5];
    a fraction ``wrong`` of the points is predicted as the next class (misclassified: ringed)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    angle = 2 * np.pi * labels / num_classes
    centers = np.stack([4 * np.cos(angle), 4 * np.sin(angle)], axis=1)  # (n, 2)
    xy = centers + rng.normal(scale=0.6, size=(n, 2))
    misclassified = rng.random(n) < wrong
    pred = np.where(misclassified, (labels + 1) % num_classes, labels)
    return pd.DataFrame(
        {
            "sample_id": np.arange(1000, 1000 + n, dtype=np.int64) * 3,  # ids are not row numbers
            "label": labels.astype(np.int64),
            "class_name": [str(c) for c in labels],
            "pred": pred.astype(np.int64),
            "x": xy[:, 0],
            "y": xy[:, 1],
        }
    )


def synthetic_context(edits_path: Path, num_classes: int = 10, gate_epoch: int = 4) -> GateContext:
    """A gate after ``gate_epoch`` of a made-up run: guided and lockstep-baseline accuracy
    histories of ``gate_epoch`` epochs each (equal up to the fork at epoch 4, the guided run a
    little below afterwards), a confusion matrix, and no edit active yet.
    """
    rng = np.random.default_rng(1)
    confusion = rng.integers(0, 6, size=(num_classes, num_classes))
    np.fill_diagonal(confusion, rng.integers(80, 120, size=num_classes))
    per_class = (np.diag(confusion) / confusion.sum(1)).tolist()
    epochs = np.arange(1, gate_epoch + 1)
    baseline = 0.955 - 0.245 * 0.55 ** (epochs - 1)  # 0.71, 0.82, 0.88, 0.91, ...
    drift = np.where(epochs > 4, -0.003 * (epochs - 4) + 0.002 * np.sin(epochs), 0.0)
    return GateContext(
        run_name="digits-guided",
        run_id="run0001",
        gate_epoch=gate_epoch,
        edits_path=Path(edits_path),
        config_hash="cafebabe12345678",
        class_names=[str(c) for c in range(num_classes)],
        val_accuracy=np.round(baseline + drift, 4).tolist(),
        per_class_accuracy=per_class,
        confusion=confusion.tolist(),
        baseline_val_accuracy=np.round(baseline, 4).tolist(),
    )


def browser_missing_reason() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "python package playwright is not installed"
    return None


def browser_required() -> bool:
    """CI sets HILL_REQUIRE_BROWSER=1: there a missing browser fails instead of skipping."""
    return os.environ.get("HILL_REQUIRE_BROWSER") == "1"


def launch_chromium(playwright):
    """Headless Debian Chromium; never a downloaded browser."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
        args=CHROMIUM_ARGS,
        headless=True,
    )


PLOT_ROOT = "document.querySelector('#hill-plot .hill-root')"  # the plot's element, in page JS


def module_browser():
    """A module's headless Chromium, for a ``yield from`` fixture: skipped without one, or a
    failure where ``HILL_REQUIRE_BROWSER=1`` (CI) says there must be one."""
    import pytest

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


@contextlib.contextmanager
def gate_page(snapshot, context, width: int = 1400, height: int = 1000):
    """A gate served in this process on ``snapshot`` and one Chromium page on it, drawn and
    settled (:func:`wait_ready`); yields ``(server, page)``. Decisions go nowhere."""
    from playwright.sync_api import sync_playwright

    from hill_core.config import GateConfig
    from interaction_app.server import launch_gate

    with (
        launch_gate(snapshot, context, lambda d: None, GateConfig()) as server,
        sync_playwright() as p,
    ):
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(server.url)
        wait_ready(page)
        yield server, page
        browser.close()


def free_point(page, rows) -> int:
    """The first of ``rows`` (snapshot row indices) that a press on it picks, 40 px or more
    from every class handle as drawn; -1 when none is."""
    return page.evaluate(
        f"""rows => {{
          const h = {PLOT_ROOT}.hill;
          const handles = Array.from({{length: h.classCount()}}, (_, c) => h.handleClient(c));
          for (const i of rows) {{
            const [x, y] = h.toClient(...h.point(i));
            const hit = h.pickAt(x, y);
            const far = handles.every(([a, b]) => Math.hypot(a - x, b - y) > 40);
            if (hit.kind === 'point' && hit.index === i && far) return i;
          }}
          return -1;
        }}""",
        [int(i) for i in rows],
    )


def scale_class(page, label: str, factor: float) -> None:
    """Pick class ``label`` in the scale dropdown and set its slider to ``factor``, as a person
    would (the slider's own input and change events)."""
    page.select_option("#hill-plot .hill-scale-class", label)
    page.evaluate(
        f"""() => {{
          const s = {PLOT_ROOT}.querySelector('.hill-scale');
          s.value = '{factor}';
          s.dispatchEvent(new Event('input'));
          s.dispatchEvent(new Event('change'));
        }}"""
    )


def wait_ready(page) -> None:
    """Wait for the plot, the fonts and a settled layout: a shifting canvas would miss a handle."""
    page.wait_for_function(
        f"() => {PLOT_ROOT} && {PLOT_ROOT}.hill && {PLOT_ROOT}.hill.perf.draws > 0"
    )
    page.evaluate("() => document.fonts.ready.then(() => true)")
    page.wait_for_function(
        f"""() => new Promise(done => {{
          const top = () => {PLOT_ROOT}.querySelector('canvas').getBoundingClientRect().top;
          const t0 = top();
          setTimeout(() => done(top() === t0), 200);
        }})"""
    )


def page_call(url: str, name: str, data) -> dict:
    """Make one of the page script's calls (opening, readout, status, item) as the script does:
    a POST of the argument as JSON to the page's ``api/page/<name>``."""
    request = urllib.request.Request(
        f"{url}api/page/{name}", json.dumps(data).encode(), {"Content-Type": "application/json"}
    )
    return json.loads(urllib.request.urlopen(request, timeout=60).read())

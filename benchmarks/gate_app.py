"""Gate page speed on 10,000 points: segment end to page, live readout, redraw while dragging.

    .venv/bin/python benchmarks/gate_app.py [--points 10000] [--json out.json]
        [--screenshot docs/gate_page.png]

Figures (benchmarks/report.py):

- segment end to gate page answering: from a written snapshot Parquet (with item previews, as
  the flow writes it) to the page's first HTTP 200: ``read_snapshot``, ``launch_gate`` (build and
  serve) and ``GET /``. Median of ``--startups`` pages started one after another in this process.
- readout per drag, as the browser sees it while dragging a class centre in Chromium (two
  drags, pooled); its p95, and per call in-process and over HTTP (a kept-alive connection, as
  the browser's), measured interleaved; the server-side compute during the drags, to say where
  the browser's time goes.
- redraw per frame while dragging, from the page's own performance counter.

The browser part needs /usr/bin/chromium and the playwright package (never a downloaded browser).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # shared synthetic data

from app_helpers import (  # noqa: E402
    browser_missing_reason,
    launch_chromium,
    scale_class,
    synthetic_context,
    synthetic_snapshot,
    wait_ready,
)
from report import Figure, add_json_argument, emit  # noqa: E402

from hill_core.config import GateConfig  # noqa: E402
from hill_core.edits import read_snapshot, write_snapshot  # noqa: E402
from interaction_app import layout  # noqa: E402
from interaction_app.layout import Readout  # noqa: E402
from interaction_app.server import launch_gate  # noqa: E402

ROOT = "document.querySelector('#hill-plot .hill-root')"
DRAG_STEPS = 120  # pointer moves per drag, 16 ms apart (~2 s of dragging at 60 events/s)


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Poll until the page answers 200."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.01)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def demo_ops(num_classes: int) -> dict:
    """An edit state like a drag produces: one class moved, one scaled, 20 points moved."""
    offsets = [[0.0, 0.0] for _ in range(num_classes)]
    offsets[3] = [1.2, -0.7]
    scales = [1.0] * num_classes
    scales[5] = 0.4
    moved = [[3000 + 3 * k, 0.1 * k, -0.1 * k] for k in range(20)]
    return {"offsets": offsets, "scales": scales, "moved": moved}


def percentile(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[int(q * (len(ordered) - 1))] if ordered else float("nan")


def spread(times: list[float], unit: str = "ms") -> str:
    """Median, 95th percentile and worst of a list of timings, as one phrase."""
    if not times:
        return "no samples"
    median, p95, worst = statistics.median(times), percentile(times, 0.95), max(times)
    return f"median {median:.1f} {unit}, p95 {p95:.1f} {unit}, worst {worst:.1f} {unit}"


# ---- segment end to page -------------------------------------------------------------------
def write_gate_snapshot(folder: Path, points: int) -> Path:
    """The gate's snapshot as the flow writes it: N rows with a digit preview each (~0.4 MB)."""
    snapshot = synthetic_snapshot(points)
    snapshot["item"] = digit_previews(snapshot["label"].tolist())
    return write_snapshot(folder / "snapshot_0004.parquet", snapshot, 4, "run0001")


def page_up_seconds(path: Path, context) -> tuple[float, object]:
    """Seconds from reading the snapshot file to the page's first 200 (``GET /``); the server
    is returned running."""
    t0 = time.perf_counter()
    snapshot, _ = read_snapshot(path)
    server = launch_gate(snapshot, context, lambda d: None, GateConfig())
    wait_http(server.url)
    return time.perf_counter() - t0, server


def startup_times(path: Path, context, repeats: int) -> list[float]:
    """``page_up_seconds`` of ``repeats`` pages, one after another (each closed before the next)."""
    times = []
    for _ in range(repeats):
        seconds, server = page_up_seconds(path, context)
        server.close(0)
        times.append(seconds)
    return times


# ---- readout -------------------------------------------------------------------------------
@contextmanager
def server_compute_ms():
    """Times every ``Readout`` call in this process (the page's server function included)."""
    samples: list[float] = []
    call = layout.Readout.__call__

    def timed(self, ops):
        t0 = time.perf_counter()
        try:
            return call(self, ops)
        finally:
            samples.append(1000 * (time.perf_counter() - t0))

    layout.Readout.__call__ = timed
    try:
        yield samples
    finally:
        layout.Readout.__call__ = call


class ReadoutOverHttp:
    """The plot's ``readout`` server function through /component_server, on one kept-alive
    connection (as the browser's fetch reuses its own)."""

    def __init__(self, url: str, ops: dict):
        config = json.loads(urllib.request.urlopen(f"{url}config").read())
        plot = next(c for c in config["components"] if c["props"].get("elem_id") == "hill-plot")
        self.body = json.dumps(
            {
                "session_hash": uuid.uuid4().hex,
                "component_id": plot["id"],
                "fn_name": "readout",
                "data": ops,
            }
        )
        where = urlsplit(url)
        self.connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)

    def __call__(self) -> dict:
        headers = {"Content-Type": "application/json"}
        self.connection.request("POST", "/gradio_api/component_server/", self.body, headers)
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"readout over HTTP: {response.status} {body[:200]!r}")
        return json.loads(body)


def interleaved_ms(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Milliseconds per call of each function, calling them in turn ``repeats`` times."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(1000 * (time.perf_counter() - t0))
    return times


def browser_drags(url: str, drags: int) -> dict:
    """Drag class 3's centre out and back ``drags`` times in Chromium; the page's readout round
    trips (from the call to its answer shown) and redraw times, pooled over the drags."""
    from playwright.sync_api import sync_playwright

    readouts, draws, seconds = [], [], 0.0
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_function(f"() => {ROOT} && {ROOT}.hill && {ROOT}.hill.perf.draws > 0")
        page.evaluate("() => document.fonts.ready.then(() => true)")
        page.wait_for_timeout(300)
        for k in range(drags):
            page.evaluate(
                f"() => {{ {ROOT}.hill.perf.samples.length = 0; "
                f"{ROOT}.hill.readoutPerf.samples.length = 0; }}"
            )
            seconds += drag_class(page, 3, 1 if k % 2 == 0 else -1)
            perf = page.evaluate(
                f"() => ({{draw: {ROOT}.hill.perf.samples.slice(), "
                f"readout: {ROOT}.hill.readoutPerf.samples.slice()}})"
            )
            readouts += perf["readout"]
            draws += perf["draw"]
        browser.close()
    return {"readout_ms": readouts, "draw_ms": draws, "fps": len(draws) / seconds}


def drag_class(page, c: int, sign: int) -> float:
    """One drag of class ``c``'s centre, ``DRAG_STEPS`` moves; returns its seconds. Waits for
    the last readout (the one after the drag, of the final layout) to come back."""
    x, y = page.evaluate(f"() => {ROOT}.hill.toClient(...{ROOT}.hill.handle({c}))")
    page.mouse.move(x, y)
    page.mouse.down()
    t0 = time.perf_counter()
    for k in range(1, DRAG_STEPS + 1):
        page.mouse.move(x + sign * k, y - sign * 0.5 * k)
        page.wait_for_timeout(16)
    seconds = time.perf_counter() - t0
    page.mouse.up()
    page.wait_for_timeout(400)
    return seconds


# ---- screenshot for the README -----------------------------------------------------------
def digit_previews(labels) -> list[str]:
    """A real scikit-learn digit of each point's class, as the snapshot's ``item`` previews."""
    import torch
    from sklearn.datasets import load_digits

    from hill_core.snapshot import item_preview

    digits = load_digits()
    by_class = [digits.images[digits.target == c] / 16.0 for c in range(10)]
    return [
        item_preview(torch.tensor(by_class[c][k % len(by_class[c])][None], dtype=torch.float32))
        for k, c in enumerate(labels)
    ]


def screenshot(path: Path) -> None:
    """The gate page with 10 digit-like classes, a small edit and a hovered misclassified point
    showing its digit, for the README."""
    from playwright.sync_api import sync_playwright

    snapshot = synthetic_snapshot(2000)
    snapshot["item"] = digit_previews(snapshot["label"].tolist())
    # The suspects panel: misclassified points first, as the out-of-fold probe would rank them.
    wrong = (snapshot["pred"] != snapshot["label"]).to_numpy()
    snapshot["suspect_score"] = np.where(wrong, 0.6, 0.1) + 0.3 * np.random.default_rng(0).random(
        len(snapshot)
    )
    snapshot["suspect_pred"] = snapshot["pred"]
    with tempfile.TemporaryDirectory() as tmp:
        context = synthetic_context(Path(tmp) / "edits.parquet")
        with (
            launch_gate(snapshot, context, lambda d: None, GateConfig()) as server,
            sync_playwright() as p,
        ):
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(server.url)
            wait_ready(page)
            show_an_edit(page)
            hover_a_mistake(page, snapshot)
            page.screenshot(path=str(path), full_page=True)
            browser.close()
    print(f"screenshot: {path}")


def hover_a_mistake(page, snapshot) -> None:
    """Rest the pointer on a misclassified point of class 8 until its picture shows."""
    rows = snapshot.index[(snapshot["label"] == 8) & (snapshot["pred"] != 8)].tolist()
    for i in rows:
        x, y = page.evaluate(f"i => {ROOT}.hill.toClient(...{ROOT}.hill.point(i))", i)
        hit = page.evaluate(f"([x, y]) => {ROOT}.hill.pickAt(x, y)", [x, y])
        if hit == {"kind": "point", "index": i}:
            page.mouse.move(x, y)
            page.locator("#hill-plot .hill-tip img").wait_for()
            page.wait_for_timeout(200)
            return


def show_an_edit(page) -> None:
    """Drag class 3's centre away and compact class 5, then wait for the readout."""
    x, y = page.evaluate(f"() => {ROOT}.hill.toClient(...{ROOT}.hill.handle(3))")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 70, y + 50, steps=10)
    page.mouse.up()
    scale_class(page, "5", 0.4)
    page.get_by_text("L_human").first.wait_for()
    page.wait_for_timeout(400)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=100, help="readout calls per way")
    parser.add_argument("--startups", type=int, default=5, help="pages started, for the median")
    parser.add_argument("--drags", type=int, default=2)
    parser.add_argument("--screenshot", type=Path, help="also save a 10-class screenshot here")
    add_json_argument(parser)
    args = parser.parse_args()

    n = f"{args.points:,} points"
    with tempfile.TemporaryDirectory() as tmp:
        path = write_gate_snapshot(Path(tmp), args.points)
        context = synthetic_context(Path(tmp) / "edits.parquet")
        startup = startup_times(path, context, args.startups)
        _, server = page_up_seconds(path, context)
        with server, server_compute_ms() as compute:
            snapshot, _ = read_snapshot(path)
            ops = demo_ops(10)
            readout = Readout(snapshot, 10, context.weights)
            over_http = ReadoutOverHttp(server.url, ops)
            over_http()  # warm-up: the connection and the session
            readout(ops)
            ways = interleaved_ms(
                {"in-process": lambda: readout(ops), "HTTP": over_http}, args.repeats
            )
            compute.clear()
            reason = browser_missing_reason()
            browser = browser_drags(server.url, args.drags) if not reason else None
    figures = [
        Figure(
            f"segment end to gate page answering, {n}",
            statistics.median(startup),
            "s",
            "<=",
            1.0,
            f"read_snapshot + launch_gate + first GET / 200, median of {len(startup)} pages "
            f"started in turn (the process's first page first): "
            f"{', '.join(f'{t:.2f}' for t in startup)} s",
        ),
        *readout_figures(n, ways, compute, browser, reason),
    ]
    emit(figures, args.json)
    if args.screenshot:
        screenshot(args.screenshot)


def readout_figures(n: str, ways: dict, compute: list, browser: dict | None, reason) -> list:
    """The browser's readout figure (the target), then what it is made of, reported only."""
    inproc, http = ways["in-process"], ways["HTTP"]
    calls = [
        Figure(
            f"readout per call, {n} (in-process)",
            statistics.median(inproc),
            "ms",
            detail=f"{spread(inproc)}; {len(inproc)} calls, interleaved with HTTP",
        ),
        Figure(
            f"readout per call, {n} (HTTP, kept-alive)",
            statistics.median(http),
            "ms",
            detail=spread(http),
        ),
    ]
    if browser is None:
        missing = Figure(f"readout per drag, {n} (browser)", float("nan"), "ms", "<=", 30.0, reason)
        return [missing, *calls]
    rt, draws = browser["readout_ms"], browser["draw_ms"]
    figure = Figure(
        f"readout per drag, {n} (browser)",
        statistics.median(rt),
        "ms",
        "<=",
        30.0,
        f"median of {len(rt)} calls while dragging (one in flight, one per 80 ms); p95 "
        f"{percentile(rt, 0.95):.1f} ms; server compute median {statistics.median(compute):.1f} "
        f"ms; in-process median {calls[0].value:.1f} ms, HTTP median {calls[1].value:.1f} ms",
    )
    p95 = Figure(f"readout per drag, {n} (browser), p95", percentile(rt, 0.95), "ms",
                 detail=spread(rt))  # fmt: skip
    redraw = Figure(
        f"redraw per frame while dragging, {n} (browser)",
        statistics.median(draws),
        "ms",
        detail=f"{spread(draws)}; {len(draws)} frames, {browser['fps']:.0f} fps",
    )
    return [figure, p95, *calls, redraw]


if __name__ == "__main__":
    main()

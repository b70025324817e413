"""Gate page speed on 10,000 points: start-up, live readout, and redraw while dragging.

    .venv/bin/python benchmarks/gate_app.py [--points 10000] [--screenshot docs/gate_page.png]

Prints: seconds from the ``build_gate_app`` call (inside ``launch_gate``) to the page answering
HTTP; the readout server function's time per call, as median, p95 and worst (in-process, over
HTTP, and as the browser sees it while dragging); and the canvas redraw time per frame while
dragging, read from the page's own performance counter. The browser part needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # shared synthetic data

from app_helpers import (  # noqa: E402
    browser_missing_reason,
    launch_chromium,
    scale_class,
    synthetic_context,
    synthetic_snapshot,
)

from hill_core.config import GateConfig  # noqa: E402
from interaction_app.layout import Readout  # noqa: E402
from interaction_app.server import launch_gate  # noqa: E402

ROOT = "document.querySelector('#hill-plot .hill-root')"


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


def timings_ms(fn, repeats: int) -> list[float]:
    """Milliseconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return times


def spread(times: list[float]) -> str:
    """Median, 95th percentile and worst of a list of timings, as one phrase."""
    if not times:
        return "no samples"
    ordered = sorted(times)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    median, worst = statistics.median(ordered), ordered[-1]
    return f"median {median:.1f} ms, p95 {p95:.1f} ms, worst {worst:.1f} ms"


def readout_over_http(url: str, ops: dict, repeats: int) -> list[float]:
    """Milliseconds per call of the plot's ``readout`` server function through /component_server."""
    config = json.loads(urllib.request.urlopen(f"{url}config").read())
    plot = next(c for c in config["components"] if c["props"].get("elem_id") == "hill-plot")
    body = json.dumps(
        {
            "session_hash": uuid.uuid4().hex,
            "component_id": plot["id"],
            "fn_name": "readout",
            "data": ops,
        }
    ).encode()
    request = urllib.request.Request(
        f"{url}gradio_api/component_server", body, {"Content-Type": "application/json"}
    )
    return timings_ms(lambda: urllib.request.urlopen(request).read(), repeats)


def browser_drag(url: str) -> dict:
    """Drag a class centre in Chromium; redraw and readout-round-trip times from the page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_function(f"() => {ROOT} && {ROOT}.hill && {ROOT}.hill.perf.draws > 0")
        page.evaluate("() => document.fonts.ready.then(() => true)")
        page.wait_for_timeout(300)
        page.evaluate(f"() => {{ {ROOT}.hill.perf.samples.length = 0; }}")
        x, y = page.evaluate(f"() => {ROOT}.hill.toClient(...{ROOT}.hill.handle(3))")
        page.mouse.move(x, y)
        page.mouse.down()
        t0 = time.perf_counter()
        for k in range(1, 121):  # two seconds of dragging at ~60 events/s
            page.mouse.move(x + k, y - 0.5 * k)
            page.wait_for_timeout(16)
        seconds = time.perf_counter() - t0
        page.mouse.up()
        page.wait_for_timeout(400)
        perf = page.evaluate(
            f"() => ({{draw: {ROOT}.hill.perf.samples.slice(), "
            f"readout: {ROOT}.hill.readoutPerf.samples.slice()}})"
        )
        browser.close()
    draws = perf["draw"]
    return {
        "frames": len(draws),
        "fps": len(draws) / seconds,
        "draw_median_ms": statistics.median(draws),
        "draw_p95_ms": sorted(draws)[int(0.95 * (len(draws) - 1))],
        "readout_calls": len(perf["readout"]),
        "readout_roundtrips_ms": perf["readout"],
    }


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
    with tempfile.TemporaryDirectory() as tmp:
        context = synthetic_context(Path(tmp) / "edits.parquet")
        with (
            launch_gate(snapshot, context, lambda d: None, GateConfig()) as server,
            sync_playwright() as p,
        ):
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(server.url)
            page.wait_for_function(f"() => {ROOT} && {ROOT}.hill && {ROOT}.hill.perf.draws")
            page.evaluate("() => document.fonts.ready.then(() => true)")
            page.wait_for_timeout(300)
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
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--screenshot", type=Path, help="also save a 10-class screenshot here")
    args = parser.parse_args()

    snapshot = synthetic_snapshot(args.points)
    ops = demo_ops(10)
    with tempfile.TemporaryDirectory() as tmp:
        context = synthetic_context(Path(tmp) / "edits.parquet")
        t0 = time.perf_counter()
        server = launch_gate(snapshot, context, lambda d: None, GateConfig())
        wait_http(server.url)
        startup = time.perf_counter() - t0
        with server:
            readout = Readout(snapshot, 10, context.weights)
            readout(ops)  # warm-up: the first call builds what later calls reuse
            in_process = timings_ms(lambda: readout(ops), args.repeats)
            over_http = readout_over_http(server.url, ops, args.repeats)
            print(f"points: {args.points}")
            print(f"build_gate_app call -> page answers HTTP: {startup:.2f} s")
            print(f"readout server function in-process: {spread(in_process)}")
            print(f"readout server function over HTTP: {spread(over_http)}")
            reason = browser_missing_reason()
            if reason:
                print(f"browser figures skipped: {reason}")
            else:
                b = browser_drag(server.url)
                print(
                    f"redraw while dragging: median {b['draw_median_ms']:.1f} ms, "
                    f"p95 {b['draw_p95_ms']:.1f} ms per frame ({b['frames']} frames, "
                    f"{b['fps']:.0f} fps)"
                )
                print(
                    f"readout round trip as the page sees it while dragging: "
                    f"{spread(b['readout_roundtrips_ms'])} "
                    f"({b['readout_calls']} calls, throttled to one per 80 ms)"
                )
    if args.screenshot:
        screenshot(args.screenshot)


if __name__ == "__main__":
    main()

"""App tier, pure HTML: the context panel's guided-vs-baseline figures and its accuracy chart."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from app_helpers import synthetic_context

from interaction_app.panels import context_html

MINUS = "\u2212"


def ctx_with(guided, baseline, gate_epoch, last_edit_epoch=None, **more):
    base = synthetic_context(Path("unused.parquet"), gate_epoch=gate_epoch)
    return replace(
        base,
        val_accuracy=list(guided),
        baseline_val_accuracy=list(baseline),
        last_edit_epoch=last_edit_epoch,
        **more,
    )


def svgs(html: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", html, flags=re.S)


def series(html: str) -> dict[str, tuple[int, list[tuple[float, float]]]]:
    """data-series -> (data-points, parsed points) for every polyline in the chart."""
    out = {}
    for tag in re.findall(r"<polyline\b[^>]*>", html):
        name = re.search(r"data-series='(\w+)'", tag).group(1)
        count = int(re.search(r"data-points='(\d+)'", tag).group(1))
        coords = re.search(r" points='([^']*)'", tag).group(1).split()
        out[name] = (count, [tuple(map(float, c.split(","))) for c in coords])
    return out


# Gate after epoch 8, last edit at gate 4: guided −0.50 pp then, −2.00 pp now: −1.50 pp since.
GUIDED = [0.70, 0.82, 0.88, 0.925, 0.926, 0.928, 0.930, 0.931]
BASELINE = [0.70, 0.82, 0.88, 0.930, 0.938, 0.944, 0.948, 0.951]


def test_both_series_drawn_with_their_point_counts():
    html = context_html(ctx_with(GUIDED, BASELINE, 8, 4))
    (svg,) = svgs(html)
    assert "class='hill-val-chart'" in svg and "viewBox='0 0 320 140'" in svg
    assert re.search(r"<svg[^>]*>\s*<title>[^<]+</title>", svg)  # accessible name first
    drawn = series(svg)
    assert set(drawn) == {"guided", "baseline"}
    assert drawn["guided"][0] == len(drawn["guided"][1]) == 8
    assert drawn["baseline"][0] == len(drawn["baseline"][1]) == 8
    assert "stroke-dasharray" in re.search(r"<polyline data-series='baseline'[^>]*>", svg)[0]
    assert "stroke-dasharray" not in re.search(r"<polyline data-series='guided'[^>]*>", svg)[0]
    # y axis: a rounded-down floor under both series, up to 100 %, three labelled ticks
    assert [t for t in re.findall(r">(\d+)%</text>", svg)] == ["60", "80", "100"]
    assert {int(e) for e in re.findall(r"class='hill-gate-marker' data-epoch='(\d+)'", svg)} == {
        4,
        8,
    }
    assert ">guided</span>" in html and ">baseline</span>" in html
    assert "Previous gate" not in html  # the self-comparison is gone


def test_since_last_edit_is_the_change_in_the_gap_to_the_baseline():
    html = context_html(ctx_with(GUIDED, BASELINE, 8, 4))
    assert f"Since your last edit (gate 4): guided {MINUS}1.50 pp against the baseline" in html
    assert f"Now: guided 93.1 % · baseline 95.1 % ({MINUS}2.00 pp)" in html
    assert "No edit active yet." not in html


def test_since_last_edit_positive_and_zero():
    ahead = context_html(ctx_with([0.9, 0.91, 0.93], [0.9, 0.9, 0.91], 3, 2))
    # (0.93 − 0.91) − (0.91 − 0.90) = +1.00 pp
    assert "Since your last edit (gate 2): guided +1.00 pp against the baseline" in ahead
    same = context_html(ctx_with([0.9, 0.91, 0.92], [0.9, 0.90, 0.91], 3, 2))
    assert "guided +0.00 pp against the baseline" in same and f"{MINUS}0.00" not in same


def test_no_edit_yet():
    html = context_html(ctx_with(GUIDED[:4], BASELINE[:4], 4))
    assert "No edit active yet." in html and "Since your last edit" not in html
    assert f"Now: guided 92.5 % · baseline 93.0 % ({MINUS}0.50 pp)" in html
    assert set(series(html)) == {"guided", "baseline"}


def test_no_baseline_draws_the_guided_run_alone():
    html = context_html(ctx_with(GUIDED, [], 8, 4))
    assert "No paired baseline for this gate." in html
    assert "Since your last edit" not in html and "baseline 9" not in html
    assert "Now: guided 93.1 %" in html
    drawn = series(html)
    assert list(drawn) == ["guided"] and drawn["guided"][0] == 8
    assert ">baseline</span>" not in html


def test_snapshot_served_alone_has_no_chart():
    html = context_html(ctx_with([], [], 0))
    assert svgs(html) == [] and "No paired baseline for this gate." in html


@pytest.mark.parametrize("n", [1, 2, 50])
def test_any_history_is_one_svg_inside_its_viewbox(n):
    guided = [0.5 + 0.45 * e / n for e in range(1, n + 1)]
    baseline = [0.5 + 0.46 * e / n for e in range(1, n + 1)]
    html = context_html(ctx_with(guided, baseline, n, max(1, n // 2)))
    (svg,) = svgs(html)
    assert "viewBox='0 0 320 140'" in svg and "width='100%'" in svg
    drawn = series(svg)
    assert drawn["guided"][0] == drawn["baseline"][0] == n
    for _, points in drawn.values():
        assert all(0 <= x <= 320 and 0 <= y <= 140 for x, y in points)
    xs = [float(x) for x in re.findall(r"\bx[12]?='([\d.]+)'", svg)]
    assert xs and max(xs) <= 320 and min(xs) >= 0
    assert html.count("<table") == 1 and "hill-confusion" in html  # no epoch table


def test_guard_note_and_names_are_escaped():
    note = "guard: reverted the gate-4 teacher (−2.1 pp against the baseline, tolerance 1.0 pp)"
    html = context_html(ctx_with(GUIDED, BASELINE, 8, 4, guard_note=note))
    assert f"<p class='hill-guard'>{note}</p>" in html
    hostile = context_html(
        ctx_with(GUIDED, BASELINE, 8, 4, guard_note="<script>x</script>", run_name="<i>r</i>")
    )
    assert "<script>" not in hostile and "&lt;script&gt;" in hostile
    assert "<i>r</i>" not in hostile
    assert "hill-guard" not in context_html(ctx_with(GUIDED, BASELINE, 8, 4))


def test_confusion_carries_per_class_accuracy_and_clickable_cells():
    """One table (true x predicted, plus acc) ahead of the chart: above the fold at 900 px."""
    ctx = ctx_with(GUIDED, BASELINE, 8, 4)
    html = context_html(ctx)
    assert html.count("<table") == 1 and "Validation accuracy per class" not in html
    assert html.index("hill-confusion") < html.index("hill-val-chart")
    cells = re.findall(
        r"<td data-true='(\d+)' data-pred='(\d+)' title='([^']*)'[^>]*>(\d+)</td>", html
    )
    assert len(cells) == 100
    t, p, title, value = cells[3 * 10 + 8]
    assert (t, p) == ("3", "8") and int(value) == ctx.confusion[3][8]
    assert title.startswith(f"true 3, predicted 8: {ctx.confusion[3][8]} validation items")
    accs = re.findall(r"<td class='hill-acc'>([\d.]+)%</td>", html)
    assert [float(a) for a in accs] == [round(100 * a, 1) for a in ctx.per_class_accuracy]


def test_per_class_accuracy_alone_without_a_confusion_matrix():
    html = context_html(ctx_with(GUIDED, BASELINE, 8, 4, confusion=[]))
    assert "Validation accuracy per class" in html and "hill-confusion" not in html

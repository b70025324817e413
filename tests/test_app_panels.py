"""App tier, pure HTML: the context panel's guided-vs-baseline figures, its accuracy chart with
the gap panel, and the validation confusion heat map."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest
from app_helpers import synthetic_context

from interaction_app.chart import gap_half_range
from interaction_app.confusion import top_pairs
from interaction_app.layout import class_colors
from interaction_app.numbers import true_minus
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


def view_box(svg: str) -> tuple[float, float]:
    width, height = re.search(r"viewBox='0 0 ([\d.]+) ([\d.]+)'", svg).groups()
    return float(width), float(height)


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
    assert "class='hill-val-chart'" in svg and view_box(svg)[0] == 320
    assert re.search(r"<svg[^>]*>\s*<title>[^<]+</title>", svg)  # accessible name first
    drawn = series(svg)
    assert set(drawn) == {"guided", "baseline", "gap"}
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
    assert set(series(html)) == {"guided", "baseline", "gap"}


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
    width, height = view_box(svg)
    assert width == 320 and "width='100%'" in svg
    drawn = series(svg)
    assert drawn["guided"][0] == drawn["baseline"][0] == drawn["gap"][0] == n
    for _, points in drawn.values():
        assert all(0 <= x <= width and 0 <= y <= height for x, y in points)
    xs = [float(x) for x in re.findall(r"\bx[12]?='([\d.]+)'", svg)]
    assert xs and max(xs) <= 320 and min(xs) >= 0
    assert html.count("<table") == 1 and "hill-confusion" in html  # no epoch table


def test_guard_note_and_names_are_escaped():
    note = "guard: reverted the gate-4 teacher (−2.1 pp against the baseline, tolerance 1.0 pp)"
    html = context_html(ctx_with(GUIDED, BASELINE, 8, 4, guard_note=note))
    assert f"<p class='hill-guard'>{note}</p>" in html
    # hill_core's line has a hyphen for the logs; the page has one minus sign throughout
    ascii_note = note.replace(MINUS, "-")
    assert f"<p class='hill-guard'>{note}</p>" in context_html(
        ctx_with(GUIDED, BASELINE, 8, 4, guard_note=ascii_note)
    )
    hostile = context_html(
        ctx_with(GUIDED, BASELINE, 8, 4, guard_note="<script>x</script>", run_name="<i>r</i>")
    )
    assert "<script>" not in hostile and "&lt;script&gt;" in hostile
    assert "<i>r</i>" not in hostile
    assert "hill-guard" not in context_html(ctx_with(GUIDED, BASELINE, 8, 4))


def cells(html: str) -> list[tuple[int, int, int, str, str]]:
    """(true, predicted, data-count, title, printed text) of every heat-map cell."""
    found = re.findall(
        r"<td data-true='(\d+)' data-pred='(\d+)' data-count='(\d+)' title='([^']*)'[^>]*>"
        r"(\d*)</td>",
        html,
    )
    return [(int(t), int(p), int(v), title, text) for t, p, v, title, text in found]


def test_confusion_carries_per_class_accuracy_and_clickable_cells():
    """One table (true x predicted, plus acc), after the chart (the chart is above the fold)."""
    ctx = ctx_with(GUIDED, BASELINE, 8, 4)
    html = context_html(ctx)
    assert html.count("<table") == 1 and "Validation accuracy per class" not in html
    assert html.index("hill-val-chart") < html.index("hill-confusion")
    total = sum(map(sum, ctx.confusion))
    assert f"<b>Validation confusion</b> ({total} validation items;" in html  # names its split
    found = cells(html)
    assert len(found) == 100
    t, p, v, title, text = found[3 * 10 + 8]
    assert (t, p) == (3, 8) and v == int(text) == ctx.confusion[3][8]
    assert title.startswith(f"true 3, predicted 8: {ctx.confusion[3][8]} validation item")
    accs = re.findall(r"<td class='hill-acc'>([\d.]+)%</td>", html)
    assert [float(a) for a in accs] == [round(100 * a, 1) for a in ctx.per_class_accuracy]
    assert "table-layout" not in html and "hill-heat" in html  # the width rule lives in CSS


def test_twenty_classes_are_a_heat_map_with_counts_in_tooltips_and_top_confusions():
    base = synthetic_context(Path("unused.parquet"), num_classes=20, gate_epoch=8)
    names = [f"class {c}" for c in range(20)]  # long names: index and name in the rows
    ctx = replace(base, class_names=names)
    html = context_html(ctx)
    found = cells(html)
    assert [(t, p, v) for t, p, v, _, _ in found] == [
        (t, p, ctx.confusion[t][p]) for t in range(20) for p in range(20)
    ]
    assert all(text == "" for *_, text in found)  # ~11 px cells: the count is in the title
    assert all(f": {v} validation item" in title for _, _, v, title, _ in found)
    heads = re.findall(r"<th title='predicted class (\d+)'>(\d*)</th>", html)
    assert [(int(c), label) for c, label in heads] == [
        (c, "" if c % 2 else str(c)) for c in range(20)
    ]
    assert "<th class='hill-heat-row' title='true class 7'>7 class 7</th>" in html
    assert len(re.findall(r"<td class='hill-acc'>[\d.]+%</td>", html)) == 20
    pairs = top_pairs(ctx.confusion)
    assert len(pairs) == 5 and all(t != p for t, p, _ in pairs)
    off = sorted((v for t, row in enumerate(ctx.confusion) for p, v in enumerate(row) if t != p))
    assert [v for *_, v in pairs] == off[::-1][:5]
    buttons = re.findall(
        r"<button type='button' class='hill-top-pair' data-true='(\d+)' data-pred='(\d+)' "
        r"data-count='(\d+)'",
        html,
    )
    assert [tuple(map(int, b)) for b in buttons] == pairs


def test_top_confusions_largest_first_and_none_without_confusions():
    matrix = [[9, 0, 2], [7, 5, 0], [2, 3, 8]]
    assert top_pairs(matrix) == [(1, 0, 7), (2, 1, 3), (0, 2, 2), (2, 0, 2)]
    html = context_html(ctx_with(GUIDED, BASELINE, 8, 4, confusion=[[4, 0], [0, 5]]))
    assert "No confusions on the validation split." in html and "hill-top-pair" not in html


def gap_geometry(svg: str) -> tuple[float, list[tuple[float, float]]]:
    """The zero line's y and the gap polyline's points, in viewBox units."""
    zero = float(re.search(r"<line class='hill-gap-zero'[^>]* y1='([\d.]+)'", svg).group(1))
    return zero, series(svg)["gap"][1]


def test_a_gap_of_a_third_of_a_point_is_drawn_well_off_zero():
    """Second gate, 0.3 pp behind the baseline since the fork: the gap panel's scale is
    ±0.5 pp, so 0.3 pp is 60 % of its half-height (~13 px at 296 px wide)."""
    baseline = [0.70, 0.82, 0.88, 0.91, 0.92, 0.925, 0.93, 0.932]
    guided = baseline[:4] + [b - 0.003 for b in baseline[4:]]
    html = context_html(ctx_with(guided, baseline, 8, 4, gate_epochs=[4, 8]))
    (svg,) = svgs(html)
    zero, points = gap_geometry(svg)
    assert [round(zero - y, 1) for _, y in points[:4]] == [0.0] * 4
    assert all(y - zero >= 12 for _, y in points[4:])  # below zero: guided behind
    assert ">+0.5</text>" in svg and f">{MINUS}0.5</text>" in svg
    assert f"epoch 8: guided − baseline {MINUS}0.30 pp" in svg
    markers = re.findall(r"class='hill-gate-marker' data-epoch='(\d+)'[^>]*><title>([^<]*)<", svg)
    assert set(markers) == {("4", "last edit, gate 4"), ("8", "gate 8 (now)")}


@pytest.mark.parametrize(
    "gaps, half", [([0.0], 0.5), ([0.3, -0.37], 0.5), ([-0.6], 1), ([2.4], 5), ([150], 200)]
)
def test_gap_scale_rounds_up_to_a_step_of_at_least_half_a_point(gaps, half):
    assert gap_half_range(gaps) == half


def test_the_epoch_title_sits_left_of_every_tick():
    """At a gate after epoch 1 the one tick is mid-axis; the title stays in the left margin."""
    for n in (1, 2, 8):
        (svg,) = svgs(context_html(ctx_with(GUIDED[:n], BASELINE[:n], n)))
        title_x = float(re.search(r"class='hill-x-title' x='([\d.]+)'", svg).group(1))
        ticks = [float(x) for x in re.findall(r"class='hill-x-tick' x='([\d.]+)'", svg)]
        assert re.search(r"class='hill-x-title'[^>]*text-anchor='end'[^>]*>epoch<", svg)
        assert min(ticks) - title_x >= 6  # the title ends at title_x; "1" is ~6 units wide


@pytest.mark.parametrize(
    "text, expected",
    [
        ("(-2.10 pp against", f"({MINUS}2.10 pp against"),
        ("gap -0.5 and -.5", f"gap {MINUS}0.5 and {MINUS}.5"),
        ("the gate-4 teacher, 2026-12-05, run-20261125", None),
        (f"{MINUS}1.00 pp", None),
    ],
)
def test_true_minus_changes_signs_only(text, expected):
    assert true_minus(text) == (expected or text)


def lab(colour: str) -> tuple[float, float, float]:
    """CIELAB (D65) of a #rrggbb colour."""
    rgb = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    m = ((0.4124, 0.3576, 0.1805), (0.2126, 0.7152, 0.0722), (0.0193, 0.1192, 0.9505))
    white = (0.95047, 1.0, 1.08883)
    rows = zip(m, white, strict=True)
    xyz = [sum(a * b for a, b in zip(row, lin, strict=True)) / w for row, w in rows]
    f = [v ** (1 / 3) if v > (6 / 29) ** 3 else v / (3 * (6 / 29) ** 2) + 4 / 29 for v in xyz]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def test_twenty_class_colours_are_far_apart_and_off_white():
    """ΔE76 >= 25 between any two classes (a clear difference in hue or lightness) and >= 40
    from the canvas (#fcfcfe), so a light class still shows as a dot and a ring."""
    colours = [lab(c) for c in class_colors(20)]
    canvas = lab("#fcfcfe")
    apart = min(math.dist(a, b) for a, b in itertools.combinations(colours, 2))
    assert apart >= 25 and min(math.dist(c, canvas) for c in colours) >= 40
    assert class_colors(10) == class_colors(20)[:10]  # a 10-class page keeps its colours
    assert len(set(class_colors(40))) == 40


def test_per_class_accuracy_alone_without_a_confusion_matrix():
    html = context_html(ctx_with(GUIDED, BASELINE, 8, 4, confusion=[]))
    assert "Validation accuracy per class" in html and "hill-confusion" not in html

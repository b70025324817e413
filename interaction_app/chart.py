"""The context panel's chart: validation accuracy per epoch (guided solid, baseline dashed) and,
below it on its own scale, the gap guided − baseline in percentage points.

One static SVG in viewBox units; it scales to the panel's width (296 px at a 1400 px window, so
one unit is ~0.93 px). A gap of 0.3 pp is invisible on the accuracy panel's 60–100 % axis (under
1 px), hence the second panel: its scale is at least ±0.5 pp, where 0.3 pp is ~13 px.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from interaction_app.context import GateContext
from interaction_app.numbers import signed

_W = 320  # viewBox width
_LEFT, _RIGHT = 34, 10  # margins: y tick labels ("100%", "−0.5") fit in the left one
_ACC_TOP, _ACC_H = 8, 96  # accuracy panel
_GAP_TOP, _GAP_H = 122, 46  # gap panel; its title sits in the 18 units above it
_TICK_DY = 14  # x tick labels' baseline below the lowest panel
_GAP_MIN = 0.5  # pp: the gap scale's smallest half-range, so noise of 0.01 pp stays flat
_GAP_STEPS = (0.5, 1, 2, 5, 10, 20, 50, 100)  # pp: half-ranges the gap scale rounds up to
_GUIDED, _BASELINE, _EDIT, _GATE = "#1f4e79", "#8c8c96", "#d9822b", "#b8b8c4"


@dataclass(frozen=True)
class _Axes:
    """One panel's plot area (viewBox units) over epochs 1..n, values lo..hi bottom to top."""

    top: float
    height: float
    n: int
    lo: float
    hi: float

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def x(self, epoch: float) -> float:
        width = _W - _LEFT - _RIGHT
        return _LEFT + (width / 2 if self.n == 1 else width * (epoch - 1) / (self.n - 1))

    def y(self, value: float) -> float:
        return self.top + self.height * (self.hi - value) / (self.hi - self.lo)


def val_chart(ctx: GateContext) -> str:
    """The chart's heading, SVG and legend; empty before the first epoch."""
    guided, baseline = list(ctx.val_accuracy), list(ctx.baseline_val_accuracy)
    n = max(len(guided), len(baseline))
    if n == 0:
        return ""
    finite = [100 * v for v in guided + baseline if math.isfinite(v)]
    acc_ticks = y_ticks(finite)
    acc = _Axes(_ACC_TOP, _ACC_H, n, acc_ticks[0], 100.0)
    gaps = gap_series(guided, baseline)
    markers = _markers(ctx, n)
    parts = _accuracy_panel(acc, acc_ticks) + _draw_markers(acc, markers)
    parts += _series(acc, "baseline", _percent(baseline), _BASELINE, " stroke-dasharray='5 3'")
    parts += _series(acc, "guided", _percent(guided), _GUIDED, "")
    lowest = acc
    if gaps:
        half = gap_half_range([g for _, g in gaps])
        lowest = _Axes(_GAP_TOP, _GAP_H, n, -half, half)
        parts += _gap_panel(lowest, half) + _draw_markers(lowest, markers)
        parts += _gap_line(lowest, gaps)
    parts += _x_axis(lowest, n)
    height = lowest.bottom + _TICK_DY + 5
    title = "Validation accuracy per epoch: guided run" + (
        " (solid) and its lockstep baseline (dashed); below, guided − baseline in "
        "percentage points, zero marked"
        if baseline
        else ""
    )
    svg = (
        f"<svg class='hill-val-chart' viewBox='0 0 {_W} {height:g}' width='100%' "
        f"height='{height:g}' preserveAspectRatio='xMidYMid meet' role='img' font-size='10' "
        f"fill='#555' xmlns='http://www.w3.org/2000/svg'><title>{escape(title)}</title>"
        f"{''.join(parts)}</svg>"
    )
    return (
        "<p><b>Validation accuracy by epoch</b></p>"
        f"<div class='hill-chart'>{svg}{_legend(ctx, n, bool(baseline))}</div>"
    )


def y_ticks(percents: list[float]) -> list[float]:
    """Three ticks in percent: a rounded-down floor below every value, the middle, and 100."""
    low = max(0.0, min(percents, default=90.0))
    for step in (1, 2, 5, 10, 20, 25, 50):
        if 100 - 2 * step <= low:
            break
    return [100 - 2 * step, 100 - step, 100]


def gap_series(guided: list[float], baseline: list[float]) -> list[tuple[int, float]]:
    """(epoch, guided − baseline in pp) wherever both runs have a finite value."""
    pairs = zip(guided, baseline, strict=False)
    return [
        (e, 100 * (g - b))
        for e, (g, b) in enumerate(pairs, start=1)
        if math.isfinite(g) and math.isfinite(b)
    ]


def gap_half_range(gaps: list[float]) -> float:
    """The gap scale runs from −half to +half pp: the first step at or above every |gap|."""
    widest = max([abs(g) for g in gaps] + [_GAP_MIN])
    return next((s for s in _GAP_STEPS if s >= widest), math.ceil(widest / 100) * 100)


def _percent(series: list[float]) -> list[tuple[int, float]]:
    return [(e, 100 * v) for e, v in enumerate(series, start=1) if math.isfinite(v)]


def _accuracy_panel(axes: _Axes, ticks: list[float]) -> list[str]:
    parts = [_frame(axes)]
    for t in ticks:
        y = axes.y(t)
        parts.append(_grid_line(y) + _y_label(y, f"{t:g}%"))
    return parts


def _gap_panel(axes: _Axes, half: float) -> list[str]:
    """Frame, ±half and zero (a darker line: the baseline's level), and the panel's title.
    The ±half labels sit inside the panel's height (top one below its line, bottom one above):
    centred on their lines, the bottom one would touch the epoch axis's title."""
    digits = 1 if half < 1 else 0
    zero = axes.y(0.0)
    return [
        _frame(axes),
        f"<text class='hill-gap-title' x='{_LEFT}' y='{axes.top - 5}' font-size='9' "
        "fill='#666'>guided − baseline, pp (0 = baseline)</text>",
        _grid_line(axes.top) + _y_label(axes.top, signed(half, digits), dy=7.5),
        _grid_line(axes.bottom) + _y_label(axes.bottom, signed(-half, digits), dy=-1),
        f"<line class='hill-gap-zero' x1='{_LEFT}' y1='{zero:.1f}' x2='{_W - _RIGHT}' "
        f"y2='{zero:.1f}' stroke='#666' stroke-width='1'/>" + _y_label(zero, "0"),
    ]


def _gap_line(axes: _Axes, gaps: list[tuple[int, float]]) -> list[str]:
    """The gap per epoch, each point with its value as a tooltip."""
    parts = _series(axes, "gap", gaps, _GUIDED, "")
    for epoch, gap in gaps:
        parts.append(
            f"<circle class='hill-gap-point' cx='{axes.x(epoch):.1f}' cy='{axes.y(gap):.1f}' "
            f"r='2' fill='{_GUIDED}'><title>epoch {epoch}: guided − baseline "
            f"{signed(gap)} pp</title></circle>"
        )
    return parts


def _frame(axes: _Axes) -> str:
    return (
        f"<rect x='{_LEFT}' y='{axes.top}' width='{_W - _LEFT - _RIGHT}' height='{axes.height}' "
        "fill='#fbfbfd' stroke='#e2e2ea'/>"
    )


def _grid_line(y: float) -> str:
    return f"<line x1='{_LEFT}' y1='{y:.1f}' x2='{_W - _RIGHT}' y2='{y:.1f}' stroke='#ececf2'/>"


def _y_label(y: float, text: str, dy: float = 3.5) -> str:
    """A y tick label left of the axis; its baseline ``dy`` below ``y`` (3.5: centred)."""
    return f"<text x='{_LEFT - 4}' y='{y + dy:.1f}' text-anchor='end'>{text}</text>"


def _markers(ctx: GateContext, n: int) -> list[tuple[int, str, str, str]]:
    """(epoch, colour, dash, tooltip) for every gate so far and the last edit, within 1..n."""
    edit = ctx.last_edit_epoch
    epochs = {ctx.gate_epoch, *ctx.gate_epochs} | ({edit} if edit is not None else set())
    out = []
    for epoch in sorted(e for e in epochs if 1 <= e <= n and e <= ctx.gate_epoch):
        now = " (now)" if epoch == ctx.gate_epoch else ""
        if epoch == edit:
            out.append((epoch, _EDIT, "3 2", f"last edit, gate {epoch}{now}"))
        else:
            out.append((epoch, _GATE, "", f"gate {epoch}{now}"))
    return out


def _draw_markers(axes: _Axes, markers: list[tuple[int, str, str, str]]) -> list[str]:
    parts = []
    for epoch, colour, dash, label in markers:
        x = axes.x(epoch)
        dashed = f" stroke-dasharray='{dash}'" if dash else ""
        parts.append(
            f"<line class='hill-gate-marker' data-epoch='{epoch}' x1='{x:.1f}' y1='{axes.top}' "
            f"x2='{x:.1f}' y2='{axes.bottom}' stroke='{colour}' stroke-width='1.5'{dashed}>"
            f"<title>{escape(label)}</title></line>"
        )
    return parts


def _series(axes: _Axes, name: str, points, colour: str, dash: str) -> list[str]:
    """One polyline of (epoch, value) points; a lone point as a dot (a polyline of one point
    draws nothing)."""
    drawn = [(axes.x(e), axes.y(v)) for e, v in points]
    if not drawn:
        return []
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in drawn)
    parts = [
        f"<polyline data-series='{name}' data-points='{len(drawn)}' points='{coords}' "
        f"fill='none' stroke='{colour}' stroke-width='1.8' stroke-linejoin='round'{dash}/>"
    ]
    if len(drawn) == 1 and name != "gap":  # the gap draws a dot at every epoch anyway
        x, y = drawn[0]
        parts.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2.5' fill='{colour}'/>")
    return parts


def _x_axis(axes: _Axes, n: int) -> list[str]:
    """Epoch ticks 1 and n under the lowest panel; the title sits in the left margin, left of
    tick 1 wherever that is (at one epoch, mid-axis), so the two never overlap."""
    y = axes.bottom + _TICK_DY
    ticks = [1, n] if n > 1 else [1]
    parts = [
        f"<text class='hill-x-tick' x='{axes.x(e):.1f}' y='{y:g}' text-anchor='middle'>{e}</text>"
        for e in ticks
    ]
    parts.append(
        f"<text class='hill-x-title' x='{_LEFT - 6}' y='{y:g}' text-anchor='end' "
        "fill='#888'>epoch</text>"
    )
    return parts


def _legend(ctx: GateContext, n: int, has_baseline: bool) -> str:
    items = [f"<span><i class='hill-key' style='border-top-color:{_GUIDED}'></i>guided</span>"]
    if has_baseline:
        items.append(
            f"<span><i class='hill-key hill-key-dashed' style='border-top-color:{_BASELINE}'>"
            "</i>baseline</span>"
        )
    items.append(f"<span><i class='hill-key' style='border-top-color:{_GATE}'></i>gate</span>")
    if ctx.last_edit_epoch is not None and 1 <= ctx.last_edit_epoch <= n:
        items.append(
            f"<span><i class='hill-key hill-key-dashed' style='border-top-color:{_EDIT}'></i>"
            f"last edit (gate {ctx.last_edit_epoch})</span>"
        )
    return f"<div class='hill-chart-legend'>{''.join(items)}</div>"

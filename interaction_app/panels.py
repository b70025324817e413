"""The context panel: what a person needs to decide, as small static HTML (tables, one SVG)."""

from __future__ import annotations

import math
from html import escape

from interaction_app.context import GateContext


def context_html(ctx: GateContext) -> str:
    """Run, gate, guided vs baseline (figures), guard note, the confusion matrix with per-class
    accuracy (first, so it shows without scrolling at 900 px), then the accuracy chart."""
    return "".join(
        [
            f"<div class='hill-ctx'><h3>{escape(ctx.run_name)} · gate after epoch "
            f"{ctx.gate_epoch}</h3>",
            f"<p class='hill-muted'>run {escape(ctx.run_id)} · "
            f"config {escape(ctx.config_hash)}</p>",
            _against_baseline(ctx),
            _guard_note(ctx.guard_note),
            _confusion(ctx.class_names, ctx.confusion, ctx.per_class_accuracy),
            _per_class(ctx.class_names, ctx.per_class_accuracy, bool(ctx.confusion)),
            _val_chart(ctx),
            "</div>",
        ]
    )


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _pp(fraction: float) -> str:
    """A signed difference in percentage points, with a true minus sign: "−1.50 pp"."""
    value = round(100 * fraction, 2) or 0.0  # no "−0.00"
    return f"{value:+.2f} pp".replace("-", "\u2212")


def _at(series: list[float], epoch: int | None) -> float | None:
    """The value at a 1-based ``epoch``, None where the series does not reach it."""
    if epoch is None or not 1 <= epoch <= len(series):
        return None
    value = series[epoch - 1]
    return value if math.isfinite(value) else None


def _against_baseline(ctx: GateContext) -> str:
    """How the guided run stands against its lockstep baseline, now and since the last edit."""
    guided, baseline = ctx.val_accuracy, ctx.baseline_val_accuracy
    g_now, b_now = _at(guided, ctx.gate_epoch), _at(baseline, ctx.gate_epoch)
    lines = []
    if not baseline:
        lines.append("No paired baseline for this gate.")
    elif ctx.last_edit_epoch is None:
        lines.append("No edit active yet.")
    else:
        g_then, b_then = _at(guided, ctx.last_edit_epoch), _at(baseline, ctx.last_edit_epoch)
        head = f"Since your last edit (gate {ctx.last_edit_epoch}):"
        if None in (g_now, b_now, g_then, b_then):
            lines.append(f"{head} not enough history to compare.")
        else:
            change = (g_now - b_now) - (g_then - b_then)
            lines.append(f"{head} guided {_pp(change)} against the baseline")
    if g_now is not None:
        now = f"Now: guided {100 * g_now:.1f} %"
        if b_now is not None:
            now += f" · baseline {100 * b_now:.1f} % ({_pp(g_now - b_now)})"
        lines.append(now)
    return "".join(f"<p class='hill-vs-baseline'>{line}</p>" for line in lines)


def _guard_note(note: str) -> str:
    return f"<p class='hill-guard'>{escape(note)}</p>" if note else ""


# The chart's geometry, in viewBox units; the svg scales to the panel's width.
_W, _H = 320, 140
_LEFT, _RIGHT, _TOP, _BOTTOM = 34, 10, 8, 20
_GUIDED, _BASELINE, _EDIT, _GATE = "#1f4e79", "#8c8c96", "#d9822b", "#b8b8c4"


def _y_ticks(values: list[float]) -> list[float]:
    """Three ticks in percent: a rounded-down floor below every value, the middle, and 100."""
    low = max(0.0, min([100 * v for v in values], default=90.0))
    for step in (1, 2, 5, 10, 20, 25, 50):
        if 100 - 2 * step <= low:
            break
    return [100 - 2 * step, 100 - step, 100]


def _val_chart(ctx: GateContext) -> str:
    """Validation accuracy per epoch as a small static SVG: guided solid, baseline dashed."""
    guided = list(ctx.val_accuracy)
    baseline = list(ctx.baseline_val_accuracy)
    n = max(len(guided), len(baseline))
    if n == 0:
        return ""
    finite = [v for v in guided + baseline if math.isfinite(v)]
    ticks = _y_ticks(finite)
    y_min = ticks[0]
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x_of(epoch: float) -> float:
        return _LEFT + (plot_w / 2 if n == 1 else plot_w * (epoch - 1) / (n - 1))

    def y_of(percent: float) -> float:
        return _TOP + plot_h * (100 - percent) / (100 - y_min)

    parts = [
        f"<rect x='{_LEFT}' y='{_TOP}' width='{plot_w}' height='{plot_h}' fill='#fbfbfd' "
        "stroke='#e2e2ea'/>"
    ]
    for t in ticks:
        y = y_of(t)
        parts.append(
            f"<line x1='{_LEFT}' y1='{y:.1f}' x2='{_W - _RIGHT}' y2='{y:.1f}' stroke='#ececf2'/>"
            f"<text x='{_LEFT - 4}' y='{y + 3.5:.1f}' text-anchor='end'>{t:g}%</text>"
        )
    markers = [(ctx.gate_epoch, _GATE, "", f"gate {ctx.gate_epoch} (now)")]
    if ctx.last_edit_epoch is not None and ctx.last_edit_epoch != ctx.gate_epoch:
        markers.append(
            (ctx.last_edit_epoch, _EDIT, "3 2", f"last edit, gate {ctx.last_edit_epoch}")
        )
    for epoch, colour, dash, label in markers:
        if 1 <= epoch <= n:
            x = x_of(epoch)
            dashed = f" stroke-dasharray='{dash}'" if dash else ""
            parts.append(
                f"<line class='hill-gate-marker' data-epoch='{epoch}' x1='{x:.1f}' y1='{_TOP}' "
                f"x2='{x:.1f}' y2='{_TOP + plot_h}' stroke='{colour}' stroke-width='1.5'{dashed}>"
                f"<title>{escape(label)}</title></line>"
            )
    for name, series, colour, dash in (
        ("baseline", baseline, _BASELINE, " stroke-dasharray='5 3'"),
        ("guided", guided, _GUIDED, ""),
    ):
        points = [
            (x_of(e), y_of(100 * v)) for e, v in enumerate(series, start=1) if math.isfinite(v)
        ]
        if not points:
            continue
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(
            f"<polyline data-series='{name}' data-points='{len(points)}' points='{coords}' "
            f"fill='none' stroke='{colour}' stroke-width='1.8' stroke-linejoin='round'{dash}/>"
        )
        if len(points) == 1:  # a one-point polyline draws nothing
            parts.append(
                f"<circle cx='{points[0][0]:.1f}' cy='{points[0][1]:.1f}' r='2.5' fill='{colour}'/>"
            )
    base_y = _TOP + plot_h + 13
    parts.append(f"<text x='{x_of(1):.1f}' y='{base_y}' text-anchor='middle'>1</text>")
    if n > 1:
        parts.append(f"<text x='{x_of(n):.1f}' y='{base_y}' text-anchor='middle'>{n}</text>")
    parts.append(
        f"<text x='{_LEFT + plot_w / 2:.1f}' y='{base_y}' text-anchor='middle' "
        "fill='#888'>epoch</text>"
    )
    title = "Validation accuracy per epoch: guided run" + (
        " (solid) and its lockstep baseline (dashed)" if baseline else ""
    )
    svg = (
        f"<svg class='hill-val-chart' viewBox='0 0 {_W} {_H}' width='100%' height='{_H}' "
        f"preserveAspectRatio='xMidYMid meet' role='img' font-size='10' fill='#555' "
        f"xmlns='http://www.w3.org/2000/svg'><title>{escape(title)}</title>{''.join(parts)}</svg>"
    )
    legend = [f"<span><i class='hill-key' style='border-top-color:{_GUIDED}'></i>guided</span>"]
    if baseline:
        legend.append(
            f"<span><i class='hill-key hill-key-dashed' style='border-top-color:{_BASELINE}'>"
            "</i>baseline</span>"
        )
    if ctx.last_edit_epoch is not None and 1 <= ctx.last_edit_epoch <= n:
        legend.append(
            f"<span><i class='hill-key hill-key-dashed' style='border-top-color:{_EDIT}'></i>"
            f"last edit (gate {ctx.last_edit_epoch})</span>"
        )
    return (
        "<p><b>Validation accuracy by epoch</b></p>"
        f"<div class='hill-chart'>{svg}<div class='hill-chart-legend'>{''.join(legend)}</div></div>"
    )


def _per_class(names: list[str], acc: list[float], in_confusion: bool) -> str:
    """Per-class accuracy as its own table, only where no confusion matrix carries it."""
    if not acc or in_confusion:
        return ""
    rows = "".join(
        f"<tr><td>{escape(n)}</td><td>{_pct(a)}</td><td>{_bar(a)}</td></tr>"
        for n, a in zip(names, acc, strict=False)
    )
    return (
        "<p><b>Validation accuracy per class</b></p><table class='hill-table'>"
        f"<tr><th>class</th><th>acc</th><th></th></tr>{rows}</table>"
    )


def _bar(fraction: float) -> str:
    width = 60 * max(0.0, min(fraction, 1.0))
    return f"<div class='hill-bar' style='width:{width:.0f}px'></div>"


def _confusion(names: list[str], matrix: list[list[int]], acc: list[float]) -> str:
    """Validation confusion, one row per true class with its accuracy; a click on a cell shows
    the snapshot's points of that true and predicted class on the plot."""
    if not matrix:
        return ""
    peak = max((v for row in matrix for v in row), default=1) or 1
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    acc_head = "<th title='validation accuracy of the class'>acc</th>" if acc else ""
    body = "".join(
        f"<tr><th>{escape(names[r])}</th>"
        + "".join(_confusion_cell(v, peak, names, r, c) for c, v in enumerate(row))
        + (f"<td class='hill-acc'>{_pct(acc[r])}</td>" if r < len(acc) else "")
        + "</tr>"
        for r, row in enumerate(matrix)
    )
    return (
        "<p><b>Validation confusion</b> (rows: true class, columns: predicted; click a cell to "
        "find its points on the map)</p>"
        f"<table class='hill-table hill-confusion'><tr><th></th>{head}{acc_head}</tr>{body}"
        "</table>"
    )


def _confusion_cell(value: int, peak: int, names: list[str], r: int, c: int) -> str:
    # Off-diagonal counts are the ones a person acts on (merge, separate), so they get red.
    alpha = 0.08 + 0.7 * value / peak if value else 0.0
    rgb = "44,160,44" if r == c else "214,39,40"
    true, pred = escape(names[r]), escape(names[c]) if c < len(names) else str(c)
    title = f"true {true}, predicted {pred}: {value} validation items; click to find them"
    return (
        f"<td data-true='{r}' data-pred='{c}' title='{title}' "
        f"style='background:rgba({rgb},{alpha:.2f})'>{value}</td>"
    )

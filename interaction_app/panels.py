"""The context panel: what a person needs to decide, as small static HTML (tables, one SVG)."""

from __future__ import annotations

import math
from html import escape

from interaction_app.chart import val_chart
from interaction_app.confusion import confusion_panel
from interaction_app.context import GateContext
from interaction_app.numbers import pct, pp, true_minus


def context_html(ctx: GateContext) -> str:
    """Run, gate, guided vs baseline (figures), guard note, the accuracy chart with its gap
    panel (first: above the fold at 1400x900 with 20 classes), then the validation confusion
    heat map with per-class accuracy and the top confusions."""
    return "".join(
        [
            f"<div class='hill-ctx'><h3>{escape(ctx.run_name)} · gate after epoch "
            f"{ctx.gate_epoch}</h3>",
            f"<p class='hill-muted'>run {escape(ctx.run_id)} · "
            f"config {escape(ctx.config_hash)}</p>",
            _against_baseline(ctx),
            _guard_note(ctx.guard_note),
            val_chart(ctx),
            confusion_panel(ctx.class_names, ctx.confusion, ctx.per_class_accuracy),
            _per_class(ctx.class_names, ctx.per_class_accuracy, bool(ctx.confusion)),
            "</div>",
        ]
    )


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
            lines.append(f"{head} guided {pp(change)} against the baseline")
    if g_now is not None:
        now = f"Now: guided {100 * g_now:.1f} %"
        if b_now is not None:
            now += f" · baseline {100 * b_now:.1f} % ({pp(g_now - b_now)})"
        lines.append(now)
    return "".join(f"<p class='hill-vs-baseline'>{line}</p>" for line in lines)


def _guard_note(note: str) -> str:
    """The guard's line (hill_core writes ASCII for the logs) with the page's minus sign."""
    return f"<p class='hill-guard'>{escape(true_minus(note))}</p>" if note else ""


def _per_class(names: list[str], acc: list[float], in_confusion: bool) -> str:
    """Per-class accuracy as its own table, only where no confusion matrix carries it."""
    if not acc or in_confusion:
        return ""
    rows = "".join(
        f"<tr><td>{escape(n)}</td><td>{pct(a)}</td><td>{_bar(a)}</td></tr>"
        for n, a in zip(names, acc, strict=False)
    )
    return (
        "<p><b>Validation accuracy per class</b></p><table class='hill-table'>"
        f"<tr><th>class</th><th>acc</th><th></th></tr>{rows}</table>"
    )


def _bar(fraction: float) -> str:
    width = 60 * max(0.0, min(fraction, 1.0))
    return f"<div class='hill-bar' style='width:{width:.0f}px'></div>"

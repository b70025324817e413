"""The context panel: what a person needs to decide, as small static HTML tables."""

from __future__ import annotations

from html import escape

from interaction_app.context import GateContext


def context_html(ctx: GateContext) -> str:
    """Run, gate, accuracy per epoch, the previous gate's effect, per-class accuracy, confusion."""
    return "".join(
        [
            f"<div class='hill-ctx'><h3>{escape(ctx.run_name)} · gate after epoch "
            f"{ctx.gate_epoch}</h3>",
            f"<p class='hill-muted'>run {escape(ctx.run_id)} · "
            f"config {escape(ctx.config_hash)}</p>",
            _previous_gate(ctx.previous_gate_delta),
            _accuracy_by_epoch(ctx.val_accuracy),
            _per_class(ctx.class_names, ctx.per_class_accuracy),
            _confusion(ctx.class_names, ctx.confusion),
            "</div>",
        ]
    )


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _previous_gate(delta: float | None) -> str:
    if delta is None:
        return "<p><b>Previous gate:</b> none, this is the first.</p>"
    verdict = "helped" if delta > 0 else "hurt" if delta < 0 else "changed nothing"
    return (
        f"<p><b>Previous gate's edit {verdict}:</b> validation accuracy {100 * delta:+.2f} pp.</p>"
    )


def _accuracy_by_epoch(acc: list[float]) -> str:
    if not acc:
        return ""
    best = max(acc)
    cells = "".join(f"<td class='{'hill-best' if a == best else ''}'>{_pct(a)}</td>" for a in acc)
    head = "".join(f"<th>{e}</th>" for e in range(1, len(acc) + 1))
    return (
        "<p><b>Validation accuracy by epoch</b></p><table class='hill-table'>"
        f"<tr><th>epoch</th>{head}</tr><tr><th>acc</th>{cells}</tr></table>"
    )


def _per_class(names: list[str], acc: list[float]) -> str:
    if not acc:
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


def _confusion(names: list[str], matrix: list[list[int]]) -> str:
    if not matrix:
        return ""
    peak = max((v for row in matrix for v in row), default=1) or 1
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    body = "".join(
        f"<tr><th>{escape(names[r])}</th>"
        + "".join(_confusion_cell(v, peak, r == c) for c, v in enumerate(row))
        + "</tr>"
        for r, row in enumerate(matrix)
    )
    return (
        "<p><b>Validation confusion</b> (rows: true class, columns: predicted)</p>"
        f"<table class='hill-table hill-confusion'><tr><th></th>{head}</tr>{body}</table>"
    )


def _confusion_cell(value: int, peak: int, diagonal: bool) -> str:
    # Off-diagonal counts are the ones a person acts on (merge, separate), so they get red.
    alpha = 0.08 + 0.7 * value / peak if value else 0.0
    rgb = "44,160,44" if diagonal else "214,39,40"
    return f"<td style='background:rgba({rgb},{alpha:.2f})'>{value}</td>"

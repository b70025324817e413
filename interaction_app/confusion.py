"""The validation confusion as a heat map that fits the side panel at any number of classes.

The table has a fixed layout at 100 % of the panel, so its C cells per row share what the name
and accuracy columns leave (at a 1400 px window the panel is 296 px: 20 classes get ~11 px
cells). Each cell's count is in its tooltip (and printed in it up to 10 classes), every row
ends with its class's accuracy, and a "top confusions" list below names the largest
off-diagonal cells. Cells and list entries carry ``data-true``, ``data-pred`` and ``data-count``:
a click highlights the snapshot's points of that pair on the map (app.py ``CONFUSION_JS``,
gate_ui.js "confusion-cell highlight"), and the page then states both counts.
"""

from __future__ import annotations

from html import escape

from interaction_app.numbers import pct

TOP_CONFUSIONS = 5  # off-diagonal cells listed under the map: the pairs a person acts on first
NUMBERS_UP_TO = 10  # classes: past this a cell (< 20 px in a 296 px panel) is too small for "114"
# Which columns carry their index: "10" needs ~9 px at 8 px font, a column of 20 gets ~11 px.
LABEL_EVERY = ((10, 1), (20, 2))  # (up to this many classes, every k-th column); past: every 5th
MAP_HEIGHT = 230  # px: the map's rows share this, between the row heights below
ROW_MIN, ROW_MAX = 8, 22  # px


def confusion_panel(names: list[str], matrix: list[list[int]], acc: list[float]) -> str:
    """Heading (naming the split), heat map with per-class accuracy, the clicked cell's note
    and the top confusions; empty without a matrix."""
    if not matrix:
        return ""
    total = sum(sum(row) for row in matrix)
    return (
        f"<p class='hill-confusion-head'><b>Validation confusion</b> ({total} validation "
        "items; rows: true class, columns: predicted). A click shows the snapshot's points of "
        "that pair on the map.</p>"
        + _heat_map(names, matrix, acc)
        + "<p class='hill-cell-note' aria-live='polite'></p>"
        + _top_confusions(names, matrix)
    )


def _name(names: list[str], c: int) -> str:
    return names[c] if c < len(names) else str(c)


def _column_label(k: int, c: int) -> str:
    """A column's header: its class index on every k-th column (see ``LABEL_EVERY``), blank
    between; the name is in its tooltip."""
    every = next((step for most, step in LABEL_EVERY if k <= most), 5)
    return "" if c % every else str(c)


def _row_label(names: list[str], c: int) -> str:
    """Index and name (cut off by CSS where long), or the index alone where they agree."""
    name = _name(names, c)
    return name if name == str(c) else f"{c} {name}"


def _heat_map(names: list[str], matrix: list[list[int]], acc: list[float]) -> str:
    k = len(matrix)
    named = any(_name(names, c) != str(c) for c in range(k))
    row_px = max(ROW_MIN, min(ROW_MAX, MAP_HEIGHT / k))
    size = "hill-heat-small" if k > NUMBERS_UP_TO else ""
    style = f"--row-h:{row_px:.1f}px;--name-w:{72 if named else 24}px"
    heads = "".join(
        f"<th title='predicted {escape(_name(names, c))}'>{_column_label(k, c)}</th>"
        for c in range(k)
    )
    peaks = _peaks(matrix)
    rows = "".join(_heat_row(names, matrix, acc, r, peaks) for r in range(k))
    return (
        f"<table class='hill-table hill-confusion hill-heat {size}' style='{style}'>"
        f"<colgroup><col class='hill-heat-name'><col span='{k}'><col class='hill-heat-acc'>"
        f"</colgroup><tr><th></th>{heads}<th title='validation accuracy of the class'>acc</th>"
        f"</tr>{rows}</table>"
    )


def _peaks(matrix: list[list[int]]) -> tuple[int, int]:
    """The largest diagonal and off-diagonal counts (at least 1): each kind's colour scale."""
    diagonal = max(row[r] for r, row in enumerate(matrix))
    off = max((v for r, row in enumerate(matrix) for c, v in enumerate(row) if r != c), default=0)
    return diagonal or 1, off or 1


def _heat_row(names, matrix, acc, r: int, peaks: tuple[int, int]) -> str:
    """Row ``r``: its label, C cells, and the class's accuracy."""
    numbers = len(matrix) <= NUMBERS_UP_TO
    cells = "".join(
        _cell(names, r, c, v, peaks[0] if r == c else peaks[1], numbers)
        for c, v in enumerate(matrix[r])
    )
    accuracy = f"<td class='hill-acc'>{pct(acc[r])}</td>" if r < len(acc) else "<td></td>"
    return (
        f"<tr><th class='hill-heat-row' title='true {escape(_name(names, r))}'>"
        f"{escape(_row_label(names, r))}</th>{cells}{accuracy}</tr>"
    )


def _cell(names: list[str], r: int, c: int, value: int, peak: int, numbers: bool) -> str:
    # Off-diagonal counts are the ones a person acts on (merge, separate), so they get red;
    # each kind is scaled to its own peak, or a 100-item diagonal would pale every confusion.
    alpha = 0.1 + 0.8 * value / peak if value else 0.0
    rgb = "44,160,44" if r == c else "214,39,40"
    ink = " color:#fff;" if alpha > 0.55 else ""
    title = (
        f"true {escape(_name(names, r))}, predicted {escape(_name(names, c))}: {value} "
        f"validation item{'' if value == 1 else 's'}; click to find the snapshot's points"
    )
    return (
        f"<td data-true='{r}' data-pred='{c}' data-count='{value}' title='{title}' "
        f"style='background:rgba({rgb},{alpha:.2f});{ink}'>{value if numbers else ''}</td>"
    )


def top_pairs(matrix: list[list[int]], n: int = TOP_CONFUSIONS) -> list[tuple[int, int, int]]:
    """The ``n`` largest non-zero off-diagonal cells as (true, predicted, count), largest
    first, ties in reading order."""
    cells = [(r, c, v) for r, row in enumerate(matrix) for c, v in enumerate(row) if r != c and v]
    return sorted(cells, key=lambda cell: -cell[2])[:n]


def _top_confusions(names: list[str], matrix: list[list[int]]) -> str:
    pairs = top_pairs(matrix)
    if not pairs:
        return "<p class='hill-muted'>No confusions on the validation split.</p>"
    items = "".join(
        f"<li><button type='button' class='hill-top-pair' data-true='{r}' data-pred='{c}' "
        f"data-count='{v}' title='true {escape(_name(names, r))}, predicted "
        f"{escape(_name(names, c))}: {v} validation items; click to find the snapshot's points'>"
        f"{escape(_name(names, r))} → {escape(_name(names, c))}: <b>{v}</b></button></li>"
        for r, c, v in pairs
    )
    return (
        "<p class='hill-top-head'><b>Top confusions</b> (true → predicted: validation items)"
        f"</p><ol class='hill-top-confusions'>{items}</ol>"
    )

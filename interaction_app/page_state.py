"""One gate's state behind its page: ``GatePage(snapshot, context, on_decision)``.

The page itself (the Gradio Blocks of :mod:`interaction_app.app`) holds nothing of a gate: its
callbacks ask for the gate they serve, so one page app serves every gate of the gate service
(the gate chosen by the request's path) and the in-process gate alike. What a gate needs is
here: its one recorder (every decision goes through it), the live readout, the open tabs
(presence), the item previews, and what the page's script opens with, serialized once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd

from hill_core.edits import validate_snapshot
from interaction_app.context import GateContext, GateDecision
from interaction_app.layout import Readout, view_payload
from interaction_app.panels import context_html
from interaction_app.presence import POLL_S, Presence
from interaction_app.recorder import GateRecorder


class GatePage:
    """A gate's recorder, readout, presence and items, and its page's opening JSON.

    Args:
        snapshot: the gate's snapshot table (sample_id, label, class_name, pred, x, y), N rows.
        context: what the person needs to decide and where the decision goes.
        on_decision: called once, after the edits Parquet is written, with the decision.
        validated: the snapshot is read_snapshot's (checked already).
    """

    def __init__(
        self,
        snapshot: pd.DataFrame,
        context: GateContext,
        on_decision: Callable[[GateDecision], None],
        validated: bool = False,
    ):
        self.note = snapshot_note(len(snapshot), context, snapshot.attrs.get("note", ""))
        # validated: the table comes from read_snapshot, which has checked it (~3 ms at 2,000
        # points, on the gate service's loop at a gate's first request)
        self.snapshot = snapshot if validated else validate_snapshot(snapshot)
        self.context = context
        self.recorder = GateRecorder(self.snapshot, context, on_decision)
        self.readout = Readout(self.snapshot, len(context.class_names), context.weights)
        self.presence = Presence()
        self.items = ItemLookup(self.snapshot)
        self._view_json: bytes | None = None
        self._opening: bytes | None = None

    @property
    def title(self) -> str:
        return f"hill gate · {self.context.run_name} · epoch {self.context.gate_epoch}"

    def view_json(self) -> bytes:
        """The N points as the page's script and the snapshot API read them (view_payload),
        serialized at the first ask: ~20 ms for 2,000 points, paid once per gate, not per tab."""
        if self._view_json is None:
            self._view_json = dumps(view_payload(self.snapshot, self.context.class_names))
        return self._view_json

    def snapshot_fields(self) -> dict[str, Any]:
        """What the snapshot APIs (Gradio's ``snapshot``, the service's ``/api/snapshot``) send
        beside the view: the gate and whether it is decided (the one field that changes)."""
        ctx, decision = self.context, self.recorder.decision
        return {
            "run_name": ctx.run_name,
            "run_id": ctx.run_id,
            "gate_epoch": ctx.gate_epoch,
            "decided": decision.decision if decision else None,
        }

    def opening(self) -> bytes:
        """What the page's script starts from (static/gate_state.js): ``view``, ``gate`` (key,
        note, has_items, status_ms), ``context_html`` (the side panel) and ``title``."""
        if self._opening is None:
            ctx = self.context
            rest = {
                "gate": {
                    "key": f"{ctx.run_id}:{ctx.gate_epoch}",
                    "note": self.note,
                    "has_items": bool(self.items),
                    "status_ms": int(1000 * POLL_S),
                },
                "context_html": context_html(ctx),
                "title": self.title,
            }
            self._opening = b'{"view":' + self.view_json() + b"," + dumps(rest)[1:]
        return self._opening


def dumps(value: Any) -> bytes:
    """Compact JSON, as FastAPI's JSONResponse writes it (no NaN: view_payload sends none)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def snapshot_note(rows: int, context: GateContext, note: str = "") -> str:
    """The page's line about the snapshot: ``context.snapshot_note`` or ``note`` as given, else
    one when it holds fewer items than ``hill.snapshot_size`` asked for (a smaller training
    set: all of it is shown)."""
    if context.snapshot_note or note:
        return context.snapshot_note or note
    if not context.snapshot_size or rows >= context.snapshot_size:
        return ""
    return (
        f"This snapshot holds {rows} items, fewer than hill.snapshot_size="
        f"{context.snapshot_size}: the training set is smaller, so all of it is shown."
    )


class ItemLookup:
    """``sample_id -> preview`` from the snapshot's optional ``item`` column (hill_core/snapshot.py:
    an image data URL or a line of text). Ids arrive as JSON numbers, possibly 3.0.

    The table is built at the first lookup (the first hover), not while the page starts: for
    10,000 rows it takes ~25 ms that the page's first answer need not wait for.
    """

    def __init__(self, snapshot: pd.DataFrame):
        self._ids = snapshot["sample_id"]
        self._items = snapshot["item"] if "item" in snapshot.columns else None
        self._table: dict[int, str] | None = None

    def __bool__(self) -> bool:
        """Whether any row has a preview (stops at the first one)."""
        return self._items is not None and any(_is_preview(item) for item in self._items)

    def get(self, sample_id: Any, default: Any = None) -> Any:
        if isinstance(sample_id, float) and sample_id.is_integer():
            sample_id = int(sample_id)
        if not isinstance(sample_id, int) or isinstance(sample_id, bool):
            return default
        return self._lookup().get(sample_id, default)

    def _lookup(self) -> dict[int, str]:
        # Two threads building it at once build the same table: no lock needed.
        if self._table is None:
            pairs = zip(self._ids, self._items if self._items is not None else (), strict=False)
            self._table = {int(sid): item for sid, item in pairs if _is_preview(item)}
        return self._table


def _is_preview(item: Any) -> bool:
    return isinstance(item, str) and bool(item)

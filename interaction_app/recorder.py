"""Records a gate's decision exactly once: validate, write the Parquet, then tell the caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from hill_core.decision import GateDecision as RecordedDecision
from hill_core.edits import (
    EditsError,
    EditsExistError,
    EditsMeta,
    edits_summary,
    file_sha256,
    make_edits,
    read_edits,
    snapshot_state,
    write_edits,
)
from interaction_app.context import DECISIONS, GateContext, GateDecision

SOURCES = {  # who decided, as the pages say it
    "page": " on the gate page",
    "prefect": " through Prefect",
    "timeout": " by the timeout (gate.timeout_s)",
}


class GateClosedError(RuntimeError):
    """The gate already has a decision; the message says which."""


class GateRecorder:
    """One per gate app: a lock and a 'decided' flag shared by every tab and API client.

    The edits file is written exclusively, so across processes too (the gate service, the
    flow resumed from Prefect's form, a timeout) the first decision recorded stands.
    """

    def __init__(
        self,
        snapshot: pd.DataFrame,
        context: GateContext,
        on_decision: Callable[[GateDecision], None],
    ):
        self.snapshot = snapshot
        self.context = context
        self.on_decision = on_decision
        self._lock = threading.Lock()
        self.decision: GateDecision | None = None
        self.decided_at: float | None = None  # time.time() when this page learnt the decision
        self._moved_any: bool | None = None  # whether the recorded file moves a point
        self._layout: dict[str, list] | None = None  # recorded_layout(), read once

    def record(
        self,
        decision: str,
        x: np.ndarray | None,
        y: np.ndarray | None,
        moved: np.ndarray | None,
        source: str = "page",
        *,
        label_after: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
    ) -> GateDecision:
        """Write the edits table for ``decision`` and call ``on_decision`` once.

        Skip and stop ignore the edit and write the unedited table, so that a replay of a run
        needs only its files; so does approve without positions (decided outside the page).
        Unedited keeps the corrections in force (the snapshot's current labels and exclusions).
        ``source`` says who decided (page, prefect, timeout) and is kept in the file.

        Args:
            x, y, moved: (N,) target positions and moved flags, aligned with the snapshot.
            label_after: (N,) int64 class of each item after the gate; None: unchanged.
            excluded: (N,) bool, items out of training after the gate; None: unchanged.

        Raises:
            GateClosedError: a decision was already recorded (the file stays as it was).
            EditsError: the decision or the edits are invalid (nothing is written).
        """
        if decision not in DECISIONS:
            raise EditsError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
        with self._lock:  # held through the write so two clicks cannot both pass the check
            if self.decision is None and Path(self.context.edits_path).exists():
                self._set(RecordedDecision.recorded(self.context.edits_path))
            if self.decision is not None:
                raise GateClosedError(self.closed_message())
            if decision != "approve" or x is None:
                x, y = self.snapshot["x"].to_numpy(), self.snapshot["y"].to_numpy()
                moved = np.zeros(len(self.snapshot), bool)
                label_after = excluded = None
            try:
                path = self._write(decision, (x, y, moved, label_after, excluded), source)
            except EditsExistError:  # another process recorded it a moment ago
                self._set(RecordedDecision.recorded(self.context.edits_path))
                raise GateClosedError(self.closed_message()) from None
            result = GateDecision(decision, str(path), file_sha256(path), source)
            self._set(result)
        self.on_decision(result)
        return result

    def _set(self, decision: GateDecision) -> None:
        self.decision, self.decided_at = decision, time.time()
        self._moved_any = self._layout = None  # read from the file when first asked for

    def layout_edited(self) -> bool:
        """Whether the recorded file moves any point (an approval then teaches a layout)."""
        if self._moved_any is None:
            edits, _ = read_edits(self.decision.edits_path)
            self._moved_any = edits_summary(edits)["points_displaced"] > 0
        return self._moved_any

    def recorded_layout(self) -> dict[str, list]:
        """What the recorded file changes, for every open page to show: one list per column
        (``sample_id``, ``x``, ``y``, ``moved``, ``label``, ``excluded``) over the rows whose
        position, moved flag, label or exclusion differ from the snapshot's. Empty lists for a
        skip, a stop or an unedited approve (the model's layout is what was recorded)."""
        if self._layout is None:
            edits, _ = read_edits(self.decision.edits_path)
            state = snapshot_state(self.snapshot).set_index(self.snapshot["sample_id"].to_numpy())
            self._layout = layout_changes(edits, state.loc[edits["sample_id"].to_numpy()])
        return self._layout

    def announcement(self) -> str:
        """One line for every open page: what was recorded, when, by whom, where the run goes."""
        d = self.decision
        when = time.strftime("%H:%M:%S", time.localtime(self.decided_at or time.time()))
        by = SOURCES.get(d.source, f" ({d.source})" if d.source and d.source != "?" else "")
        edited = d.decision != "approve" or self.layout_edited()
        return f"Recorded {d.decision} at {when}{by}: {self.context.next_step(d.decision, edited)}."

    def _write(self, decision: str, edit: tuple, source: str) -> Path:
        ctx = self.context
        x, y, moved, label_after, excluded = edit
        edits = make_edits(
            self.snapshot, x, y, moved, ctx.run_id, ctx.gate_epoch, label_after, excluded
        )
        meta = EditsMeta(
            config_hash=ctx.config_hash,
            decision=decision,
            source=source,
            num_classes=len(ctx.class_names),  # so write_edits refuses an unknown class id
        )
        return write_edits(ctx.edits_path, edits, meta, self.snapshot, exclusive=True)

    def closed_message(self) -> str:
        """One line: what was decided and where it went."""
        d, epoch = self.decision, self.context.gate_epoch
        return f"gate at epoch {epoch} already decided: {d.decision} ({d.edits_path})"


def layout_changes(edits: pd.DataFrame, state: pd.DataFrame) -> dict[str, list]:
    """The edits rows that differ from the snapshot (``state``: its current labels and
    exclusions, in the edits' row order), as JSON-ready lists (positions in view units)."""
    changed = (
        (edits["x_after"].to_numpy() != edits["x_before"].to_numpy())
        | (edits["y_after"].to_numpy() != edits["y_before"].to_numpy())
        | edits["moved"].to_numpy()
        | (edits["label_after"].to_numpy() != state["current_label"].to_numpy())
        | (edits["excluded"].to_numpy() != state["excluded"].to_numpy())
    )
    rows = edits[changed]
    return {
        "sample_id": rows["sample_id"].astype(int).tolist(),
        "x": rows["x_after"].astype(float).tolist(),
        "y": rows["y_after"].astype(float).tolist(),
        "moved": rows["moved"].astype(bool).tolist(),
        "label": rows["label_after"].astype(int).tolist(),
        "excluded": rows["excluded"].astype(bool).tolist(),
    }

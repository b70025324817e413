"""Records a gate's decision exactly once: validate, write the Parquet, then tell the caller."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from hill_core.decision import GateDecision as RecordedDecision
from hill_core.edits import (
    EditsError,
    EditsExistError,
    EditsMeta,
    file_sha256,
    make_edits,
    write_edits,
)
from interaction_app.context import DECISIONS, GateContext, GateDecision


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

    def record(
        self,
        decision: str,
        x: np.ndarray | None,
        y: np.ndarray | None,
        moved: np.ndarray | None,
        source: str = "page",
    ) -> GateDecision:
        """Write the edits table for ``decision`` and call ``on_decision`` once.

        Skip and stop ignore the positions and write the unedited table, so that a replay of a
        run needs only its files; so does approve without positions (decided outside the page).
        ``source`` says who decided (page, prefect, timeout) and is kept in the file.

        Raises:
            GateClosedError: a decision was already recorded (the file stays as it was).
            EditsError: the decision or the edits are invalid (nothing is written).
        """
        if decision not in DECISIONS:
            raise EditsError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
        with self._lock:  # held through the write so two clicks cannot both pass the check
            if self.decision is None and Path(self.context.edits_path).exists():
                self.decision = RecordedDecision.recorded(self.context.edits_path)
            if self.decision is not None:
                raise GateClosedError(self.closed_message())
            if decision != "approve" or x is None:
                x, y = self.snapshot["x"].to_numpy(), self.snapshot["y"].to_numpy()
                moved = np.zeros(len(self.snapshot), bool)
            try:
                path = self._write(decision, x, y, moved, source)
            except EditsExistError:  # another process recorded it a moment ago
                self.decision = RecordedDecision.recorded(self.context.edits_path)
                raise GateClosedError(self.closed_message()) from None
            result = GateDecision(decision, str(path), file_sha256(path), source)
            self.decision = result
        self.on_decision(result)
        return result

    def _write(self, decision: str, x, y, moved, source: str) -> Path:
        ctx = self.context
        edits = make_edits(self.snapshot, x, y, moved, ctx.run_id, ctx.gate_epoch)
        meta = EditsMeta(config_hash=ctx.config_hash, decision=decision, source=source)
        return write_edits(ctx.edits_path, edits, meta, self.snapshot, exclusive=True)

    def closed_message(self) -> str:
        """One line: what was decided and where it went."""
        d, epoch = self.decision, self.context.gate_epoch
        return f"gate at epoch {epoch} already decided: {d.decision} ({d.edits_path})"

"""A gate's decision: the one type the gate page, Prefect's resume, the flow and replays share.

Every decision (approve, skip or stop) is recorded as the gate's edits Parquet before anything
acts on it; skip and stop record the unedited layout. So a decision is its file: the path, the
file's sha256 as recorded, and who decided. The teacher comes from the file too, which is what
makes a run replay from files alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hill_core.corrections import Corrections, corrections_from_edits
from hill_core.edits import EditsError, file_sha256, read_edits
from hill_core.teacher import Teacher, teacher_from_edits


@dataclass(frozen=True)
class GateDecision:
    """What a gate decided and the edits file that records it.

    Attributes:
        decision: ``approve``, ``skip`` or ``stop``.
        edits_path: the gate's edits Parquet (written for every decision).
        edits_sha256: hex SHA-256 of that file as recorded; :meth:`verified` checks it.
        source: who decided: ``page``, ``prefect`` (a resume through Prefect's UI or API),
            ``timeout``, ``autopilot:<strategy>`` or ``replay``.
    """

    decision: str
    edits_path: str
    edits_sha256: str
    source: str

    @classmethod
    def recorded(cls, path: str | Path, source: str | None = None) -> GateDecision:
        """The decision an edits file records (its metadata says who, unless ``source``)."""
        _, meta = read_edits(path)
        return cls(meta.decision, str(path), file_sha256(path), source or meta.source or "?")

    def verified(self) -> GateDecision:
        """Self, once the file is checked to be the one recorded (not changed since)."""
        if file_sha256(self.edits_path) != self.edits_sha256:
            raise EditsError(f"{self.edits_path} changed after the gate recorded it")
        return self

    def teacher(self, num_classes: int) -> Teacher | None:
        """The teacher this decision sets: an edited approval's; None for anything else."""
        if self.decision != "approve":
            return None
        edits, _ = read_edits(self.edits_path)
        teacher = teacher_from_edits(edits, num_classes)
        return teacher if teacher.edited else None

    def corrections(self, num_classes: int) -> Corrections | None:
        """The label corrections an approval puts in force (None: none, or not an approval).

        A skip or stop records the corrections in force unchanged, so what was in force stays.
        """
        if self.decision != "approve":
            return None
        edits, _ = read_edits(self.edits_path)
        corrections = corrections_from_edits(edits, num_classes)
        return None if corrections.empty else corrections

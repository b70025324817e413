"""The guard: did the last edit help? Judged against the lockstep baseline, on validation data.

After the segment that follows a gate, the guided run and its baseline stand at the same epoch.
The edit's *gain* is how much the guided-minus-baseline gap in validation accuracy changed over
that segment, in percentage points (pp). Measuring the change, not the gap, credits each edit
only with what happened while it was the teacher. The test split is never looked at.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GuardVerdict:
    """What the guard decided about the teacher of the gate at ``gate_epoch``.

    Attributes:
        teacher_gate: the gate whose edit was the teacher in the segment.
        gate_epoch, epoch: the segment judged runs from the gate at ``gate_epoch`` to ``epoch``
            (a teacher kept through a skipped gate is judged again on the next segment).
        action: ``keep``, ``revert`` (drop the teacher and re-train the segment without it) or
            ``adapt`` (keep it with alpha scaled by ``alpha_scale`` from here on).
        gain_pp: change of the guided-minus-baseline validation gap over the segment, pp.
        guided_acc, baseline_acc: validation accuracy of both runs at ``epoch`` (fractions).
    """

    mode: str
    teacher_gate: int
    gate_epoch: int
    epoch: int
    gain_pp: float
    guided_acc: float
    baseline_acc: float
    tolerance_pp: float
    action: str
    alpha_scale: float

    def line(self) -> str:
        """``guard (revert): reverted the gate-4 teacher (-2.10 pp against the baseline ...)``."""
        did = {"keep": "kept", "revert": "reverted", "adapt": "adapted"}[self.action]
        alpha = f", alpha x{self.alpha_scale:.2f}" if self.action == "adapt" else ""
        return (
            f"guard ({self.mode}): {did} the gate-{self.teacher_gate} teacher "
            f"({self.gain_pp:+.2f} pp against the baseline from epoch {self.gate_epoch} to "
            f"{self.epoch}: guided "
            f"{100 * self.guided_acc:.2f}%, baseline {100 * self.baseline_acc:.2f}%, "
            f"tolerance {self.tolerance_pp:g} pp{alpha})"
        )

    def metrics(self) -> dict[str, float]:
        """For MLflow, at step ``epoch``."""
        return {
            "guard_gain_pp": self.gain_pp,
            "guard_guided_val_acc": self.guided_acc,
            "guard_baseline_val_acc": self.baseline_acc,
            "guard_reverted": float(self.action == "revert"),
            "guard_alpha_scale": self.alpha_scale,
        }


def judge(
    mode: str,
    tolerance_pp: float,
    teacher_gate: int,
    gate_epoch: int,
    guided_val: dict[int, float],
    baseline_val: dict[int, float],
    epoch: int,
) -> GuardVerdict:
    """Judge the teacher of ``teacher_gate`` over the segment from ``gate_epoch`` to ``epoch``.

    Args:
        mode: ``off`` (judge and report only), ``revert`` or ``adapt`` (hill.guard).
        guided_val, baseline_val: validation accuracy by epoch (fractions); the baseline forks
            from the guided run, so at the first gate the two are equal.
    """
    gap_then = guided_val[gate_epoch] - baseline_val[gate_epoch]
    gap_now = guided_val[epoch] - baseline_val[epoch]
    gain = 100.0 * (gap_now - gap_then)
    action, scale = "keep", 1.0
    if mode == "revert" and gain < -tolerance_pp:
        action = "revert"
    elif mode == "adapt" and gain < 0:
        # An edit that cost the tolerance or more gets no weight; half as much, half weight.
        action = "adapt"
        scale = max(0.0, 1.0 + gain / tolerance_pp) if tolerance_pp > 0 else 0.0
    return GuardVerdict(
        mode, teacher_gate, gate_epoch, epoch, gain, guided_val[epoch], baseline_val[epoch],
        tolerance_pp, action, scale,
    )  # fmt: skip

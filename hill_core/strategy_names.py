"""The simulated users' names, without their code: a command checks ``--autopilot`` against
these before it imports numpy, pandas or torch (``hill_core.users`` holds the strategies and a
test ties the two)."""

from __future__ import annotations

LAYOUT_STRATEGIES = (
    "compactness", "separation", "merge", "fix-outliers", "confusion", "adversarial", "noedit",
)  # fmt: skip
LABEL_STRATEGIES = ("oracle", "oracle-random", "oracle-drag", "auto-relabel")
ALL_STRATEGIES = (*LAYOUT_STRATEGIES, *LABEL_STRATEGIES)

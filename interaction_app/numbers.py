"""How the gate page writes numbers: percentages, signed percentage points, one minus sign."""

from __future__ import annotations

import re

MINUS = "\u2212"  # the page's one minus sign: "−0.37 pp", never a hyphen
# A hyphen that is a sign: before a digit and not inside a word ("gate-4", "2026-12-05" keep
# theirs). The guard's line comes from hill_core, which logs plain ASCII.
_SIGN = re.compile(r"(?<![\w.])-(?=\.?\d)")


def pct(fraction: float) -> str:
    """``0.851`` -> ``"85.1%"``."""
    return f"{100 * fraction:.1f}%"


def signed(value: float, digits: int = 2) -> str:
    """``value`` with its sign and a true minus: ``"+0.30"``, ``"−1.50"``; never ``"−0.00"``."""
    value = round(value, digits) or 0.0
    return f"{value:+.{digits}f}".replace("-", MINUS)


def pp(fraction: float) -> str:
    """A difference of two accuracies (fractions) in percentage points: ``"−1.50 pp"``."""
    return f"{signed(100 * fraction)} pp"


def true_minus(text: str) -> str:
    """``text`` with every sign hyphen (``"-2.10 pp"``) written as the page's minus sign."""
    return _SIGN.sub(MINUS, text)

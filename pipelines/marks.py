"""Wall-clock timestamps of a run's milestones, for benchmarks (``benchmarks/launch.py``).

Written only when ``HILL_MARKS`` names a file: one line ``<unix time> <cpu s> <event>`` per
milestone, appended. Without it a mark costs one environment lookup and writes nothing, so
users' logs and folders see none of it. Unix time, not a monotonic clock: the reader is another
process (the benchmark that launched ``hill``), and both read the same system clock. The CPU
seconds the process has used so far (all its threads) tell a busy machine's waiting apart from
hill's own work.
"""

from __future__ import annotations

import os
import time

ENV = "HILL_MARKS"


def mark(event: str) -> None:
    """Append ``<unix time> <cpu s> <event>`` to the file ``HILL_MARKS`` names; nothing when
    it is unset."""
    path = os.environ.get(ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"{time.time():.6f} {time.process_time():.3f} {event}\n")


def read_marks(path: str | os.PathLike) -> list[tuple[float, float, str]]:
    """The marks written to ``path``, in order: ``[(unix time, cpu s, event), ...]``."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    rows = (line.split(" ", 2) for line in lines if line)
    return [(float(when), float(cpu), event) for when, cpu, event in rows]

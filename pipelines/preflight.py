"""Everything a run can check before it trains, so a mistake costs one line and no work.

``check_run`` is called by the flow before its first task (every entry point: `hill run`,
`hill replay`, a deployment, a study) and by the CLI before it starts the flow; the CLI also
refuses a run name that is already taken (`check_new_run`).
"""

from __future__ import annotations

import re
from pathlib import Path

from hill_core.config import Config
from hill_core.errors import HillError
from hill_core.users import ALL_STRATEGIES as STRATEGIES

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # one folder name, never a path


def check_run(cfg: Config, mode: str, name: str | None, autopilot: str | None,
              replay_from: str | None) -> None:  # fmt: skip
    """Raise :class:`HillError` for anything that would fail later in the run.

    In order: the run name, the simulated user, the replay's edits, the device, the data (loaded
    once here; the tasks reuse it), the DVC repository and the gate page's bind and auth.
    """
    from hill_core.data import load_data
    from hill_core.train import resolve_device

    if name is not None:
        check_name(name)
    check_strategy(autopilot)
    if mode == "replay" and not replay_from:
        raise HillError("a replay needs spec.replay_from, the recorded edits folder")
    if replay_from:
        from pipelines.replay import check_replay_gates

        check_replay_gates(cfg, Path(replay_from))
    resolve_device(cfg.base.device)
    load_data(cfg.data, cfg.base.seed)
    if mode == "guided" and cfg.hill.gate_epochs:
        from pipelines.versioning import check_repo

        check_repo()
        if not autopilot:
            check_gate_page(cfg)


def check_strategy(autopilot: str | None) -> None:
    """A simulated user hill knows (None: a person answers)."""
    if autopilot is not None and autopilot not in STRATEGIES:
        raise HillError(f"unknown strategy {autopilot!r} (known: {', '.join(STRATEGIES)})")


def check_name(name: str) -> None:
    """A run name is one plain folder name: no path separators, no ``..``, no hidden files."""
    if not RUN_NAME.fullmatch(name) or ".." in name:
        raise HillError(
            f"run name {name!r}: use letters, digits, '.', '_' and '-' (at most 128, first a "
            "letter or digit); it names folders under runs/ and data/edits/"
        )


def check_new_run(cfg: Config, name: str | None) -> None:
    """Refuse a name that already has a run: re-using it would mix two runs' files."""
    if name is None:
        return
    check_name(name)
    folder = Path(cfg.base.run_dir) / name
    if folder.exists():
        raise HillError(
            f"a run named {name!r} already exists ({folder}): `hill resume {name}` continues "
            "it if it stopped; pick another --name for a new run"
        )


def check_gate_page(cfg: Config) -> None:
    """The gate page's bind, auth and TLS files, as the page checks them at the first gate."""
    from interaction_app.gate_checks import check_gate

    check_gate(cfg.gate)

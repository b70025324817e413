"""Everything a run can check before it trains, so a mistake costs one line and no work.

``check_run`` is called by the flow before its first task (every entry point: `hill run`,
`hill replay`, a deployment, a study) and by the CLI before it starts the flow; the CLI also
refuses a run name that is already taken (`check_new_run`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from hill_core.config import Config
from hill_core.errors import HillError
from hill_core.strategy_names import ALL_STRATEGIES as STRATEGIES

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # one folder name, never a path


def check_run(cfg: Config, mode: str, name: str | None, autopilot: str | None,
              replay_from: str | None) -> None:  # fmt: skip
    """Raise :class:`HillError` for anything that would fail later in the run.

    In order: the run name, the simulated user, the replay's edits, the device, the data (loaded
    once here; the tasks reuse it) and that it is the data the run recorded, the model (built
    once on the CPU: a user's network is checked here), the DVC repository and the gate page's
    bind and auth.
    """
    from hill_core.data import load_data
    from hill_core.models import AUTO_PRESET, PRESETS, build_model
    from hill_core.train import resolve_device
    from pipelines.paths import RunPaths

    if name is not None:
        check_name(name)
    check_strategy(autopilot)
    if mode == "replay" and not replay_from:
        raise HillError("a replay needs spec.replay_from, the recorded edits folder")
    if replay_from:
        from pipelines.replay import check_replay_gates

        check_replay_gates(cfg, Path(replay_from))
    resolve_device(cfg.base.device)
    data = load_data(cfg.data, cfg.base.seed)
    check_same_data(data, [RunPaths.of(cfg, name).run_dir] if name else [], replay_from)
    if not (cfg.model.name in PRESETS and data.name in AUTO_PRESET):  # built-ins always fit
        build_model(cfg.model, data.name, data.input_shape, data.num_classes)
    if mode == "guided" and cfg.hill.gate_epochs:
        from pipelines.versioning import check_repo

        check_repo()
        if not autopilot:
            check_gate_page(cfg)


DATA_FINGERPRINT = "data.json"  # beside a run's checkpoints and beside its recorded edits


def check_same_data(data, run_dirs: list[Path], replay_from: str | None) -> None:
    """The data is what the run (resumed, or replayed from ``replay_from``) trained on: each
    folder's recorded fingerprint, where there is one, matches ``data``'s."""
    from hill_core.data.fingerprint import fingerprint, what_changed

    now = None
    for folder in [*run_dirs, *([Path(replay_from)] if replay_from else [])]:
        file = folder / DATA_FINGERPRINT
        if not file.is_file():
            continue
        now = now or fingerprint(data)
        try:
            recorded = json.loads(file.read_text())
        except (OSError, ValueError) as err:
            raise HillError(f"{file}: not a readable data fingerprint ({err})") from None
        change = what_changed(recorded, now)
        if change:
            raise HillError(
                f"{data.name} changed since the run in {folder} recorded it: {change} "
                f"(restore the data, or start a new run)"
            )


def record_data(data, folders: list[Path]) -> None:
    """Write ``data``'s fingerprint in each folder that has none yet (the first start)."""
    from hill_core.data.fingerprint import fingerprint

    text = None
    for folder in folders:
        file = folder / DATA_FINGERPRINT
        if file.is_file():
            continue
        text = text or json.dumps(fingerprint(data), indent=1)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.tmp")
        tmp.write_text(text)
        tmp.replace(file)


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

"""Finding a recorded run's edits and checking that a replay trains what the run trained."""

from __future__ import annotations

from pathlib import Path

from hill_core.config import Config, load_config
from hill_core.edits import read_edits
from hill_core.errors import HillError

# Keys that do not change what is trained: where files go and how a person is asked.
UNTRAINED = ("base.run_dir", "gate.", "tracking.")


def resolve_edits_dir(target: str, cfg: Config) -> Path:
    """A run's edits folder from a folder, a run name, or the edits root (its newest run).

    Raises:
        ValueError: nothing with gate edits there.
    """
    path = Path(target)
    if not path.is_dir():
        path = Path(cfg.tracking.edits_dir) / target
    if _gate_files(path):
        return path
    runs = sorted(p for p in path.iterdir() if _gate_files(p)) if path.is_dir() else []
    if not runs:
        raise HillError(f"{target}: no gate edits (gate_*.parquet) there or in its sub-folders")
    return runs[-1]  # run names start with their start time, so the last is the newest


def _gate_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("gate_*.parquet")) if folder.is_dir() else []


def check_replay_config(cfg: Config, folder: Path) -> None:
    """Fail when ``cfg`` would train differently from the run recorded in ``folder``.

    Compares with the run's resolved ``config.yaml`` key by key when it is there, else with the
    config hash stamped in the edits files.
    """
    recorded = folder / "config.yaml"
    if recorded.is_file():
        ours, theirs = _trained(cfg), _trained(load_config(recorded))
        diff = sorted(k for k in ours if ours[k] != theirs.get(k))
        if diff:
            shown = ", ".join(f"{k}={ours[k]!r} (recorded {theirs.get(k)!r})" for k in diff)
            raise HillError(f"{folder}: this config trains differently from the run: {shown}")
        return
    _, meta = read_edits(_gate_files(folder)[0])
    if meta.config_hash != cfg.hash():
        raise HillError(
            f"{folder}: config hash {cfg.hash()} differs from the recorded {meta.config_hash}"
        )


def check_replay_gates(cfg: Config, folder: Path) -> None:
    """Fail, before any training, when a gate the replay will reach has no readable edits
    file (gates after a recorded *stop* are never reached)."""
    from hill_core.loop import gate_file

    for epoch in cfg.hill.gate_epochs:
        path = gate_file(folder, epoch)
        if not path.is_file():
            raise HillError(f"{folder}: no edits for the gate at epoch {epoch} ({path.name})")
        check_as_recorded(path)
        _, meta = read_edits(path)  # an unreadable or invalid file: one line naming it
        if meta.decision == "stop":
            return


def check_as_recorded(path: Path) -> None:
    """An edits file is byte for byte what its gate recorded: the md5 in its DVC pointer
    (``<file>.dvc``), where it has one. A file changed since (a row dropped by hand) would
    replay another run, silently."""
    import hashlib

    from pipelines.versioning import dvc_md5

    recorded = dvc_md5(path)
    if recorded and hashlib.md5(path.read_bytes()).hexdigest() != recorded:
        raise HillError(
            f"{path} changed since its gate recorded it (md5 differs from {path.name}.dvc): "
            f"restore it with `dvc checkout {path}`"
        )


def _trained(cfg: Config) -> dict:
    return {k: v for k, v in cfg.flat().items() if not k.startswith(UNTRAINED)}

"""Where a run's files live: runs/<run> (checkpoints, snapshots), data/edits/<run> (edits).

Paths are relative to the project root (the working directory, as for dvc and mlflow), so a
checkout moved elsewhere still finds its runs.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hill_core.config import Config, dump_yaml
from hill_core.loop import gate_file


@dataclass(frozen=True)
class RunPaths:
    """The folders of one run and the file names inside them."""

    name: str
    run_dir: Path  # checkpoints, snapshots, gate plots (not versioned)
    edits_dir: Path  # gate edits Parquet (DVC-tracked)

    @classmethod
    def of(cls, cfg: Config, name: str) -> RunPaths:
        return cls(name, Path(cfg.base.run_dir) / name, Path(cfg.tracking.edits_dir) / name)

    def checkpoint(self, epoch: int) -> Path:
        return self.run_dir / f"ckpt_epoch_{epoch:04d}.pt"

    def snapshot(self, gate_epoch: int) -> Path:
        return self.run_dir / f"snapshot_{gate_epoch:04d}.parquet"

    def edits(self, gate_epoch: int) -> Path:
        return gate_file(self.edits_dir, gate_epoch)

    def flow_params(self) -> Path:
        """The flow's parameters (config and spec) as it was started: ``hill resume`` reads it."""
        return self.run_dir / "flow_params.json"

    def summary(self) -> Path:
        """The final scores, written when the run finishes."""
        return self.run_dir / "summary.json"

    def config(self) -> Path:
        """The resolved config, beside the edits so that a replay can check it trains the same."""
        return self.edits_dir / "config.yaml"


def new_run_name(cfg: Config, mode: str) -> str:
    """``digits-guided-20260101-120000``: sorts by start time, readable in every listing."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{cfg.data.short_name}-{mode}-{stamp}"


def git_commit(root: Path | str = ".") -> str:
    """The checked-out commit (``+dirty`` when the tree has changes), or ``none`` outside git."""
    try:
        head = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "none"
    return head + ("+dirty" if dirty else "")


def _git(root: Path | str, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
    )
    return out.stdout.strip()


def config_yaml(cfg: Config) -> str:
    """The resolved config as YAML, stamped with its hash and the git commit."""
    header = f"# hill resolved config {cfg.hash()}, git commit {git_commit()}\n"
    return header + dump_yaml(cfg.to_dict())  # YAML 1.2, as load_config reads it back

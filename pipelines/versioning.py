"""DVC at the edge: gate edits are tracked with ``dvc add`` through DVC's Python API.

When the repository has a default remote (``dvc remote add -d``), each gate's edits are also
pushed to it as soon as they are recorded: a team's runs on several workers, and a lost
worker's disk, keep every edit where ``dvc pull`` finds it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import yaml

from hill_core.errors import HillError

LOCK_WAIT_S = 120.0  # another dvc command (a `dvc status` in a shell) may hold the repo lock
LOCK_RETRY_S = 0.25


class VersioningError(HillError):
    """The project cannot version edits as configured; the message says what to do."""


def check_repo(root: Path | str = ".") -> Path:
    """The DVC root that will track edits; fails early, before any training, when there is none.

    DVC's own ``Repo.find_root`` walk (the nearest folder with ``.dvc/``, up to the mount
    point), without importing DVC: a run checks this before it starts, and DVC's import costs
    more than the walk; DVC itself is imported at the first gate, which needs it.
    """
    folder = Path(os.path.abspath(root))
    while True:
        if (folder / ".dvc").is_dir():
            return folder
        if os.path.ismount(folder) or folder.parent == folder:
            raise VersioningError(
                f"{Path(root).resolve()} is not in a DVC repository: run `git init && dvc init` "
                "there (gate edits are versioned with DVC)"
            )
        folder = folder.parent


def dvc_add(path: Path | str, wait_s: float = LOCK_WAIT_S) -> str:
    """Track ``path`` as ``dvc add`` does, waiting up to ``wait_s`` for the repo lock.

    Returns:
        the md5 DVC recorded in ``<path>.dvc``.
    """
    from dvc.lock import LockError
    from dvc.repo import Repo

    path = Path(path).resolve()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with Repo(str(check_repo(path.parent))) as repo:
                repo.scm_context.quiet = True  # no "git add ..." hints in the run's logs
                repo.add(str(path))
            return dvc_md5(path)
        except LockError:
            if time.monotonic() > deadline:
                raise
            time.sleep(LOCK_RETRY_S)


def dvc_push(path: Path | str, wait_s: float = LOCK_WAIT_S) -> str:
    """Push a tracked file to the repository's default remote; returns the remote's name, or
    "" when none is configured (a laptop's project: nothing to push)."""
    from dvc.lock import LockError
    from dvc.repo import Repo

    path = Path(path).resolve()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with Repo(str(check_repo(path.parent))) as repo:
                remote = repo.config.get("core", {}).get("remote", "")
                if remote:
                    repo.push(targets=[str(path)], remote=remote)
                return remote
        except LockError:
            if time.monotonic() > deadline:
                raise
            time.sleep(LOCK_RETRY_S)


def dvc_md5(path: Path | str) -> str:
    """The md5 of a DVC-tracked file, read from its ``.dvc`` file ("" when untracked)."""
    meta = Path(f"{path}.dvc")
    if not meta.is_file():
        return ""
    outs = yaml.safe_load(meta.read_text()).get("outs") or [{}]
    return str(outs[0].get("md5", ""))

"""Checkpoints: a training state as a plain dict, written atomically, read without running code.

A checkpoint holds the weights, optimiser, scheduler, frozen projection, epoch, the caller's
bookkeeping and every RNG state, so loading it and training on gives the same weights as
training straight through. It is read with ``torch.load(weights_only=True)``: tensors and plain
containers only.
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import torch

from hill_core.config import Config
from hill_core.data import DataBundle
from hill_core.errors import HillError
from hill_core.projection import Projection
from hill_core.rng import rng_states, set_rng_states
from hill_core.train import TrainState, init_state

# 2: RNG states are plain lists, so a checkpoint loads with torch.load(weights_only=True).
CHECKPOINT_VERSION = 2


class CheckpointError(HillError):
    """A checkpoint that cannot be loaded safely; the message names the file, in one line."""


def save_state(state: TrainState, path: str | Path) -> Path:
    """Write a checkpoint (plain dict: weights, optimiser, scheduler, P, RNG states, epoch)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(checkpoint_of(state), tmp)
    tmp.replace(path)  # atomic: a crash mid-save leaves the previous checkpoint intact
    return path


def checkpoint_of(state: TrainState) -> dict:
    """The state as a plain dict (tensors shared with the live state: copy before mutating)."""
    return {
        "version": CHECKPOINT_VERSION,
        "config": state.config.to_dict(),
        "config_hash": state.config.hash(),
        "epoch": state.epoch,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "projection": None if state.projection is None else state.projection.state_dict(),
        "rng": state.rng or rng_states(),
        "extra": state.extra,
    }


def fork_state(state: TrainState, cfg: Config | None = None) -> TrainState:
    """An independent copy of ``state`` (own weights, optimiser and RNG), under ``cfg``."""
    return restore_state(copy.deepcopy(checkpoint_of(state)), cfg or state.config, state.data)


def load_state(path: str | Path, cfg: Config, data: DataBundle) -> TrainState:
    """Rebuild a :class:`TrainState` from :func:`save_state`'s file and restore every RNG.

    The file is read with ``weights_only=True``: tensors and plain containers only, so a crafted
    or foreign checkpoint cannot run code while it loads.

    Raises:
        CheckpointError: the file is missing, corrupt, not a hill checkpoint, or holds objects
            beyond tensors and plain data.
    """
    checkpoint = read_checkpoint(path)
    if checkpoint.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {checkpoint.get('version')} is not supported "
            f"(this hill writes version {CHECKPOINT_VERSION})"
        )
    return restore_state(checkpoint, cfg, data)


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict of ``path``, loaded with ``weights_only=True``, or one clear error."""
    try:
        checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: refused, not plain tensors and data ({first})") from None
    except Exception as err:  # torch's reader fails on foreign bytes in many ways (KeyError...)
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a hill checkpoint")
    return checkpoint


def restore_state(checkpoint: dict, cfg: Config, data: DataBundle) -> TrainState:
    """A :class:`TrainState` from :func:`checkpoint_of`'s dict; the RNG goes on from it."""
    state = init_state(cfg, data)
    state.model.load_state_dict(checkpoint["model"])
    state.optimizer.load_state_dict(checkpoint["optimizer"])
    state.scheduler.load_state_dict(checkpoint["scheduler"])
    if checkpoint["projection"] is not None:
        state.projection = Projection(state.model.latent_dim)
        state.projection.load_state_dict(checkpoint["projection"])
        state.projection = state.projection.to(state.device).requires_grad_(False)
    state.epoch = checkpoint["epoch"]
    state.extra = checkpoint.get("extra", {})
    state.rng = checkpoint["rng"]
    set_rng_states(state.rng)
    return state

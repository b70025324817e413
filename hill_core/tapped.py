"""A user's own network, with its latent z read by a forward hook: :class:`LatentTap`.

``model.name`` names a factory (``"package.module:factory"``) or a torchvision architecture
(``"torchvision:resnet18"``), and ``model.latent`` the submodule whose output is z. hill does
not change the network: the hook is registered for the length of one forward call and removed
after it, so the network pickles, logs to MLflow and serves exactly as its author wrote it.
Logits come from the network's own ``forward``.

Every check runs when the model is built, before any training, and fails in one line: a factory
that returns no ``nn.Module``, a latent that names no submodule (the line lists those there
are), a latent whose output is not (B, ...), logits that are not (B, C), weights that do not fit.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import torch
from torch import nn

from hill_core.config import ModelConfig
from hill_core.errors import HillError
from hill_core.imports import call_factory, import_object, one_line

PROBE_BATCH = 2  # items of the build-time probe forward: B = 2 tells the batch axis apart
LISTED_MODULES = 40  # at most this many module names in the "names no module" line


class LatentTap(nn.Module):
    """``net`` with ``latent_and_logits``: z = the output of ``net.<latent>``, flattened."""

    def __init__(self, net: nn.Module, latent: str, latent_dim: int):
        super().__init__()
        self.net = net
        self.latent_name = latent
        self.latent_dim = latent_dim

    def latent_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, ...) inputs -> z (B, d) and logits (B, C), from one forward pass."""
        z, logits = tapped_forward(self.net, self.latent_name, x)  # z checked at build
        return z.flatten(1), logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def tapped_forward(net: nn.Module, latent: str, x: torch.Tensor):
    """``net(x)`` and what ``net.<latent>`` output during it (its last call; None if never)."""
    seen: list = []
    handle = net.get_submodule(latent).register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        logits = net(x)
    finally:
        handle.remove()
    return (seen[-1] if seen else None), logits


def build_tapped(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> LatentTap:
    """The network ``cfg.name`` names, with its weights (``cfg.weights``) and latent checked."""
    net = _build_net(cfg, input_shape, num_classes)
    if cfg.weights:
        load_weights(net, cfg.weights, cfg.name)
    check_latent_name(net, cfg.latent, cfg.name)
    latent_dim = _probe(net, cfg.latent, input_shape, num_classes, cfg.name)
    return LatentTap(net, cfg.latent, latent_dim)


def _build_net(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if cfg.name.startswith("torchvision:"):
        net = _torchvision_net(cfg.name.partition(":")[2], num_classes, cfg.kwargs)
    else:
        factory = import_object(cfg.name, "model.name")
        offered = {"num_classes": num_classes, "input_shape": tuple(input_shape)}
        net = call_factory(factory, "model.name", offered, cfg.kwargs)
    if not isinstance(net, nn.Module):
        raise HillError(
            f"model.name: {cfg.name} returned a {type(net).__name__}, not a torch.nn.Module"
        )
    return net


def _torchvision_net(arch: str, num_classes: int, kwargs: dict) -> nn.Module:
    """``torchvision.models.<arch>`` untrained (``weights=None``: nothing is downloaded)."""
    from torchvision import models

    known = models.list_models(module=models)  # classification networks only
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=3)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise HillError(f"model.name: torchvision has no classification model {arch!r}{hint}")
    offered = {"weights": None, "num_classes": num_classes}
    return call_factory(models.get_model_builder(arch), "model.name", offered, kwargs)


def check_latent_name(net: nn.Module, latent: str, model_name: str) -> None:
    """``latent`` names a submodule of ``net``; else one line listing the names there are."""
    names = [name for name, _ in net.named_modules() if name]
    if latent in names:
        return
    close = difflib.get_close_matches(latent, names, n=3)
    shown = names[:LISTED_MODULES]
    more = f", … ({len(names)} in all)" if len(names) > len(shown) else ""
    hint = f"close: {', '.join(close)}; " if close else ""
    raise HillError(
        f"model.latent: {latent!r} names no module of {model_name} "
        f"({hint}modules: {', '.join(shown)}{more})"
    )


def _probe(net: nn.Module, latent: str, shape: tuple, num_classes: int, name: str) -> int:
    """d of z, from forwards of :data:`PROBE_BATCH` zero items in eval and in training mode
    (some networks return other things while training, e.g. auxiliary logits); checks that z
    is (B, ...) with d >= 2 and the logits (B, C) in both. Leaves every RNG and every buffer
    (BatchNorm's running statistics) as it found them."""
    was_training = net.training
    buffers = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.zeros(PROBE_BATCH, *shape)
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            for training in (False, True):
                net.train(training)
                z_raw, logits = _probe_forward(net, latent, x, name)
                _check_outputs(z_raw, logits, latent, num_classes, name, training)
    finally:
        net.load_state_dict(buffers)
        net.train(was_training)
    return z_raw[0].numel()


def _check_outputs(z_raw, logits, latent: str, num_classes: int, name: str, training: bool):
    """z is a tensor (B, ...) of 2 or more features; the logits are (B, C)."""
    mode = "training" if training else "eval"
    if not isinstance(z_raw, torch.Tensor) or z_raw.dim() < 2 or len(z_raw) != PROBE_BATCH:
        got = tuple(z_raw.shape) if isinstance(z_raw, torch.Tensor) else type(z_raw).__name__
        raise HillError(
            f"model.latent: {latent!r} outputs {got} for a batch of {PROBE_BATCH} ({mode} "
            "mode); z must be a tensor (B, ...) with at least one feature axis"
        )
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (PROBE_BATCH, num_classes):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise HillError(
            f"model.name: {name}'s forward returns {got} for a batch of {PROBE_BATCH} ({mode} "
            f"mode); it must return logits ({PROBE_BATCH}, {num_classes})"
        )
    if z_raw[0].numel() < 2:
        raise HillError(f"model.latent: {latent!r} gives z of 1 feature; the 2-D view needs 2+")


def _probe_forward(net: nn.Module, latent: str, x: torch.Tensor, name: str):
    """The raw latent output and the logits of ``x``; the user's errors in one line."""
    try:
        z_raw, logits = tapped_forward(net, latent, x)
    except Exception as err:
        shape = tuple(x.shape[1:])
        raise HillError(f"model.name: {name} fails on inputs {shape}: {one_line(err)}") from None
    if z_raw is None:
        raise HillError(f"model.latent: {latent!r} is not called by {name}'s forward")
    return z_raw, logits


def load_weights(net: nn.Module, path: str, model_name: str) -> None:
    """Load the state dict in ``path`` (read with ``weights_only=True``) into ``net``.

    Raises:
        HillError: a missing or unreadable file, or keys and shapes that do not fit ``net``.
    """
    from hill_core.checkpoint import CheckpointError, read_checkpoint

    try:
        state = read_checkpoint(Path(path))
    except CheckpointError as err:
        raise HillError(f"model.weights: {err}") from None
    ours = net.state_dict()
    missing = [k for k in ours if k not in state]
    extra = [k for k in state if k not in ours]
    wrong = [k for k in ours if k in state and _shape(state[k]) != tuple(ours[k].shape)]
    if missing or extra or wrong:
        why = _misfit(missing, extra, wrong, state, ours)
        raise HillError(f"model.weights: {path} does not fit {model_name} ({why})")
    net.load_state_dict(state)


def _shape(value) -> tuple | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def _misfit(missing: list, extra: list, wrong: list, state: dict, ours: dict) -> str:
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} keys, e.g. {', '.join(missing[:3])}")
    if extra:
        parts.append(f"{len(extra)} unexpected keys, e.g. {', '.join(extra[:3])}")
    for k in wrong[:3]:
        parts.append(f"{k} is {_shape(state[k])} in the file, {tuple(ours[k].shape)} here")
    return "; ".join(parts)

"""Model presets, and :func:`build_model`, which builds a preset or a user's network.

A preset is ``backbone -> z (B, d) -> head -> logits (B, C)``: ``latent(x) -> z`` and
``head(z) -> logits``, chained by ``forward``. A user's network (``hill_core.tapped``) has its
latent read by a hook instead. Training and evaluation use what both have:
``latent_and_logits(x) -> (z, logits)`` and ``latent_dim``.
"""

from __future__ import annotations

import torch
from torch import nn

from hill_core.config import ModelConfig
from hill_core.errors import HillError


class HillModel(nn.Module):
    """A backbone that produces the latent z and a classifier head on top of it."""

    def __init__(self, backbone: nn.Module, classifier: nn.Module, latent_dim: int):
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        self.latent_dim = latent_dim

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """(B, ...) inputs -> (B, d) latent vectors."""
        return self.backbone(x)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        """(B, d) latent vectors -> (B, C) logits."""
        return self.classifier(z)

    def latent_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, ...) inputs -> z (B, d) and logits (B, C)."""
        z = self.latent(x)
        return z, self.head(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.latent(x))


def _conv_block(c_in: int, c_out: int, pool: bool = True) -> list[nn.Module]:
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
    return layers + [nn.MaxPool2d(2)] if pool else layers


def digits_cnn(num_classes: int, latent_dim: int = 64, dropout: float = 0.1) -> HillModel:
    """Small CNN for 8x8 grey digits, input (B, 1, 8, 8)."""
    backbone = nn.Sequential(
        *_conv_block(1, 32),  # (B, 32, 4, 4)
        *_conv_block(32, 64),  # (B, 64, 2, 2)
        nn.Flatten(),
        nn.Linear(256, latent_dim),
        nn.ReLU(),
    )
    head = nn.Sequential(nn.Dropout(dropout), nn.Linear(latent_dim, num_classes))
    return HillModel(backbone, head, latent_dim)


def cifar_small_cnn(
    num_classes: int, latent_dim: int = 128, dropout: float = 0.1, channels: int = 3
) -> HillModel:
    """CPU-friendly CNN for small images, input (B, channels, H, W), e.g. (B, 3, 32, 32)."""
    backbone = nn.Sequential(
        *_conv_block(channels, 32),  # (B, 32, H/2, W/2)
        *_conv_block(32, 64),  # (B, 64, H/4, W/4)
        *_conv_block(64, 128),  # (B, 128, H/8, W/8)
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, latent_dim),
        nn.ReLU(),
    )
    head = nn.Sequential(nn.Dropout(dropout), nn.Linear(latent_dim, num_classes))
    return HillModel(backbone, head, latent_dim)


def cifar_proto_cnn(num_classes: int, dropout: float = 0.5) -> HillModel:
    """The HILL prototype's CIFAR-10 net: conv 128-256-512-512-256, 4096-d latent, MLP head."""
    backbone = nn.Sequential(
        *_conv_block(3, 128, pool=False),
        *_conv_block(128, 256),  # (B, 256, 16, 16)
        *_conv_block(256, 512),  # (B, 512, 8, 8)
        *_conv_block(512, 512, pool=False),
        *_conv_block(512, 256),  # (B, 256, 4, 4)
        nn.Flatten(),  # (B, 4096)
    )
    head = nn.Sequential(
        nn.Linear(4096, 512),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(512, 256),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )
    return HillModel(backbone, head, 4096)


def pamap2_cnn(num_classes: int, channels: int = 27, dropout: float = 0.1) -> HillModel:
    """The prototype's 1-D CNN over IMU windows, input (B, 27, 200), 1024-d latent."""
    backbone = nn.Sequential(
        nn.Conv1d(channels, 32, 24, padding="same"),
        nn.ReLU(),
        nn.Conv1d(32, 64, 16, padding="same"),
        nn.ReLU(),
        nn.Conv1d(64, 128, 8, padding="same"),
        nn.ReLU(),
        nn.AdaptiveMaxPool1d(1),  # global max-pool over time: (B, 128, 1)
        nn.Flatten(),
        nn.Linear(128, 1024),
        nn.ReLU(),
    )
    head = nn.Sequential(nn.Dropout(dropout), nn.Linear(1024, num_classes))
    return HillModel(backbone, head, 1024)


def mlp(num_features: int, num_classes: int, latent_dim: int = 64, dropout: float = 0.1):
    """MLP for tables, input (B, F)."""
    backbone = nn.Sequential(
        nn.Linear(num_features, 128), nn.ReLU(), nn.Linear(128, latent_dim), nn.ReLU()
    )
    head = nn.Sequential(nn.Dropout(dropout), nn.Linear(latent_dim, num_classes))
    return HillModel(backbone, head, latent_dim)


AUTO_PRESET = {
    "digits": "digits_cnn",
    "cifar10": "cifar_small_cnn",
    "imagefolder": "cifar_small_cnn",
    "pamap2": "pamap2_cnn",
    "table": "mlp",
}


def build_model(cfg: ModelConfig, data_name: str, input_shape: tuple[int, ...], num_classes: int):
    """The preset ``cfg.name`` (or the data set's default), or the user's network that
    ``cfg.name`` names (a :class:`hill_core.tapped.LatentTap`), for inputs of ``input_shape``.

    Raises:
        HillError: one line: no preset for ``auto``, or a user's network that does not fit.
    """
    if cfg.name not in PRESETS:
        from hill_core.tapped import build_tapped  # torchvision and import paths: only then

        return build_tapped(cfg, input_shape, num_classes)
    name = cfg.name if cfg.name != "auto" else auto_preset(data_name, input_shape)
    if name == "digits_cnn":
        return digits_cnn(num_classes, cfg.latent_dim, cfg.dropout)
    if name == "cifar_small_cnn":
        return cifar_small_cnn(num_classes, cfg.latent_dim, cfg.dropout, input_shape[0])
    if name == "cifar_proto_cnn":
        return cifar_proto_cnn(num_classes)
    if name == "pamap2_cnn":
        return pamap2_cnn(num_classes, channels=input_shape[0], dropout=cfg.dropout)
    return mlp(input_shape[0], num_classes, cfg.latent_dim, cfg.dropout)


PRESETS = ("auto", *AUTO_PRESET.values(), "cifar_proto_cnn")


def auto_preset(data_name: str, input_shape: tuple[int, ...]) -> str:
    """The preset ``model.name: auto`` means for a data set: its own, else a small CNN for
    images (C, H, W) and an MLP for feature rows (F,)."""
    if data_name in AUTO_PRESET:
        return AUTO_PRESET[data_name]
    if len(input_shape) == 3:
        return "cifar_small_cnn"
    if len(input_shape) == 1:
        return "mlp"
    raise HillError(
        f"model.name: auto has no preset for {data_name} (inputs {tuple(input_shape)}); "
        'name one: a preset, "torchvision:<architecture>" or "package.module:factory"'
    )


def memory_format(input_shape: tuple[int, ...]) -> torch.memory_format:
    """channels_last for images (C, H, W): their convolutions run about 2x faster in it, on the
    CPU (oneDNN) and on CUDA alike (benchmarks/train_loop.py); other inputs stay as they are."""
    return torch.channels_last if len(input_shape) == 3 else torch.contiguous_format


def model_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch (B, ...) on ``device``, in the memory format the model was built for."""
    return x.to(device, non_blocking=True, memory_format=memory_format(tuple(x.shape[1:])))

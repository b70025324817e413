"""TinyNet: a CNN with BatchNorm and dropout whose latent is an inner layer (``encoder.proj``).

Nothing here knows about hill: hill reads ``encoder.proj``'s output with a forward hook while it
trains, and logs and serves this class as it is.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class TinyNet(nn.Module):
    """(B, C, H, W) images -> (B, num_classes) logits, through a ``latent``-wide projection."""

    def __init__(self, channels: int, num_classes: int, width: int = 32, latent: int = 16,
                 dropout: float = 0.2):  # fmt: skip
        super().__init__()
        self.encoder = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(channels, width, 3, padding=1),
                norm=nn.BatchNorm2d(width),
                relu=nn.ReLU(),
                pool=nn.AdaptiveAvgPool2d(2),  # (B, width, 2, 2) whatever the image size
                flat=nn.Flatten(),
                proj=nn.Linear(4 * width, latent),  # the latent z: (B, latent)
                act=nn.ReLU(),
            )
        )
        self.dropout = nn.Dropout(dropout)
        self.classify = nn.Linear(latent, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.dropout(self.encoder(x)))


def build(num_classes: int, input_shape: tuple[int, ...], **options) -> TinyNet:
    """The factory ``model.name`` names: hill passes the class count, the shape of one input
    (C, H, W) and ``model.kwargs`` (here ``width``, ``latent``, ``dropout``)."""
    return TinyNet(input_shape[0], num_classes, **options)

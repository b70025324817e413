"""Random crop and flip of a whole image batch at once, as tensor indexing (as airbench does).

Augmenting item by item costs two transform calls per image; here one gather per batch does it,
on whichever device the batch lives. :func:`crop_flip_reference` is the same thing written item
by item, and a test ties the two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class CropFlip:
    """A random ``size``-pixel crop of the zero-padded image and a horizontal flip (p = 0.5),
    drawn per item: what ``v2.RandomCrop(size, padding=pad)`` + ``v2.RandomHorizontalFlip()``
    do, for a batch (B, C, H, W) with H = W = size.
    """

    def __init__(self, pad: int):
        self.pad = int(pad)

    def draw(self, n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, ...]:
        """Per-item offsets dx, dy (n,) in [0, 2 pad] and flip flags (n,) bool."""
        offsets = torch.randint(0, 2 * self.pad + 1, (2, n), generator=generator)
        flip = torch.rand(n, generator=generator) < 0.5
        return offsets[0], offsets[1], flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        dx, dy, flip = self.draw(len(x), generator)
        return crop_flip(x, dx, dy, flip, self.pad)


def crop_flip(x, dx, dy, flip, pad: int) -> torch.Tensor:
    """x (B, C, H, W) cropped at offsets dx, dy (B,) of the padded image, flipped where flip."""
    b, _, h, w = x.shape
    device = x.device
    padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H + 2 pad, W + 2 pad), zeros
    rows = dy.to(device)[:, None] + torch.arange(h, device=device)  # (B, H)
    cols = torch.arange(w, device=device).expand(b, w)
    cols = torch.where(flip.to(device)[:, None], cols.flip(1), cols) + dx.to(device)[:, None]
    batch = torch.arange(b, device=device)[:, None, None]
    # Advanced indices around a slice put their dims first: (B, H, W, C) -> (B, C, H, W).
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def crop_flip_reference(x, dx, dy, flip, pad: int) -> torch.Tensor:
    """:func:`crop_flip` item by item: pad, slice, flip."""
    out = []
    for i in range(len(x)):
        item = F.pad(x[i], (pad, pad, pad, pad))
        item = item[:, int(dy[i]) : int(dy[i]) + x.shape[2], int(dx[i]) : int(dx[i]) + x.shape[3]]
        out.append(item.flip(2) if flip[i] else item)
    return torch.stack(out)

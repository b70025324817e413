"""The frozen 2-D view P: fitted once at the freeze epoch, never trained afterwards.

``p = ((z - z_mean) @ W - p_mean) / p_scale``: a linear map plus normalisation constants,
folded into one affine map and stored as buffers. P has no parameters for an optimiser to
touch, while gradients of the HILL loss flow through it into the backbone. The constants are
fixed at fit time (unlike the prototype's per-batch normalisation, which made the loss blind
to global shifts).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from torch import nn


class Projection(nn.Module):
    """Frozen affine map from the latent (B, d) to the view (B, 2): ``p = z @ weight + bias``.

    ``weight`` (d, 2) and ``bias`` (2,) fold the fitted directions and the normalisation
    constants into one map, so a forward pass is a single matrix product.
    """

    def __init__(self, latent_dim: int):
        super().__init__()
        self.register_buffer("weight", torch.zeros(latent_dim, 2))
        self.register_buffer("bias", torch.zeros(2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, z.float(), self.weight)


def fit_projection(z: np.ndarray, y: np.ndarray, method: str = "lda") -> Projection:
    """Fit P on a latent sample and return it frozen.

    Args:
        z: (N, d) latent vectors. y: (N,) labels. method: "lda" or "pca".
    The view is centred on the sample and scaled so its RMS radius is 1 (view units).
    """
    z = np.asarray(z, np.float64)
    z_mean = z.mean(axis=0)
    weight = _linear_map(z - z_mean, y, method)  # (d, 2)
    p = (z - z_mean) @ weight
    p_mean = p.mean(axis=0)
    p_scale = float(np.sqrt(((p - p_mean) ** 2).sum(axis=1).mean())) or 1.0
    # ((z - z_mean) @ weight - p_mean) / p_scale, folded into z @ W + b
    proj = Projection(z.shape[1])
    proj.weight.copy_(torch.from_numpy(weight / p_scale))
    proj.bias.copy_(torch.from_numpy(-(z_mean @ weight + p_mean) / p_scale))
    return proj.requires_grad_(False)


def _linear_map(zc: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """(d, 2) directions: LDA's two most discriminant ones, or the top two principal axes."""
    if method == "lda" and len(np.unique(y)) >= 3:
        lda = LinearDiscriminantAnalysis(n_components=2, solver="svd").fit(zc, y)
        weight = lda.scalings_[:, :2]
    else:  # PCA, also the fallback where LDA cannot give two axes (fewer than 3 classes)
        weight = PCA(n_components=2, svd_solver="full").fit(zc).components_.T
    if weight.shape[1] < 2:  # degenerate latent: pad so the view stays 2-D
        weight = np.pad(weight, ((0, 0), (0, 2 - weight.shape[1])))
    return np.ascontiguousarray(weight, dtype=np.float64)

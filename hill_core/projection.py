"""The frozen 2-D view P: fitted once at the freeze epoch, never trained afterwards.

``p = ((z - z_mean) @ W - p_mean) / p_scale``: a linear map plus normalisation constants, all
stored as buffers, so P has no parameters for an optimiser to touch while gradients of the
HILL loss flow through it into the backbone. The constants are fixed at fit time (unlike the
prototype's per-batch normalisation, which made the loss blind to global shifts).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from torch import nn


class Projection(nn.Module):
    """Frozen linear map from the latent (B, d) to the view (B, 2)."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.register_buffer("z_mean", torch.zeros(latent_dim))
        self.register_buffer("weight", torch.zeros(latent_dim, 2))
        self.register_buffer("p_mean", torch.zeros(2))
        self.register_buffer("p_scale", torch.ones(()))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return ((z.float() - self.z_mean) @ self.weight - self.p_mean) / self.p_scale


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
    proj = Projection(z.shape[1])
    proj.z_mean.copy_(torch.from_numpy(z_mean))
    proj.weight.copy_(torch.from_numpy(weight))
    proj.p_mean.copy_(torch.from_numpy(p_mean))
    proj.p_scale.fill_(p_scale)
    proj.fitted.fill_(True)
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

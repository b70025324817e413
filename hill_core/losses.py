"""The HILL loss (HILL.md, "The loss"): every term returned separately for logging.

All terms act on view positions ``p = P(z)`` of a batch, (B, 2), in the frozen projection's
units, so their gradients flow through P (which has no parameters) into the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hill_core.fused_loss import fused_human_loss
from hill_core.teacher import Teacher

COMPONENTS = ("l_center", "l_spread", "l_sep", "l_point")


@dataclass(frozen=True)
class LossWeights:
    """alpha, lambda and the four component weights (HillConfig holds the same numbers)."""

    alpha: float = 0.5
    lam: float = 0.1
    w_center: float = 1.0
    w_spread: float = 1.0
    w_sep: float = 1.0
    w_point: float = 1.0

    def vector(self, like: torch.Tensor) -> torch.Tensor:
        """(4,) component weights in :data:`COMPONENTS` order."""
        values = (self.w_center, self.w_spread, self.w_sep, self.w_point)
        return torch.tensor(values, dtype=like.dtype, device=like.device)

    @classmethod
    def from_config(cls, hill) -> LossWeights:
        return cls(hill.alpha, hill.lam, hill.w_center, hill.w_spread, hill.w_sep, hill.w_point)


def class_stats(p: torch.Tensor, onehot: torch.Tensor):
    """Batch centres mu_c (C, 2) and spreads s_c (C,) from p (B, 2) and one-hot labels (B, C).

    Classes absent from the batch get zeros; callers mask them out. Fixed shapes (no boolean
    indexing) keep this cheap on the CPU and free of host syncs on the GPU.
    """
    counts = onehot.sum(0).clamp(min=1.0)  # (C,)
    centers = onehot.T @ p / counts.unsqueeze(1)  # (C, 2)
    dist = torch.linalg.vector_norm(p.unsqueeze(1) - centers.unsqueeze(0), dim=2)  # (B, C)
    spreads = (onehot * dist).sum(0) / counts
    return centers, spreads


def human_components(
    p: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, teacher: Teacher
) -> dict[str, torch.Tensor]:
    """L_center, L_spread, L_sep and L_point of a batch against the teacher.

    Classes count where they are in both the batch and the teacher.

    Args:
        p: (B, 2) view positions. y: (B,) labels. ids: (B,) stable sample ids.
    Returns:
        scalar tensors keyed by :data:`COMPONENTS`; a term with nothing to average is 0.
    """
    onehot = F.one_hot(y, teacher.centers.shape[0]).to(p.dtype)  # (B, C)
    active = ((onehot.sum(0) > 0) & teacher.present).to(p.dtype)  # (C,)
    n_active = active.sum().clamp(min=1.0)
    mu, s = class_stats(p, onehot)
    l_center = (((mu - teacher.centers) ** 2).sum(1) * active).sum() / n_active
    l_spread = ((s - teacher.spreads).abs() * active).sum() / n_active
    pairs = active.unsqueeze(0) * active.unsqueeze(1)  # (C, C); the diagonal has margin 0
    n_pairs = (n_active * (n_active - 1)).clamp(min=1.0)
    l_sep = (F.relu(teacher.margins - torch.cdist(mu, mu)) * pairs).sum() / n_pairs
    return {
        "l_center": l_center,
        "l_spread": l_spread,
        "l_sep": l_sep,
        "l_point": _point(p, ids, teacher),
    }


def _point(p, ids, teacher):
    """Mean squared distance of the batch's explicitly moved items to their targets."""
    if teacher.moved_ids.numel() == 0:
        return p.sum() * 0.0
    pos = torch.searchsorted(teacher.moved_ids, ids).clamp(max=teacher.moved_ids.numel() - 1)
    hit = (teacher.moved_ids[pos] == ids).to(p.dtype)  # (B,)
    sq = ((p - teacher.moved_targets[pos]) ** 2).sum(1)  # (B,)
    return (sq * hit).sum() / hit.sum().clamp(min=1.0)


def rms_radius(p: torch.Tensor) -> torch.Tensor:
    """RMS distance of the points (B, 2) from their mean."""
    return ((p - p.mean(0)) ** 2).sum(1).mean().sqrt()


def hill_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    p: torch.Tensor | None,
    ids: torch.Tensor,
    teacher: Teacher | None,
    weights: LossWeights,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L = (1 - alpha) CE + alpha L_human + lambda |1 - scale|``, or plain CE without a teacher.

    Returns:
        the loss to back-propagate and a dict of detached terms: ce, l_center, l_spread, l_sep,
        l_point, l_human, scale, scale_term, loss.
    """
    ce = F.cross_entropy(logits, y)
    if teacher is None or p is None:
        zero = ce.detach() * 0.0
        terms = {name: zero for name in (*COMPONENTS, "l_human", "scale", "scale_term")}
        return ce, {"ce": ce.detach(), **terms, "loss": ce.detach()}
    weight_vector = weights.vector(p)
    human, parts, scale = fused_human_loss(
        p.float(), y, ids, teacher, weight_vector, weights.alpha, weights.lam
    )
    loss = (1.0 - weights.alpha) * ce + human
    terms = dict(zip(COMPONENTS, parts, strict=True))
    terms.update(
        l_human=parts @ weight_vector,
        scale=scale,
        scale_term=(1.0 - scale).abs(),
        loss=loss.detach(),
    )
    return loss, {"ce": ce.detach(), **terms}


def layout_loss(
    current: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor, teacher: Teacher, weights
) -> dict[str, float]:
    """L_human terms of a whole layout (N, 2) against a teacher: the gate page's live readout."""
    with torch.no_grad():
        parts = human_components(current.float(), labels, ids, teacher)
        l_human = torch.stack(list(parts.values())) @ weights.vector(current)
        scale = rms_radius(current.float()) / teacher.rms_radius
    values = {k: float(v) for k, v in parts.items()}
    values.update(l_human=float(l_human), scale=float(scale))
    return values

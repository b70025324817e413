"""The HILL loss (HILL.md, "The loss"): every term returned separately for logging.

All terms act on view positions ``p = P(z)`` of a batch, (B, 2), in the frozen projection's
units, so their gradients flow through P (which has no parameters) into the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hill_core.teacher import Teacher

COMPONENTS = ("l_center", "l_spread", "l_sep", "l_point")
# Teacher centres closer than this (view units; the view's RMS radius is 1 at the freeze) count
# as merged: their separation margin is 0, so float noise cannot push a merged pair apart.
MERGE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class LossWeights:
    """alpha, lambda and the four component weights (HillConfig holds the same numbers)."""

    alpha: float = 0.5
    lam: float = 0.1
    w_center: float = 1.0
    w_spread: float = 1.0
    w_sep: float = 1.0
    w_point: float = 1.0

    @classmethod
    def from_config(cls, hill) -> LossWeights:
        return cls(hill.alpha, hill.lam, hill.w_center, hill.w_spread, hill.w_sep, hill.w_point)


def class_stats(p: torch.Tensor, y: torch.Tensor, classes: torch.Tensor):
    """Batch centres mu_c (K, 2) and spreads s_c (K,) for the K given classes (all present in y)."""
    onehot = (y.unsqueeze(1) == classes.unsqueeze(0)).to(p.dtype)  # (B, K)
    counts = onehot.sum(0)  # (K,)
    centers = onehot.T @ p / counts.unsqueeze(1)  # (K, 2)
    dist = torch.linalg.vector_norm(p.unsqueeze(1) - centers.unsqueeze(0), dim=2)  # (B, K)
    spreads = (onehot * dist).sum(0) / counts
    return centers, spreads


def human_components(
    p: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, teacher: Teacher
) -> dict[str, torch.Tensor]:
    """L_center, L_spread, L_sep and L_point of a batch against the teacher.

    Args:
        p: (B, 2) view positions. y: (B,) labels. ids: (B,) stable sample ids.
    Returns:
        scalar tensors keyed by :data:`COMPONENTS`; a term with nothing to average is 0.
    """
    zero = p.sum() * 0.0
    present_in_batch = torch.zeros_like(teacher.present)
    present_in_batch[y] = True
    classes = torch.nonzero(present_in_batch & teacher.present).squeeze(1)  # (K,)
    out = {name: zero for name in COMPONENTS}
    if classes.numel() > 0:
        keep = teacher.present[y]
        mu, s = class_stats(p[keep], y[keep], classes)
        mu_t, s_t = teacher.centers[classes].to(p.dtype), teacher.spreads[classes].to(p.dtype)
        out["l_center"] = ((mu - mu_t) ** 2).sum(1).mean()
        out["l_spread"] = (s - s_t).abs().mean()
        out["l_sep"] = _separation(mu, mu_t, s_t, zero)
    out["l_point"] = _point(p, ids, teacher, zero)
    return out


def _separation(mu, mu_t, s_t, zero):
    """Hinge on centre distances with the capped margin m = min(s*_c + s*_c', |mu*_c - mu*_c'|)."""
    k = mu.shape[0]
    if k < 2:
        return zero
    teacher_gap = torch.cdist(mu_t, mu_t)  # (K, K)
    margin = torch.minimum(s_t.unsqueeze(0) + s_t.unsqueeze(1), teacher_gap)
    margin = margin.masked_fill(teacher_gap < MERGE_TOLERANCE, 0.0)
    gap = torch.cdist(mu, mu)  # (K, K)
    off_diagonal = ~torch.eye(k, dtype=torch.bool, device=mu.device)
    return F.relu(margin - gap)[off_diagonal].mean()


def _point(p, ids, teacher, zero):
    """Mean squared distance of the batch's explicitly moved items to their targets."""
    if teacher.moved_ids.numel() == 0:
        return zero
    pos = torch.searchsorted(teacher.moved_ids, ids).clamp(max=teacher.moved_ids.numel() - 1)
    hit = teacher.moved_ids[pos] == ids
    if not hit.any():
        return zero
    target = teacher.moved_targets[pos[hit]].to(p.dtype)
    return ((p[hit] - target) ** 2).sum(1).mean()


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
    parts = human_components(p.float(), y, ids, teacher)
    l_human = (
        weights.w_center * parts["l_center"]
        + weights.w_spread * parts["l_spread"]
        + weights.w_sep * parts["l_sep"]
        + weights.w_point * parts["l_point"]
    )
    scale = rms_radius(p.float()) / teacher.rms_radius
    scale_term = (1.0 - scale).abs()
    loss = (1.0 - weights.alpha) * ce + weights.alpha * l_human + weights.lam * scale_term
    terms = {k: v.detach() for k, v in parts.items()}
    terms.update(l_human=l_human, scale=scale, scale_term=scale_term, loss=loss)
    return loss, {"ce": ce.detach(), **{k: v.detach() for k, v in terms.items()}}


def layout_loss(
    current: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor, teacher: Teacher, weights
) -> dict[str, float]:
    """L_human terms of a whole layout (N, 2) against a teacher: the gate page's live readout."""
    with torch.no_grad():
        parts = human_components(current.float(), labels, ids, teacher)
        l_human = sum(getattr(weights, "w_" + k[2:]) * v for k, v in parts.items())
        scale = rms_radius(current.float()) / teacher.rms_radius
    values = {k: float(v) for k, v in parts.items()}
    values.update(l_human=float(l_human), scale=float(scale))
    return values

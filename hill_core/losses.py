"""The HILL loss (docs/method.md, "Loss"): every term returned separately for logging.

All terms act on view positions ``p = P(z)`` of a batch, (B, 2), in the frozen projection's
units, so their gradients flow through P (which has no parameters) into the backbone. Each term
asks only for what the person changed, measured against how the untouched classes drift as
training goes on; that reference is detached, so no class the person left alone is pulled.

This module is the readable autograd reference; training uses the fused node in
``fused_loss.py``, and tests tie the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hill_core.teacher import Teacher

COMPONENTS = ("l_center", "l_spread", "l_point")
TINY = 1e-12  # guards divisions where the numerator is 0 too (coincident points, no shift)


@dataclass(frozen=True)
class LossWeights:
    """alpha and the three component weights (HillConfig holds the same numbers)."""

    alpha: float = 0.2
    w_center: float = 1.0
    w_spread: float = 1.0
    w_point: float = 1.0

    def vector(self, like: torch.Tensor) -> torch.Tensor:
        """(3,) component weights in :data:`COMPONENTS` order."""
        values = (self.w_center, self.w_spread, self.w_point)
        return torch.tensor(values, dtype=like.dtype, device=like.device)

    @classmethod
    def from_config(cls, hill, alpha_scale: float = 1.0) -> LossWeights:
        """The run's weights; ``alpha_scale`` is the guard's ``adapt`` factor in [0, 1]."""
        return cls(hill.alpha * alpha_scale, hill.w_center, hill.w_spread, hill.w_point)


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


MIN_FRAME_CLASSES = 3  # fewer untouched classes in a batch than this: frame on every class


@dataclass(frozen=True)
class Frame:
    """Where the layout went by itself since the gate, as a similarity (detached).

    Fitted on the batch centres of the untouched classes (the anchors), or of every class
    present when the batch holds fewer than ``MIN_FRAME_CLASSES`` anchors: their centroid then
    (``origin0``, at the gate) and now (``origin``), and ``growth``, the ratio of their RMS
    radii. A class the person left alone is expected at ``origin + growth (mu0_c - origin0)``;
    ``unit`` = ``growth`` x the gate layout's RMS radius is the length every term is measured in,
    so the loss does not grow as the layout does.
    """

    origin: torch.Tensor  # (2,)
    origin0: torch.Tensor  # (2,)
    growth: torch.Tensor  # ()
    unit: torch.Tensor  # ()

    def expected(self, gate_points: torch.Tensor) -> torch.Tensor:
        """Where points (..., 2) of the gate layout sit now if nobody asked them to move."""
        return self.origin + self.growth * (gate_points - self.origin0)


def frame_of(mu: torch.Tensor, present: torch.Tensor, teacher: Teacher) -> Frame:
    """The :class:`Frame` of a batch with class centres mu (C, 2) and presence (C,)."""
    mu = mu.detach()
    anchors = (present & teacher.anchors).to(mu.dtype)  # (C,)
    enough = anchors.sum() >= MIN_FRAME_CLASSES  # a tensor: no host sync on the GPU
    use = torch.where(enough, anchors, present.to(mu.dtype))
    n = use.sum().clamp(min=1.0)
    origin = (use[:, None] * mu).sum(0) / n
    origin0 = (use[:, None] * teacher.gate_centers).sum(0) / n
    radius = ((use * ((mu - origin) ** 2).sum(1)).sum() / n).sqrt()
    radius0 = ((use * ((teacher.gate_centers - origin0) ** 2).sum(1)).sum() / n).sqrt()
    growth = torch.where(radius0 > TINY, radius / radius0.clamp(min=TINY), 1.0)
    return Frame(origin, origin0, growth, growth * teacher.gate_radius)


def human_components(
    p: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, teacher: Teacher
) -> dict[str, torch.Tensor]:
    """L_center, L_spread and L_point of a batch against the teacher (readable reference).

    Lengths are in units of the :class:`Frame` (``unit``), so each term is scale-free.

    - L_center: each shifted class must sit at least its (grown) shift beyond where the frame
      expects it, along the shift: ``mean_c relu(g |shift_c| - progress_c)^2``.
    - L_spread: each scaled class's spread must be at most (compacted) or at least (spread)
      ``k_c s0_c g``: ``mean_c relu(+-(s_c - k_c s0_c g))``.
    - L_point: each moved point goes to its target, which follows the class it was dropped
      into: ``sum_i hit_i |p_i - (mu_home + g (q_i - mu*_home))|^2 / B`` (home's batch centre,
      detached). Averaged over the batch's B items, as cross-entropy is, so a moved point
      weighs as much as one item's CE: 30 dragged points among a thousand cannot outweigh the
      rest (averaged over the moved points alone, they cost -45 pp at alpha 0.5).

    Args:
        p: (B, 2) view positions. y: (B,) labels. ids: (B,) stable sample ids.
    Returns:
        scalar tensors keyed by :data:`COMPONENTS`; a term with nothing to average is 0.
    """
    onehot = F.one_hot(y, teacher.gate_centers.shape[0]).to(p.dtype)  # (B, C)
    present = onehot.sum(0) > 0  # (C,)
    mu, s = class_stats(p, onehot)
    frame = frame_of(mu, present, teacher)
    # L_center: progress along the shift, beyond where the frame expects the class.
    length = torch.linalg.vector_norm(teacher.shifts, dim=1)  # (C,)
    direction = teacher.shifts / length.clamp(min=TINY)[:, None]
    progress = ((mu - frame.expected(teacher.gate_centers)) * direction).sum(1)
    shifted = (present & teacher.shifted).to(p.dtype)
    short = F.relu(frame.growth * length - progress) / frame.unit
    l_center = (short**2 * shifted).sum() / shifted.sum().clamp(min=1.0)
    # L_spread: one-sided, in the direction the person scaled.
    target = teacher.scales * teacher.gate_spreads * frame.growth
    sign = torch.where(teacher.scales < 1, 1.0, -1.0).to(p.dtype)
    scaled = (present & teacher.scaled).to(p.dtype)
    excess = F.relu(sign * (s - target)) / frame.unit
    l_spread = (excess * scaled).sum() / scaled.sum().clamp(min=1.0)
    hit, target_p = moved_in_batch(p, ids, teacher, mu.detach(), present, frame)
    l_point = (((p - target_p) / frame.unit) ** 2).sum(1) @ hit / len(p)
    return {"l_center": l_center, "l_spread": l_spread, "l_point": l_point}


def moved_in_batch(p, ids, teacher: Teacher, mu, present, frame: Frame):
    """(B,) 1.0 where an item was moved one by one, and (B, 2) its current target.

    The target keeps its offset from the class it was dropped into (its home), grown with the
    frame: ``mu_home + g (q_i - mu*_home)``, with the home's batch centre, or where the frame
    expects the home when the batch lacks that class.
    """
    if teacher.moved_ids.numel() == 0:
        return p.new_zeros(len(p)), p.detach().clone()
    pos = torch.searchsorted(teacher.moved_ids, ids).clamp(max=teacher.moved_ids.numel() - 1)
    hit = (teacher.moved_ids[pos] == ids).to(p.dtype)  # (B,)
    home = teacher.moved_home[pos]  # (B,)
    expected = frame.expected(teacher.gate_centers) + frame.growth * teacher.shifts  # (C, 2)
    centre = torch.where(present[:, None], mu, expected)[home]  # (B, 2)
    offset = teacher.moved_targets[pos] - teacher.target_centers[home]
    return hit, centre + frame.growth * offset


def hill_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    p: torch.Tensor | None,
    ids: torch.Tensor,
    teacher: Teacher | None,
    weights: LossWeights,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L = (1 - alpha) CE + alpha L_human``, or plain CE without a teacher.

    Returns:
        the loss to back-propagate and a dict of detached terms: ce, l_center, l_spread,
        l_point, l_human, loss.
    """
    from hill_core.fused_loss import fused_human_loss  # fused_loss builds on this module

    ce = F.cross_entropy(logits, y)
    if teacher is None or p is None:
        zero = ce.detach() * 0.0
        terms = {name: zero for name in (*COMPONENTS, "l_human")}
        return ce, {"ce": ce.detach(), **terms, "loss": ce.detach()}
    weight_vector = weights.vector(p)
    human, parts = fused_human_loss(p.float(), y, ids, teacher, weight_vector, weights.alpha)
    loss = (1.0 - weights.alpha) * ce + human
    terms = dict(zip(COMPONENTS, parts, strict=True))
    terms.update(l_human=parts @ weight_vector, loss=loss.detach())
    return loss, {"ce": ce.detach(), **terms}


def layout_loss(
    current: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor, teacher: Teacher, weights
) -> dict[str, float]:
    """L_human terms of a whole layout (N, 2) against a teacher: the gate page's live readout.

    At the gate's own layout this is what the edit asks of the model before training starts.
    """
    with torch.no_grad():
        parts = human_components(current.float(), labels, ids, teacher)
        l_human = torch.stack(list(parts.values())) @ weights.vector(current)
    values = {k: float(v) for k, v in parts.items()}
    values.update(l_human=float(l_human))
    return values

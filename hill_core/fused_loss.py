"""The human part of the HILL loss as one autograd node with a hand-derived gradient.

Training calls this instead of :func:`hill_core.losses.human_components`: the loss is built
from ~40 tiny tensor ops, and on small models autograd's per-op bookkeeping cost more than
the model's own step. Here the forward runs without recording (it reuses the reference's
detached helpers) and the backward is a dozen ops. ``tests/test_core_fused_loss.py`` checks
values and gradients against the readable autograd version in ``losses.py``, which stays the
reference.

Notation (one batch): A (B, C) one-hot labels, n_c items of class c; mu_c class means,
u_j = (p_j - mu_c) / |p_j - mu_c| and u_bar_c their class mean; U the frame's length unit. The
frame (losses.Frame) and the moved points' targets are detached, so they carry no gradient.
Gradients w.r.t. p_j, j in c:
    L_center: -2 h_c e_c / (S n_c U),  h_c = relu(g |shift_c| - progress_c) / U, e_c the shift's
              direction, S shifted classes in the batch
    L_spread: sign_c [sign_c (s_c - t_c) > 0] (u_j - u_bar_c) / (K n_c U), K scaled classes
    L_point:  2 hit_j (p_j - target_j) / (B U^2), B items in the batch (a moved point weighs
              as much as one item's cross-entropy)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hill_core.losses import TINY, class_stats, frame_of, moved_in_batch
from hill_core.teacher import Teacher


class _HumanLoss(torch.autograd.Function):
    """Returns (alpha L_human, the three components (3,))."""

    @staticmethod
    def forward(ctx, p, y, ids, teacher: Teacher, weights: torch.Tensor, alpha):
        onehot = F.one_hot(y, teacher.gate_centers.shape[0]).to(p.dtype)  # (B, C)
        present = onehot.sum(0) > 0  # (C,)
        counts = onehot.sum(0).clamp(min=1.0)  # (C,)
        mu, s = class_stats(p, onehot)  # (C, 2), (C,)
        frame = frame_of(mu, present, teacher)
        unit = frame.unit
        length = torch.linalg.vector_norm(teacher.shifts, dim=1)  # (C,)
        direction = teacher.shifts / length.clamp(min=TINY)[:, None]  # (C, 2)
        shifted = (present & teacher.shifted).to(p.dtype)
        n_shifted = shifted.sum().clamp(min=1.0)
        progress = ((mu - frame.expected(teacher.gate_centers)) * direction).sum(1)
        short = F.relu(frame.growth * length - progress) * shifted / unit  # (C,) h_c
        sign = torch.where(teacher.scales < 1, 1.0, -1.0).to(p.dtype)  # (C,)
        scaled = (present & teacher.scaled).to(p.dtype)
        n_scaled = scaled.sum().clamp(min=1.0)
        excess = sign * (s - teacher.scales * teacher.gate_spreads * frame.growth)  # (C,)
        hit, target = moved_in_batch(p, ids, teacher, mu, present, frame)
        err = (p - target) / unit  # (B, 2)
        n_hit = p.new_tensor(float(len(p)))  # per batch item, as CE: not per moved item
        parts = torch.stack(
            [
                short.square().sum() / n_shifted,
                (F.relu(excess) * scaled).sum() / (n_scaled * unit),
                (err.square().sum(1) * hit).sum() / n_hit,
            ]
        )
        # dL/dmu_c (C, 2) and dL/ds_c (C,), weighted; everything else the backward needs.
        g_mu = (-2 * weights[0] / (n_shifted * unit)) * short[:, None] * direction
        g_s = weights[1] * sign * (excess > 0).to(p.dtype) * scaled / (n_scaled * unit)
        g_point = (2 * weights[2] / (n_hit * unit)) * hit[:, None] * err  # (B, 2)
        ctx.save_for_backward(onehot, y, counts, p - mu[y], g_mu, g_s, g_point)
        ctx.alpha = alpha
        ctx.mark_non_differentiable(parts)
        return alpha * (parts @ weights), parts

    @staticmethod
    def backward(ctx, grad_total, _grad_parts):
        onehot, y, counts, d, g_mu, g_s, g_point = ctx.saved_tensors
        u = d / torch.linalg.vector_norm(d, dim=1).clamp(min=TINY)[:, None]  # (B, 2)
        u_bar = onehot.T @ u / counts[:, None]  # (C, 2)
        grad = (g_mu / counts[:, None])[y] + (g_s / counts)[y][:, None] * (u - u_bar[y])
        grad = ctx.alpha * (grad + g_point)
        return grad_total * grad, None, None, None, None, None


def fused_human_loss(p, y, ids, teacher: Teacher, weights, alpha: float):
    """``alpha L_human`` with its gradient w.r.t. p (B, 2), in one node.

    Returns:
        the differentiable scalar and the components (3,) in ``COMPONENTS`` order.
    """
    return _HumanLoss.apply(p, y, ids, teacher, weights, alpha)

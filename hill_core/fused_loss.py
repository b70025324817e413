"""The human part of the HILL loss as one autograd node with a hand-derived gradient.

Training calls this instead of :func:`hill_core.losses.human_components`: the loss is built
from ~40 tiny tensor ops, and on small models autograd's per-op bookkeeping cost more than
the model's own step. Here the forward runs without recording and the backward is a dozen
ops. ``tests/test_core_fused_loss.py`` checks values and gradients against the readable
autograd version in ``losses.py``, which stays the reference.

Notation (one batch): A (B, C) one-hot labels, n_c items of class c, a_c = 1 where class c is
in both batch and teacher, K = sum a_c, P = K (K - 1) ordered pairs; mu_c class means,
u_i = (p_i - mu_c) / |p_i - mu_c|, u_bar_c their class mean. Gradients w.r.t. p_j, j in c:
    L_center: 2 a_c (mu_c - mu*_c) / (K n_c)
    L_spread: a_c sign(s_c - s*_c) (u_j - u_bar_c) / (K n_c)
    L_sep:    G_c / n_c with G_c = -(2 / P) sum_c' h_cc' (mu_c - mu_c') / D_cc',
              h_cc' = a_c a_c' [m_cc' > D_cc'], D_cc' = |mu_c - mu_c'|
    L_point:  2 hit_j (p_j - q_j) / M, M moved items in the batch
    scale:    (p_j - p_bar) / (B R R*), R the batch's RMS radius
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hill_core.teacher import Teacher

TINY = 1e-12  # guards divisions where the numerator is 0 too (coincident points)


class _HumanLoss(torch.autograd.Function):
    """Returns (alpha L_human + lam |1 - scale|, the four components (4,), scale)."""

    @staticmethod
    def forward(ctx, p, y, ids, teacher: Teacher, weights: torch.Tensor, alpha, lam):
        onehot = F.one_hot(y, teacher.centers.shape[0]).to(p.dtype)  # (B, C)
        counts = onehot.sum(0)  # (C,)
        active = ((counts > 0) & teacher.present).to(p.dtype)  # (C,)
        n_active = active.sum().clamp(min=1.0)
        n_pairs = (n_active * (n_active - 1)).clamp(min=1.0)
        counts = counts.clamp(min=1.0)
        mu = onehot.T @ p / counts[:, None]  # (C, 2)
        d = p - mu[y]  # (B, 2)
        r = torch.linalg.vector_norm(d, dim=1)  # (B,)
        spreads = onehot.T @ r / counts  # (C,)
        dc = mu - teacher.centers  # (C, 2)
        ds = spreads - teacher.spreads  # (C,)
        diff = mu[:, None] - mu[None]  # (C, C, 2)
        dist = torch.linalg.vector_norm(diff, dim=2)  # (C, C)
        shortfall = (teacher.margins - dist) * (active[:, None] * active[None])  # (C, C)
        hit, err = _moved_in_batch(p, ids, teacher)  # (B,), (B, 2)
        n_hit = hit.sum().clamp(min=1.0)
        dp = p - p.mean(0)  # (B, 2)
        radius = dp.square().sum(1).mean().sqrt()
        parts = torch.stack(
            [
                (dc.square().sum(1) * active).sum() / n_active,
                (ds.abs() * active).sum() / n_active,
                shortfall.clamp(min=0).sum() / n_pairs,
                (err.square().sum(1) * hit).sum() / n_hit,
            ]
        )
        scale = radius / teacher.rms_radius
        total = alpha * (parts @ weights) + lam * (1 - scale).abs()
        ctx.save_for_backward(onehot, y, active, counts, d, r, dc, ds, diff, dist, shortfall)
        # d|1 - scale|/d radius; kept instead of the output itself to avoid a reference cycle
        scale_slope = -torch.sign(1 - scale.detach()) / teacher.rms_radius
        ctx.more = (hit, err, n_hit, n_active, n_pairs, dp, radius, scale_slope, weights)
        ctx.alpha, ctx.lam = alpha, lam
        ctx.mark_non_differentiable(parts, scale)
        return total, parts, scale

    @staticmethod
    def backward(ctx, grad_total, _grad_parts, _grad_scale):
        onehot, y, active, counts, d, r, dc, ds, diff, dist, shortfall = ctx.saved_tensors
        hit, err, n_hit, n_active, n_pairs, dp, radius, scale_slope, w = ctx.more
        # Through the class means mu_c (C, 2): L_center and L_sep.
        pulled = (shortfall > 0).to(dist.dtype) / dist.clamp(min=TINY)  # h_cc' / D_cc'
        g_mu = w[0] * 2 * active[:, None] * dc / n_active
        g_mu = g_mu - w[2] * (2 / n_pairs) * (pulled[:, :, None] * diff).sum(1)
        # L_spread through the unit vectors u_j.
        u = d / r.clamp(min=TINY)[:, None]  # (B, 2)
        u_bar = onehot.T @ u / counts[:, None]  # (C, 2)
        g_s = w[1] * active * torch.sign(ds) / n_active  # (C,)
        grad = (g_mu / counts[:, None])[y] + (g_s / counts)[y][:, None] * (u - u_bar[y])
        grad = grad + w[3] * 2 * hit[:, None] * err / n_hit
        grad = ctx.alpha * grad
        grad = grad + ctx.lam * scale_slope * dp / (len(dp) * radius.clamp(min=TINY))
        return grad_total * grad, None, None, None, None, None, None


def _moved_in_batch(p, ids, teacher):
    """(B,) 1.0 where an item was moved by the person, and (B, 2) its offset p_i - q_i."""
    if teacher.moved_ids.numel() == 0:
        return p.new_zeros(len(p)), p.new_zeros(p.shape)
    pos = torch.searchsorted(teacher.moved_ids, ids).clamp(max=teacher.moved_ids.numel() - 1)
    hit = (teacher.moved_ids[pos] == ids).to(p.dtype)
    return hit, p - teacher.moved_targets[pos]


def fused_human_loss(p, y, ids, teacher: Teacher, weights, alpha: float, lam: float):
    """``alpha L_human + lam |1 - scale|`` with its gradient w.r.t. p (B, 2), in one node.

    Returns:
        the differentiable scalar, the components (4,) in ``COMPONENTS`` order, and scale.
    """
    return _HumanLoss.apply(p, y, ids, teacher, weights, alpha, lam)

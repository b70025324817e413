"""The fused HILL loss equals the readable autograd reference, in value and in gradient."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from hill_core import fused_loss
from hill_core.fused_loss import fused_human_loss
from hill_core.losses import COMPONENTS, LossWeights, human_components
from hill_core.losses import class_stats as human_stats
from hill_core.teacher import teacher_from_edits


def edited_layout(seed, shift=(1, 3), scale=(2, 0.5), spread_up=False, moved=0.1, all_edited=False):
    """A gate layout of 5 classes (class 5 absent) and an edit of it, as an edits table."""
    rng = np.random.default_rng(seed)
    n, classes = 120, 5
    labels = np.arange(n) % classes
    before = rng.normal(size=(classes, 2))[labels] * 3 + rng.normal(size=(n, 2)) * 0.7
    after = before.copy()
    edited = range(classes) if all_edited else shift
    for c in edited:
        after[labels == c] += rng.normal(size=2)
    for c in [scale[0]] if not all_edited else range(classes):
        centre = after[labels == c].mean(0)
        factor = 1.7 if spread_up else scale[1]
        after[labels == c] = centre + factor * (after[labels == c] - centre)
    is_moved = rng.random(n) < moved
    after[is_moved] = rng.normal(size=(int(is_moved.sum()), 2)) * 3
    edits = pd.DataFrame(
        {
            "run_id": "r",
            "gate_epoch": 1,
            "sample_id": np.arange(n),
            "label": labels,
            "x_before": before[:, 0],
            "y_before": before[:, 1],
            "x_after": after[:, 0],
            "y_after": after[:, 1],
            "moved": is_moved,
        }
    )
    return edits, before, labels


def teacher_and_batch(seed, absent_class=False, drift=(0.3, -0.2), **edit):
    edits, before, labels = edited_layout(seed, **edit)
    teacher = teacher_from_edits(edits, 6)  # class 5 is in no layout
    g = torch.Generator().manual_seed(seed)
    batch = torch.randperm(len(labels), generator=g)[:48]
    if absent_class:
        batch = batch[torch.as_tensor(labels)[batch] != 0]  # the home of some moved points
    grown = torch.tensor(before[batch.numpy()], dtype=torch.float32) * 1.3 + torch.tensor(drift)
    p = (grown + 0.5 * torch.randn(len(batch), 2, generator=g)).requires_grad_(True)
    return teacher, p, torch.as_tensor(labels)[batch], batch


def _stats(p, y, teacher):
    onehot = torch.nn.functional.one_hot(y, teacher.gate_centers.shape[0]).to(p.dtype)
    mu, s = human_stats(p, onehot)
    return mu, s, onehot.sum(0) > 0


def reference(p, y, ids, teacher, w: LossWeights):
    parts = human_components(p, y, ids, teacher)
    l_human = sum(getattr(w, "w_" + k[2:]) * parts[k] for k in COMPONENTS)
    return w.alpha * l_human, parts


CASES = [
    {},
    {"moved": 0.0},
    {"absent_class": True},
    {"spread_up": True},
    {"all_edited": True},
    {"shift": (), "moved": 0.3},
    {"drift": (3.0, 3.0)},
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", CASES)
def test_fused_matches_reference(seed, case):
    teacher, p, y, ids = teacher_and_batch(seed, **case)
    w = LossWeights(alpha=0.6, w_center=1.0, w_spread=0.7, w_point=0.5)
    want, want_parts = reference(p, y, ids, teacher, w)
    (want_grad,) = torch.autograd.grad(want, p)
    got, got_parts = fused_human_loss(p, y, ids, teacher, w.vector(p), w.alpha)
    (got_grad,) = torch.autograd.grad(got, p)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(got_parts, torch.stack([want_parts[k] for k in COMPONENTS]), atol=1e-5)
    assert torch.allclose(got_grad, want_grad, atol=1e-5), (got_grad - want_grad).abs().max()
    assert float(want_grad.abs().sum()) > 0


@pytest.mark.parametrize("case", [{}, {"all_edited": True}, {"absent_class": True}])
def test_fused_gradient_passes_gradcheck(case, monkeypatch):
    """Finite differences against the hand-derived gradient, with the frame held fixed.

    The frame and the moved points' targets are a stop-gradient by design (the frame a request
    is measured in), so the check freezes them at the base point, as autograd sees them.
    """
    teacher, p, y, ids = teacher_and_batch(3, **case)
    p = p.detach().double().requires_grad_(True)
    fields = {k: v.double() if v.is_floating_point() else v for k, v in teacher.__dict__.items()}
    teacher = dataclasses.replace(teacher, **fields)
    w = torch.tensor([1.0, 0.7, 0.5], dtype=torch.float64)
    mu, _, present = _stats(p.detach(), y, teacher)
    frame = fused_loss.frame_of(mu, present, teacher)
    targets = fused_loss.moved_in_batch(p.detach(), ids, teacher, mu, present, frame)
    monkeypatch.setattr(fused_loss, "frame_of", lambda *args: frame)
    monkeypatch.setattr(fused_loss, "moved_in_batch", lambda *args: targets)

    def total(points):
        return fused_human_loss(points, y, ids, teacher, w, 0.6)[0]

    assert torch.autograd.gradcheck(total, (p,), eps=1e-6, atol=1e-5)

"""The fused HILL loss equals the readable autograd reference, in value and in gradient."""

import pandas as pd
import pytest
import torch

from hill_core.fused_loss import fused_human_loss
from hill_core.losses import COMPONENTS, LossWeights, human_components, rms_radius
from hill_core.teacher import teacher_from_edits


def teacher_and_batch(seed, merged=False, moved=0.2, scale=1.0, absent_class=False):
    g = torch.Generator().manual_seed(seed)
    n, classes = 120, 5
    labels = torch.arange(n) % classes
    centres = torch.randn(classes, 2, generator=g) * 3
    if merged:
        centres[1] = centres[0]
    q = centres[labels] + torch.randn(n, 2, generator=g) * 0.7
    edits = pd.DataFrame({"sample_id": torch.arange(n).numpy(), "label": labels.numpy()})
    edits["x_after"], edits["y_after"] = q[:, 0].double().numpy(), q[:, 1].double().numpy()
    edits["x_before"], edits["y_before"] = edits["x_after"], edits["y_after"]
    edits["moved"] = (torch.rand(n, generator=g) < moved).numpy()
    edits["run_id"], edits["gate_epoch"] = "r", 1
    teacher = teacher_from_edits(edits, classes + 1)  # class 5 is in no layout
    batch = torch.randperm(n, generator=g)[:48]
    if absent_class:
        batch = batch[labels[batch] != 2]  # a class the teacher has but the batch lacks
    p = (q[batch] * scale + torch.randn(len(batch), 2, generator=g)).requires_grad_(True)
    return teacher, p, labels[batch], batch


def reference(p, y, ids, teacher, w: LossWeights):
    parts = human_components(p, y, ids, teacher)
    l_human = sum(getattr(w, "w_" + k[2:]) * parts[k] for k in COMPONENTS)
    scale = rms_radius(p) / teacher.rms_radius
    return w.alpha * l_human + w.lam * (1 - scale).abs(), parts, scale


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "case",
    [
        {},
        {"merged": True},
        {"moved": 0.0},
        {"absent_class": True},
        {"scale": 3.0},
        {"scale": 0.2},
    ],
)
def test_fused_matches_reference(seed, case):
    teacher, p, y, ids = teacher_and_batch(seed, **case)
    w = LossWeights(alpha=0.6, lam=0.3, w_center=1.0, w_spread=0.7, w_sep=1.3, w_point=0.5)
    want, want_parts, want_scale = reference(p, y, ids, teacher, w)
    (want_grad,) = torch.autograd.grad(want, p)
    got, got_parts, got_scale = fused_human_loss(p, y, ids, teacher, w.vector(p), w.alpha, w.lam)
    (got_grad,) = torch.autograd.grad(got, p)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(got_parts, torch.stack([want_parts[k] for k in COMPONENTS]), atol=1e-5)
    assert torch.allclose(got_scale, want_scale, atol=1e-6)
    assert torch.allclose(got_grad, want_grad, atol=1e-5), (got_grad - want_grad).abs().max()
    assert float(want_grad.abs().sum()) > 0


def test_fused_gradient_passes_gradcheck():
    teacher, p, y, ids = teacher_and_batch(3)
    p = p.detach().double().requires_grad_(True)
    teacher = type(teacher)(
        *(t.double() if t.is_floating_point() else t for t in (teacher.centers, teacher.spreads)),
        teacher.present,
        teacher.moved_ids,
        teacher.moved_targets.double(),
        teacher.rms_radius,
        teacher.margins.double(),
    )
    w = torch.tensor([1.0, 0.7, 1.3, 0.5], dtype=torch.float64)

    def total(points):
        return fused_human_loss(points, y, ids, teacher, w, 0.6, 0.3)[0]

    assert torch.autograd.gradcheck(total, (p,), eps=1e-6, atol=1e-5)

"""The HILL loss terms: zero at the teacher, growing as the batch departs; gradients."""

import pandas as pd
import pytest
import torch

from hill_core.losses import LossWeights, hill_loss, human_components
from hill_core.teacher import teacher_from_edits


def layout(centres, per_class=6, spread=0.5, seed=0):
    """An edits table whose after-layout has the given class centres (C, 2)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for c, (cx, cy) in enumerate(centres):
        offsets = torch.randn(per_class, 2, generator=g) * spread
        offsets -= offsets.mean(0)  # the class mean is exactly the centre
        for k in range(per_class):
            x, y = cx + float(offsets[k, 0]), cy + float(offsets[k, 1])
            rows.append((c * 100 + k, c, x, y))
    df = pd.DataFrame(rows, columns=["sample_id", "label", "x_after", "y_after"])
    df["x_before"], df["y_before"] = df["x_after"], df["y_after"]
    df["moved"], df["run_id"], df["gate_epoch"] = False, "r", 1
    return df


def batch_of(edits):
    p = torch.tensor(edits[["x_after", "y_after"]].to_numpy(), dtype=torch.float32)
    y = torch.tensor(edits["label"].to_numpy())
    ids = torch.tensor(edits["sample_id"].to_numpy())
    return p, y, ids


CENTRES = [(0.0, 0.0), (4.0, 0.0), (0.0, 4.0)]


def test_terms_are_zero_when_the_batch_matches_the_teacher():
    edits = layout(CENTRES)
    edits.loc[0, "moved"] = True
    teacher = teacher_from_edits(edits, 3)
    parts = human_components(*batch_of(edits), teacher)
    for name in ("l_center", "l_spread", "l_sep", "l_point"):
        assert float(parts[name]) == pytest.approx(0.0, abs=1e-6), name


@pytest.mark.parametrize("term", ["l_center", "l_spread", "l_point"])
def test_terms_grow_as_the_batch_departs(term):
    edits = layout(CENTRES)
    edits.loc[0, "moved"] = True
    teacher = teacher_from_edits(edits, 3)
    p, y, ids = batch_of(edits)
    values = []
    for step in (0.0, 0.5, 1.0, 2.0):
        q = p.clone()
        if term == "l_center":
            q[y == 1] += torch.tensor([step, 0.0])  # shift class 1 rigidly
        elif term == "l_spread":
            mu = q[y == 1].mean(0)
            q[y == 1] = mu + (1 + step) * (q[y == 1] - mu)  # spread class 1
        else:
            q[0] += torch.tensor([0.0, step])  # move the one moved point
        values.append(float(human_components(q, y, ids, teacher)[term]))
    assert values[0] == pytest.approx(0.0, abs=1e-6)
    assert values[1] > 0 and values == sorted(values) and len(set(values)) == 4


def test_sep_is_zero_when_apart_and_positive_when_closer():
    edits = layout(CENTRES, spread=0.5)
    teacher = teacher_from_edits(edits, 3)
    p, y, ids = batch_of(edits)
    farther = p * 2.0
    assert float(human_components(farther, y, ids, teacher)["l_sep"]) == 0.0
    closer = p * 0.1
    assert float(human_components(closer, y, ids, teacher)["l_sep"]) > 0.0


def test_merge_does_not_make_sep_fight_center():
    # The person merged classes 0 and 1: their teacher centres coincide.
    edits = layout([(0.0, 0.0), (0.0, 0.0), (5.0, 5.0)], spread=0.5)
    teacher = teacher_from_edits(edits, 3)
    p, y, ids = batch_of(edits)
    p.requires_grad_(True)
    parts = human_components(p, y, ids, teacher)
    assert float(parts["l_center"].detach()) == pytest.approx(0.0, abs=1e-6)
    assert float(parts["l_sep"].detach()) == pytest.approx(0.0, abs=1e-6)
    (grad,) = torch.autograd.grad(parts["l_sep"], p, allow_unused=True)
    assert grad is None or float(grad.abs().max()) == 0.0


def test_without_a_teacher_the_loss_is_plain_ce():
    logits, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    loss, terms = hill_loss(logits, y, torch.randn(8, 2), torch.arange(8), None, LossWeights())
    assert torch.equal(loss, torch.nn.functional.cross_entropy(logits, y))
    assert float(terms["l_human"]) == 0.0 and float(terms["scale_term"]) == 0.0


def test_global_loss_combines_terms_with_alpha_and_lambda():
    edits = layout(CENTRES)
    teacher = teacher_from_edits(edits, 3)
    p, y, ids = batch_of(edits)
    p = p * 1.5 + 0.3
    logits = torch.randn(len(y), 3)
    w = LossWeights(alpha=0.3, lam=0.2)
    loss, t = hill_loss(logits, y, p, ids, teacher, w)
    expected = 0.7 * t["ce"] + 0.3 * t["l_human"] + 0.2 * (1 - t["scale"]).abs()
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    assert float(t["scale"]) == pytest.approx(1.5, rel=1e-5)

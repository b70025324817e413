"""The HILL loss asks only for what the person changed, relative to how the layout drifts."""

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
    df = pd.DataFrame(rows, columns=["sample_id", "label", "x_before", "y_before"])
    df["x_after"], df["y_after"] = df["x_before"], df["y_before"]
    df["moved"], df["run_id"], df["gate_epoch"] = False, "r", 1
    return df


def batch_of(edits, side="before"):
    p = torch.tensor(edits[[f"x_{side}", f"y_{side}"]].to_numpy(), dtype=torch.float32)
    y = torch.tensor(edits["label"].to_numpy())
    ids = torch.tensor(edits["sample_id"].to_numpy())
    return p, y, ids


CENTRES = [(0.0, 0.0), (4.0, 0.0), (0.0, 4.0), (4.0, 4.0), (8.0, 0.0)]


def edit(edits, shift=None, scale=None, move=None):
    """Apply class shifts {c: (dx, dy)}, scales {c: k} and single moves {row: (x, y)}."""
    edits = edits.copy()
    for c, (dx, dy) in (shift or {}).items():
        rows = edits["label"] == c
        edits.loc[rows, "x_after"] += dx
        edits.loc[rows, "y_after"] += dy
    for c, k in (scale or {}).items():
        rows = edits["label"] == c
        for axis in "xy":
            centre = edits.loc[rows, f"{axis}_after"].mean()
            edits.loc[rows, f"{axis}_after"] = centre + k * (
                edits.loc[rows, f"{axis}_after"] - centre
            )
    for row, (x, y) in (move or {}).items():
        edits.loc[row, ["x_after", "y_after", "moved"]] = [x, y, True]
    return edits


def terms_at(teacher, p, y, ids):
    return {k: float(v) for k, v in human_components(p, y, ids, teacher).items()}


def test_an_unedited_approval_teaches_nothing():
    teacher = teacher_from_edits(layout(CENTRES), 5)
    assert not teacher.edited
    p, y, ids = batch_of(layout(CENTRES))
    for drifted in (p, p * 3 + 2, p.flip(1)):
        assert all(v == 0.0 for v in terms_at(teacher, drifted, y, ids).values())


def test_a_shift_asks_for_progress_along_it_and_no_more():
    edits = edit(layout(CENTRES), shift={1: (2.0, 0.0)})
    teacher = teacher_from_edits(edits, 5)
    assert teacher.shifted.tolist() == [False, True, False, False, False]
    p, y, ids = batch_of(edits)
    values = []
    for step in (0.0, 1.0, 2.0, 3.0):
        q = p.clone()
        q[y == 1] += torch.tensor([step, 0.0])
        values.append(terms_at(teacher, q, y, ids)["l_center"])
    unit = float(teacher.gate_radius)  # lengths are measured in the layout's RMS radius
    want = [(2.0 / unit) ** 2, (1.0 / unit) ** 2, 0.0, 0.0]
    assert values == pytest.approx(want, abs=1e-5)  # one-sided: beyond is free


def test_requests_are_measured_against_the_untouched_classes_drift():
    edits = edit(layout(CENTRES), shift={1: (2.0, 0.0)}, scale={2: 0.5})
    teacher = teacher_from_edits(edits, 5)
    p, y, ids = batch_of(edits)
    done = batch_of(edits, "after")[0]
    assert terms_at(teacher, done, y, ids)["l_center"] == pytest.approx(0.0, abs=1e-6)
    assert terms_at(teacher, done, y, ids)["l_spread"] == pytest.approx(0.0, abs=1e-6)
    # The whole layout drifts and grows by itself: the requests stay fulfilled...
    grown = done * 2.0 + torch.tensor([5.0, -3.0])
    assert terms_at(teacher, grown, y, ids)["l_center"] == pytest.approx(0.0, abs=1e-5)
    assert terms_at(teacher, grown, y, ids)["l_spread"] == pytest.approx(0.0, abs=1e-5)
    # ...and the unfulfilled ones stay asked for, the same in the layout's own units.
    at_gate = terms_at(teacher, p, y, ids)["l_center"]
    assert at_gate > 0
    undone = p * 2.0 + torch.tensor([5.0, -3.0])
    assert terms_at(teacher, undone, y, ids)["l_center"] == pytest.approx(at_gate, rel=1e-4)


def test_a_compaction_is_one_sided():
    edits = edit(layout(CENTRES), scale={0: 0.5})
    teacher = teacher_from_edits(edits, 5)
    p, y, ids = batch_of(edits)
    values = []
    for k in (1.0, 0.75, 0.5, 0.25):
        q = p.clone()
        mu = q[y == 0].mean(0)
        q[y == 0] = mu + k * (q[y == 0] - mu)
        values.append(terms_at(teacher, q, y, ids)["l_spread"])
    assert values[0] > values[1] > 0 and values[2:] == pytest.approx([0.0, 0.0], abs=1e-6)


def test_a_moved_point_follows_the_class_it_was_dropped_into():
    edits = edit(layout(CENTRES), move={0: (4.0, 4.0)})  # class 0's point into class 3
    teacher = teacher_from_edits(edits, 5)
    assert teacher.moved_home.tolist() == [3]
    p, y, ids = batch_of(edits)
    unit = float(teacher.gate_radius)
    # averaged over the batch's items, as CE is: one moved point weighs as one item
    want = float(((p[0] - torch.tensor([4.0, 4.0])) ** 2).sum()) / unit**2 / len(p)
    assert terms_at(teacher, p, y, ids)["l_point"] == pytest.approx(want, rel=1e-5)
    q = p.clone()
    q[y == 3] += torch.tensor([1.0, 0.0])  # class 3 moved on; the target went with it
    q[0] = q[y == 3].mean(0)
    assert terms_at(teacher, q, y, ids)["l_point"] == pytest.approx(0.0, abs=1e-5)


def test_an_edit_of_one_class_leaves_the_other_classes_gradients_zero():
    edits = edit(layout(CENTRES), shift={1: (2.0, 1.0)}, scale={1: 0.5})
    teacher = teacher_from_edits(edits, 5)
    p, y, ids = batch_of(edits)
    p = (p * 1.7 + 0.4 + 0.1 * torch.randn(p.shape)).requires_grad_(True)
    loss, _ = hill_loss(torch.randn(len(y), 5), y, p, ids, teacher, LossWeights(alpha=1.0))
    (grad,) = torch.autograd.grad(loss, p)
    assert float(grad[y == 1].abs().sum()) > 0
    assert torch.equal(grad[y != 1], torch.zeros_like(grad[y != 1]))


def test_without_a_teacher_the_loss_is_plain_ce():
    logits, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    loss, terms = hill_loss(logits, y, torch.randn(8, 2), torch.arange(8), None, LossWeights())
    assert torch.equal(loss, torch.nn.functional.cross_entropy(logits, y))
    assert float(terms["l_human"]) == 0.0


def test_global_loss_combines_terms_with_alpha():
    edits = edit(layout(CENTRES), shift={2: (1.0, 1.0)}, move={0: (1.0, 1.0)})
    teacher = teacher_from_edits(edits, 5)
    p, y, ids = batch_of(edits)
    logits = torch.randn(len(y), 5)
    loss, t = hill_loss(logits, y, p, ids, teacher, LossWeights(alpha=0.3, w_point=2.0))
    assert float(t["l_human"]) == pytest.approx(
        float(t["l_center"] + t["l_spread"] + 2 * t["l_point"])
    )
    expected = 0.7 * t["ce"] + 0.3 * t["l_human"]
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)

"""Where the HILL loss's gradients go: into the backbone, never into the head or P."""

import torch

from hill_core.config import Config
from hill_core.data import load_data
from hill_core.edits import make_edits
from hill_core.losses import LossWeights, hill_loss
from hill_core.snapshot import take_snapshot
from hill_core.teacher import teacher_from_edits
from hill_core.train import init_state, train_segment


def trained_state(epochs=1):
    cfg = Config().replace(**{"train.epochs": 3, "hill.gate_epochs": [1]})
    state = init_state(cfg, load_data(cfg.data, cfg.base.seed))
    state, _ = train_segment(state, 1, epochs, None)
    return state


def compact_teacher(state):
    snap = take_snapshot(state, 200)
    centres = snap.groupby("label")[["x", "y"]].transform("mean")
    after = centres + 0.3 * (snap[["x", "y"]] - centres)
    edits = make_edits(snap, after["x"], after["y"], snap["label"] == 0, "r", 1)
    return teacher_from_edits(edits, 10)


def backbone_grads(state, teacher, weights):
    x, y, ids = next(iter(torch.utils.data.DataLoader(state.data.train, batch_size=64)))
    state.model.train()
    state.model.zero_grad()
    z = state.model.latent(x)
    loss, _ = hill_loss(state.model.head(z), y, state.projection(z), ids, teacher, weights)
    loss.backward()
    return [p.grad.clone() for p in state.model.backbone.parameters()]


def test_l_human_reaches_the_backbone_but_not_the_head_or_p():
    state = trained_state()
    teacher = compact_teacher(state)
    grads = backbone_grads(state, teacher, LossWeights(alpha=1.0))  # L_human only
    assert any(float(g.abs().sum()) > 0 for g in grads)
    head_grads = [p.grad for p in state.model.classifier.parameters()]
    assert all(g is None or float(g.abs().sum()) == 0 for g in head_grads)
    assert list(state.projection.parameters()) == []


def test_projection_never_changes_while_training_with_a_teacher():
    state = trained_state()
    before = {k: v.clone() for k, v in state.projection.state_dict().items()}
    state, history = train_segment(state, 2, 3, compact_teacher(state))
    assert history[-1]["l_human"] > 0
    for key, value in state.projection.state_dict().items():
        assert torch.equal(value, before[key]), key

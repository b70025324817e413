"""Training determinism: the baseline is plain CE, and resume equals uninterrupted training."""

import torch
import torch.nn.functional as F

from hill_core.config import Config
from hill_core.data import load_data
from hill_core.loop import GateOutcome, run_guided
from hill_core.models import build_model
from hill_core.train import epoch_loader, init_state, load_state, save_state, train_segment
from hill_core.users import simulated_edits

EPOCHS = 4


def small_config(**overrides):
    base = {"train.epochs": EPOCHS, "hill.gate_epochs": [2], "hill.snapshot_size": 100}
    return Config().replace(**{**base, **overrides})


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_baseline_equals_a_hand_written_ce_loop():
    cfg = small_config(**{"hill.alpha": 0.0, "hill.gate_epochs": []})
    data = load_data(cfg.data, cfg.base.seed)
    state = init_state(cfg, data)
    state, _ = train_segment(state, 1, EPOCHS, None)

    torch.manual_seed(cfg.base.seed)
    model = build_model(cfg.model, data.name, data.input_shape, data.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    for epoch in range(1, EPOCHS + 1):
        model.train()
        for x, y, _ in epoch_loader(data, cfg.train.batch_size, cfg.base.seed, epoch):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert_same_weights(state.model, model)


def test_resume_from_checkpoint_equals_uninterrupted_training(tmp_path):
    cfg = small_config(**{"model.dropout": 0.3})  # dropout consumes RNG: resume must restore it
    data = load_data(cfg.data, cfg.base.seed)

    def answer(state, snap, gate, val):
        return GateOutcome(
            "approve", simulated_edits("compactness", snap, val.confusion, 0, "r", gate)
        )

    straight = run_guided(cfg, data, answer)

    first = init_state(cfg, data)
    first, _ = train_segment(first, 1, 2, None)
    save_state(first, tmp_path / "ckpt.pt")
    del first
    resumed = load_state(tmp_path / "ckpt.pt", cfg, data)
    assert resumed.epoch == 2
    finished = run_guided(cfg, data, answer, state=resumed)
    assert_same_weights(straight.state.model, finished.state.model)
    assert finished.test.accuracy == straight.test.accuracy
    assert [h["l_human"] for h in finished.history] == [h["l_human"] for h in straight.history[2:]]


def test_segments_report_every_term_every_epoch():
    cfg = small_config()
    data = load_data(cfg.data, cfg.base.seed)

    def answer(state, snap, gate, val):
        return GateOutcome(
            "approve", simulated_edits("separation", snap, val.confusion, 0, "r", gate)
        )

    result = run_guided(cfg, data, answer)
    keys = {"ce", "l_center", "l_spread", "l_sep", "l_point", "l_human", "scale", "loss"}
    assert len(result.history) == EPOCHS
    assert all(
        keys | {"val_acc", "train_acc", "teacher_active"} <= h.keys() for h in result.history
    )
    assert [h["teacher_active"] for h in result.history] == [0.0, 0.0, 1.0, 1.0]
    assert result.history[2]["l_human"] > 0 and result.history[0]["l_human"] == 0

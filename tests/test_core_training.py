"""Training determinism: the baseline is plain CE, and resume equals uninterrupted training."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hill_core.checkpoint import CheckpointError, load_state, save_state
from hill_core.config import Config
from hill_core.data import load_data
from hill_core.decision import GateDecision
from hill_core.edits import EditsMeta, make_edits, write_edits
from hill_core.evaluate import evaluate
from hill_core.loop import autopilot_answers, baseline_config, gate_file, run_guided
from hill_core.models import build_model
from hill_core.train import epoch_loader, init_state, train_segment

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
    # Images in channels_last, as PyTorch's performance guide advises and hill does.
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    for epoch in range(1, EPOCHS + 1):
        model.train()
        for x, y, _ in epoch_loader(data.train, cfg.train.batch_size, cfg.base.seed, epoch):
            loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert_same_weights(state.model, model)


def recording(answer):
    """An in-process gate answer that records ``answer(snapshot)`` (an edits table) as approved."""

    def gate(state, snap, gate_epoch, val):
        path = gate_file(state.config.base.run_dir, gate_epoch)
        edits = answer(snap, gate_epoch)
        return GateDecision.recorded(write_edits(path, edits, EditsMeta("cfg"), snap))

    return gate


def test_resume_from_checkpoint_equals_uninterrupted_training(tmp_path):
    cfg = small_config(**{"model.dropout": 0.3})  # dropout consumes RNG: resume must restore it
    data = load_data(cfg.data, cfg.base.seed)
    straight = run_guided(cfg, data, autopilot_answers("compactness", tmp_path), lockstep=False)
    teacher = straight.gates[2].teacher(data.num_classes)
    assert straight.gates[2].source == "autopilot:compactness"

    first = init_state(cfg, data)
    first, _ = train_segment(first, 1, 2, None)
    save_state(first, tmp_path / "ckpt.pt")
    del first
    resumed = load_state(tmp_path / "ckpt.pt", cfg, data)
    assert resumed.epoch == 2
    resumed, history = train_segment(resumed, 3, EPOCHS, teacher)
    assert_same_weights(straight.state.model, resumed.model)
    assert [h["l_human"] for h in history] == [h["l_human"] for h in straight.history[2:]]


@pytest.mark.slow
def test_lockstep_baseline_equals_a_baseline_trained_alone(tmp_path):
    cfg = small_config(**{"model.dropout": 0.3})
    data = load_data(cfg.data, cfg.base.seed)
    answer = autopilot_answers("compactness", tmp_path)
    guided = run_guided(cfg, data, answer)  # the guided run's dropout interleaves
    alone = init_state(baseline_config(cfg), data)
    alone, _ = train_segment(alone, 1, EPOCHS, None)
    assert_same_weights(guided.baseline.model, alone.model)
    assert (
        guided.baseline_test.accuracy
        == evaluate(alone.model, data.test, alone.device, data.num_classes).accuracy
    )


def test_an_unedited_approval_trains_exactly_like_the_baseline(tmp_path):
    cfg = small_config(**{"model.dropout": 0.3})
    data = load_data(cfg.data, cfg.base.seed)
    result = run_guided(cfg, data, autopilot_answers("noedit", tmp_path))
    assert_same_weights(result.state.model, result.baseline.model)
    assert [h["teacher_active"] for h in result.history] == [0.0] * EPOCHS


@pytest.mark.slow
def test_the_guard_reverts_a_harmful_teacher_to_the_baseline_path(tmp_path):
    """A constructed harmful edit: every class dragged onto one spot, every point moved there."""
    cfg = small_config(
        **{
            "train.epochs": 6,
            "hill.guard": "revert",
            "hill.alpha": 0.9,
            "base.run_dir": str(tmp_path),
        }
    )
    data = load_data(cfg.data, cfg.base.seed)
    collapse = recording(  # every item of the snapshot (its sample and its top suspects)
        lambda snap, gate: make_edits(
            snap, np.zeros(len(snap)), np.zeros(len(snap)), np.ones(len(snap), bool), "r", gate
        )
    )

    unguarded = run_guided(cfg.replace(**{"hill.guard": "off"}), data, collapse)
    (harm,) = unguarded.progress.verdicts
    assert harm.action == "keep" and harm.gain_pp < -cfg.hill.guard_tolerance
    guarded = run_guided(cfg, data, collapse)
    (verdict,) = guarded.progress.verdicts
    assert verdict.action == "revert" and verdict.gain_pp == harm.gain_pp
    # No teacher was active before the gate: re-training without it is the baseline's path.
    assert_same_weights(guarded.state.model, guarded.baseline.model)
    assert [h["epoch"] for h in guarded.history] == list(range(1, 7))
    assert guarded.progress.guided_val == guarded.progress.baseline_val


def test_segments_report_every_term_every_epoch(tmp_path):
    cfg = small_config()
    data = load_data(cfg.data, cfg.base.seed)
    result = run_guided(cfg, data, autopilot_answers("compactness", tmp_path), lockstep=False)
    keys = {"ce", "l_center", "l_spread", "l_point", "l_human", "alpha", "loss"}
    assert len(result.history) == EPOCHS
    assert all(
        keys | {"val_acc", "train_acc", "teacher_active"} <= h.keys() for h in result.history
    )
    assert [h["teacher_active"] for h in result.history] == [0.0, 0.0, 1.0, 1.0]
    assert result.history[2]["l_human"] > 0 and result.history[0]["l_human"] == 0


class _RunsCode:
    """Pickles as a call that writes a file: what a crafted checkpoint could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_a_crafted_checkpoint_runs_no_code(tmp_path):
    cfg = small_config()
    data = load_data(cfg.data, cfg.base.seed)
    path = save_state(init_state(cfg, data), tmp_path / "ckpt.pt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["extra"] = {"payload": _RunsCode(tmp_path / "pwned")}
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=r"ckpt\.pt: refused"):
        load_state(path, cfg, data)
    assert not (tmp_path / "pwned").exists()


def test_a_truncated_or_missing_checkpoint_is_one_clear_error(tmp_path):
    cfg = small_config()
    data = load_data(cfg.data, cfg.base.seed)
    path = save_state(init_state(cfg, data), tmp_path / "ckpt.pt")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"ckpt\.pt: not a readable checkpoint"):
        load_state(path, cfg, data)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_state(tmp_path / "gone.pt", cfg, data)
    text = tmp_path / "notes.pt"
    text.write_text("hello world\n")  # defect L: torch's reader raised KeyError: 101
    with pytest.raises(CheckpointError, match=r"notes\.pt: not a readable checkpoint \(KeyError\)"):
        load_state(text, cfg, data)

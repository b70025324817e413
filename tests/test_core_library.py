"""hill_core is a plain library: no orchestration/tracking/UI imports, nothing at import."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from hill_core.config import Config
from hill_core.data import load_data
from hill_core.evaluate import confusion_from, evaluate, scores_from_confusion
from hill_core.models import build_model
from hill_core.projection import fit_projection
from hill_core.snapshot import take_snapshot
from hill_core.train import init_state, train_segment

CORE = Path(__file__).resolve().parents[1] / "hill_core"


@pytest.mark.slow
def test_hill_core_imports_no_orchestration_tracking_or_ui():
    modules = sorted(
        "hill_core." + ".".join(p.relative_to(CORE).with_suffix("").parts)
        for p in CORE.rglob("*.py")
        if p.name != "__init__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted({n.split('.')[0] for n in sys.modules} & "
        "{'prefect', 'mlflow', 'gradio', 'dvc'})\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout
    assert len(modules) >= 10


def test_models_expose_latent_and_head():
    cases = [
        ("digits", "digits_cnn", (1, 8, 8), 64),
        ("cifar10", "cifar_small_cnn", (3, 32, 32), 64),
        ("cifar10", "cifar_proto_cnn", (3, 32, 32), 4096),
        ("pamap2", "pamap2_cnn", (27, 200), 1024),
        ("table", "mlp", (5,), 64),
    ]
    for data_name, preset, shape, d in cases:
        cfg = Config().replace(**{"model.name": preset}).model
        model = build_model(cfg, data_name, shape, 7).eval()
        z = model.latent(torch.randn(2, *shape))
        assert z.shape == (2, d) and model.head(z).shape == (2, 7), preset


def test_evaluate_scores_match_their_definitions():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    result = scores_from_confusion(confusion_from(y_true, y_pred, 3))
    assert result.accuracy == 4 / 6
    assert np.isclose(result.macro_f1, f1_score(y_true, y_pred, average="macro"))
    assert result.per_class_accuracy.tolist() == [0.5, 1.0, 0.5]


def test_projection_is_deterministic_and_normalised():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    z = rng.normal(size=(200, 16)) + y[:, None] * rng.normal(size=16)
    for method in ("lda", "pca"):
        a, b = fit_projection(z, y, method), fit_projection(z, y, method)
        assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
        p = a(torch.tensor(z, dtype=torch.float32))
        assert torch.allclose(p.mean(0), torch.zeros(2), atol=1e-4)
        assert abs(float(((p**2).sum(1).mean()).sqrt()) - 1.0) < 1e-4  # RMS radius 1


def test_snapshot_is_stratified_stable_and_positioned_by_p():
    cfg = Config().replace(**{"train.epochs": 2, "hill.gate_epochs": [1], "hill.suspects": 0})
    data = load_data(cfg.data, cfg.base.seed)
    state, _ = train_segment(init_state(cfg, data), 1, 1, None)
    a, b = take_snapshot(state, 200), take_snapshot(state, 200)
    assert a.equals(b) and len(a) == 200 and a["sample_id"].is_unique
    shares = a["label"].value_counts(normalize=True).sort_index()
    assert np.allclose(shares, np.bincount(data.train.labels) / len(data.train), atol=0.02)
    assert set(a["sample_id"]) <= set(data.train.ids.tolist())
    assert (a["class_name"] == a["label"].astype(str)).all()
    acc = evaluate(state.model, data.val, state.device, 10).accuracy
    assert 0.0 < acc <= 1.0

"""A user's own network and data set, named by import path: built, tapped, checked, trained.

Each mistake a user makes with them is one line (a HillError), raised when the model or data is
built, before any training.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from user_code import copy_examples, write_user_package

from hill_core.config import load_config
from hill_core.data import load_data
from hill_core.data.fingerprint import fingerprint, what_changed
from hill_core.errors import HillError
from hill_core.models import build_model
from hill_core.tapped import LatentTap
from hill_core.train import init_state, train_segment


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_user_package(tmp_path)
    copy_examples(tmp_path)
    return tmp_path


def config(*sets):
    return load_config(None, ["base.device=cpu", "train.epochs=2", "hill.gate_epochs=[]", *sets])


EXAMPLE = [
    "data.name=examples.tinynet.data:digit_splits",
    "model.name=examples.tinynet.model:build",
    "model.latent=encoder.proj",
    "model.kwargs={width: 16, latent: 8}",
]


def test_the_example_network_is_tapped_at_its_inner_layer(project):
    cfg = config(*EXAMPLE)
    data = load_data(cfg.data, 0)
    model = build_model(cfg.model, data.name, data.input_shape, data.num_classes)
    assert isinstance(model, LatentTap) and model.latent_dim == 8
    x = data.val.batch(torch.arange(5))[0]
    model.eval()
    z, logits = model.latent_and_logits(x)
    assert z.shape == (5, 8) and logits.shape == (5, 10)
    # z is encoder.proj's output (before its ReLU), and the logits are the network's own.
    assert torch.equal(z, model.net.encoder[:6](x))
    assert torch.equal(logits, model.net(x))
    # The hook lives only during a call: the network is left as its author wrote it.
    assert all(not m._forward_hooks for m in model.net.modules())
    pickle.dumps(model.net)


def test_the_user_network_trains_and_l_human_reaches_the_layers_below_the_latent(project):
    cfg = config(*EXAMPLE)
    data = load_data(cfg.data, 0)
    state = init_state(cfg, data)
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    state, history = train_segment(state, 1, 2, None)
    assert history[-1]["val_acc"] > 0.2 and state.projection is not None
    assert state.projection.weight.shape == (8, 2)
    changed = [k for k, v in state.model.state_dict().items() if not torch.equal(v, before[k])]
    assert "net.encoder.conv.weight" in changed and "net.encoder.norm.running_mean" in changed


def test_building_draws_nothing_from_the_rng_beyond_the_factory(project):
    """The probe forward that measures d and checks shapes leaves every RNG where it was."""
    cfg = config(*EXAMPLE)
    data = load_data(cfg.data, 0)
    torch.manual_seed(3)
    build_model(cfg.model, data.name, data.input_shape, data.num_classes)
    after_build = torch.rand(3)
    torch.manual_seed(3)
    from examples.tinynet.model import build

    build(data.num_classes, data.input_shape, width=16, latent=8)
    assert torch.equal(torch.rand(3), after_build)


def test_torchvision_resnet18_is_tapped_at_avgpool(project):
    cfg = config("model.name=torchvision:resnet18", "model.latent=avgpool")
    model = build_model(cfg.model, "imagefolder", (3, 32, 32), 3)
    z, logits = model.latent_and_logits(torch.randn(2, 3, 32, 32))
    assert model.latent_dim == 512 and z.shape == (2, 512) and logits.shape == (2, 3)


def test_model_weights_load_with_weights_only_and_must_fit(project):
    cfg = config("model.name=userpkg.models:build", "model.latent=body.proj")
    torch.manual_seed(0)
    source = build_model(cfg.model, "digits", (1, 8, 8), 10)
    torch.save(source.net.state_dict(), project / "w.pt")
    torch.manual_seed(1)
    loaded = build_model(cfg.replace(**{"model.weights": "w.pt"}).model, "digits", (1, 8, 8), 10)
    for k, v in source.net.state_dict().items():
        assert torch.equal(v, loaded.net.state_dict()[k]), k
    with pytest.raises(HillError, match=r"out.weight is \(10, 12\) in the file, \(7, 12\) here"):
        build_model(cfg.replace(**{"model.weights": "w.pt"}).model, "digits", (1, 8, 8), 7)
    (project / "evil.pt").write_bytes(pickle.dumps(print))
    with pytest.raises(HillError, match="model.weights: evil.pt: "):
        build_model(cfg.replace(**{"model.weights": "evil.pt"}).model, "digits", (1, 8, 8), 10)


MISTAKES = {
    "module missing": (["model.name=nopkg.models:build", "model.latent=x"], "cannot import"),
    "factory missing": (["model.name=userpkg.models:nothing", "model.latent=x"], "no 'nothing'"),
    "not a module": (["model.name=userpkg.models:not_a_module", "model.latent=x"], "not a torch"),
    "factory raises": (["model.name=userpkg.models:broken", "model.latent=x"], "no GPU here"),
    "latent names no module": (
        ["model.name=userpkg.models:build", "model.latent=body.projection"],
        "close: body.proj",
    ),
    "latent is not (B, ...)": (
        ["model.name=userpkg.models:pair_net", "model.latent=pair"],
        "tuple",
    ),
    "latent never called": (
        ["model.name=userpkg.models:build", "model.latent=pair"],
        "not called",
    ),
    "unknown torchvision": (
        ["model.name=torchvision:resnet19", "model.latent=avgpool"],
        "resnet18",
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES), ids=list(MISTAKES))
def test_a_model_mistake_is_one_line(project, mistake):
    sets, expected = MISTAKES[mistake]
    cfg = config(*sets)
    with pytest.raises(HillError) as caught:
        build_model(cfg.model, "digits", (1, 8, 8), 10)
    message = str(caught.value)
    assert expected in message and "\n" not in message, message


def test_latent_mistake_lists_the_modules_there_are(project):
    cfg = config("model.name=userpkg.models:build", "model.latent=encoder")
    with pytest.raises(HillError, match=r"modules: body, body.conv, body.norm, .*out, pair"):
        build_model(cfg.model, "digits", (1, 8, 8), 10)


def test_a_factory_data_set_loads_with_indices_as_ids(project):
    cfg = config("data.name=userpkg.data:digits")
    data = load_data(cfg.data, 5)
    assert (len(data.train), len(data.val), len(data.test)) == (1200, 300, 297)
    assert np.array_equal(data.train.ids, np.arange(1200))
    assert data.input_shape == (1, 8, 8) and data.class_names[3] == "3"
    x, y, ids = data.train.batch(torch.tensor([4, 7]))
    assert x.dtype == torch.float32 and ids.tolist() == [4, 7]


DATA_MISTAKES = {
    "labels outside the names": ("userpkg.data:bad_labels", "label 12 at index"),
    "not datasets": ("userpkg.data:not_datasets", "return (train, val, test, class_names)"),
    "no such factory": ("userpkg.data:nothing", "no 'nothing'"),
}


@pytest.mark.parametrize("mistake", list(DATA_MISTAKES), ids=list(DATA_MISTAKES))
def test_a_data_mistake_is_one_line(project, mistake):
    name, expected = DATA_MISTAKES[mistake]
    with pytest.raises(HillError) as caught:
        load_data(config(f"data.name={name}").data, 0)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_a_fingerprint_names_what_changed(project):
    data = load_data(config("data.name=userpkg.data:digits").data, 5)
    before = fingerprint(data)
    assert what_changed(before, fingerprint(data)) is None
    other_split = fingerprint(load_data(config("data.name=userpkg.data:digits").data, 6))
    assert what_changed(before, other_split) == "the train split's labels (or ids) differ"
    fewer = fingerprint(data.__class__(**{**data.__dict__, "train_eval": data.val}))
    assert what_changed(before, fewer) == "the train split has 300 items, the run had 1200"
    brighter = data.train_eval.subset(np.arange(1200))
    brighter.get_batch = lambda rows: data.train_eval.raw_batch(rows) + 1
    changed = fingerprint(data.__class__(**{**data.__dict__, "train_eval": brighter}))
    assert what_changed(before, changed) == "the train split's items differ (in a sample of 64)"


def test_a_network_whose_training_forward_returns_a_tuple_is_refused(project):
    """googlenet returns GoogLeNetOutputs while training: caught at build, not at epoch 1."""
    cfg = config("model.name=torchvision:googlenet", "model.latent=avgpool")
    with pytest.raises(HillError, match=r"returns GoogLeNetOutputs .* \(training mode\)"):
        build_model(cfg.model, "imagefolder", (3, 64, 64), 3)
    fixed = cfg.replace(**{"model.kwargs": {"aux_logits": False, "init_weights": True}})
    assert build_model(fixed.model, "imagefolder", (3, 64, 64), 3).latent_dim == 1024


def test_the_probe_leaves_batchnorm_statistics_as_built(project):
    cfg = config(*EXAMPLE)
    torch.manual_seed(0)
    model = build_model(cfg.model, "x", (1, 8, 8), 10)
    assert model.net.encoder.norm.num_batches_tracked == 0
    assert torch.equal(model.net.encoder.norm.running_mean, torch.zeros(16))


def test_a_factory_that_takes_no_arguments_is_called_with_none(project):
    (project / "bare.py").write_text(
        "from collections import OrderedDict\n"
        "from torch import nn\n"
        "def net():\n"
        "    return nn.Sequential(OrderedDict(flat=nn.Flatten(), fc=nn.Linear(64, 10)))\n"
    )
    cfg = config("model.name=bare:net", "model.latent=flat")
    assert build_model(cfg.model, "digits", (1, 8, 8), 10).latent_dim == 64


def test_the_hooked_path_computes_what_the_direct_path_does():
    """benchmarks/latent_tap.py times these two on the same weights: they must agree."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from latent_tap import tapped_twin

    preset = build_model(config().model, "digits", (1, 8, 8), 10).eval()
    x = torch.randn(5, 1, 8, 8)
    for got, want in zip(tapped_twin(preset).latent_and_logits(x), preset.latent_and_logits(x),
                         strict=True):  # fmt: skip
        assert torch.equal(got, want)

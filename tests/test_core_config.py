"""The typed config: defaults, params files, overrides, presets and one-line errors."""

from pathlib import Path

import pytest

from hill_core.config import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_project_params_and_presets_load():
    assert load_config(ROOT / "params.yaml").data.name == "digits"
    for preset, name in [("cifar10_paper", "cifar10"), ("pamap2_paper", "pamap2")]:
        cfg = load_config(ROOT / "configs" / f"{preset}.yaml")
        assert cfg.data.name == name
        assert cfg.train.epochs == 50 and cfg.hill.gate_epochs == [25, 30, 35, 40]
        assert cfg.hill.alpha == 0.5
        assert (cfg.train.optimizer, cfg.train.lr, cfg.train.batch_size) == ("adam", 1e-4, 512)


def test_overrides_take_precedence_and_are_typed(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("train:\n  epochs: 7\n")
    cfg = load_config(path, ["train.epochs=5", "hill.gate_epochs=[2, 3]", "hill.alpha=1"])
    assert cfg.train.epochs == 5 and cfg.hill.gate_epochs == [2, 3]
    assert cfg.hill.alpha == 1.0 and isinstance(cfg.hill.alpha, float)


@pytest.mark.parametrize(
    ("text", "overrides", "names"),
    [
        ("train:\n  epoch: 3\n", [], "train.epoch"),
        ("trian:\n  epochs: 3\n", [], "trian"),
        ("train:\n  epochs: three\n", [], "train.epochs"),
        ("train:\n  epochs: true\n", [], "train.epochs"),
        ("hill:\n  projection: tsne\n", [], "hill.projection"),
        ("hill:\n  gate_epochs: 4\n", [], "hill.gate_epochs"),
        ("train: [1, 2]\n", [], "train"),
        ("train:\n  epochs: 3\n  lr: [0.1\n", [], "line"),
        ("", ["train.batch_size=big"], "train.batch_size"),
        ("", ["nonsense"], "nonsense"),
        ("hill:\n  gate_epochs: [8, 4]\n", [], "hill.gate_epochs"),
    ],
)
def test_malformed_params_give_one_line_naming_the_key(tmp_path, text, overrides, names):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    message = str(err.value)
    assert names in message and "\n" not in message
    assert path.read_text() == text  # the file is left as it was


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such params file"):
        load_config(tmp_path / "nope.yaml")


def test_hash_is_stable_and_changes_with_values():
    assert Config().hash() == Config().hash()
    assert Config().hash() != Config().replace(**{"base.seed": 1}).hash()
    assert Config().flat()["train.epochs"] == 12

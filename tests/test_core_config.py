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


def load_both_ways(tmp_path, key: str, text: str):
    """``key: text`` read from a params file and, separately, from ``-S key=text``."""
    section, name = key.split(".")
    path = tmp_path / "params.yaml"
    path.write_text(f"{section}:\n  {name}: {text}\n")
    return [load_config(path).flat()[key], load_config(None, [f"{key}={text}"]).flat()[key]]


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("train.lr", "1e-3", 0.001),  # a string in YAML 1.1 (PyYAML's own loader)
        ("train.lr", "1E5", 1e5),
        ("train.lr", "2.5e+3", 2500.0),
        ("train.lr", ".5", 0.5),
        ("train.lr", "1.", 1.0),
        ("train.lr", "3", 3.0),
        ("train.epochs", "017", 17),  # decimal, not YAML 1.1's octal 15
        ("train.epochs", "0o17", 15),
        ("train.epochs", "0x1F", 31),
        ("train.epochs", "+12", 12),
        ("hill.guard", "off", "off"),  # a string in YAML 1.2; YAML 1.1 said false
        ("hill.guard", "false", "off"),  # kept working: false means off
        ("data.download", "true", True),
        ("data.download", "False", False),
        ("hill.gate_epochs", "[2, 0x3]", [2, 3]),
    ],
)
def test_numbers_and_booleans_follow_yaml_1_2_in_files_and_overrides(tmp_path, key, text, value):
    for got in load_both_ways(tmp_path, key, text):
        assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("key", "text", "says"),
    [
        ("train.epochs", "1_000", "expected int, got '1_000' (numbers are YAML 1.2"),
        ("train.lr", "1_0.5", "expected float, got '1_0.5'"),
        ("train.epochs", "1:30", "expected int, got '1:30'"),  # no base 60
        ("train.epochs", "٣", "expected int, got '٣'"),  # Arabic-Indic three
        ("train.epochs", "'٣'", "expected int, got '٣'"),
        ("train.epochs", "１２", "expected int, got '１２'"),  # fullwidth twelve
        ("train.lr", "１e-3", "expected float, got '１e-3'"),
        ("hill.gate_epochs", "[2, ٣]", "hill.gate_epochs[1]: expected int, got '٣'"),
        ("train.epochs", "!!int 1_000", "'1_000' is not a YAML 1.2 int"),
        ("train.epochs", "!!int '٣'", "'٣' is not a YAML 1.2 int"),
        ("train.lr", "!!float 1_0.5", "'1_0.5' is not a YAML 1.2 float"),
        ("data.download", "yes", "expected bool, got 'yes' (booleans are YAML 1.2"),
        ("data.download", "on", "expected bool, got 'on'"),
        ("train.epochs", "0b101", "expected int, got '0b101'"),  # YAML 1.1 only
        ("train.lr", ".inf", "train.lr: inf is not a finite number"),
        ("hill.alpha", ".nan", "hill.alpha: nan is not a finite number"),
    ],
)
def test_non_yaml_1_2_numbers_and_odd_digits_are_refused_in_one_line(tmp_path, key, text, says):
    section, name = key.split(".")
    path = tmp_path / "params.yaml"
    path.write_text(f"{section}:\n  {name}: {text}\n")
    for load in (lambda: load_config(path), lambda: load_config(None, [f"{key}={text}"])):
        with pytest.raises(ConfigError) as err:
            load()
        assert says in str(err.value) and "\n" not in str(err.value)


def test_the_resolved_config_round_trips_through_yaml_1_2(tmp_path):
    from hill_core.config import dump_yaml, yaml12_load

    cfg = Config().replace(
        **{"tracking.experiment_prefix": "1e3", "data.root": "0x1F", "gate.auth_file": "true"}
    )
    cfg = cfg.replace(**{"train.weight_decay": 1e-5, "hill.guard": "off"})
    text = dump_yaml(cfg.to_dict())
    assert yaml12_load(text) == cfg.to_dict()
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("train.weight_decay=-1", "train.weight_decay must be non-negative"),
        ("train.momentum=-0.1", "train.momentum must lie in [0, 1)"),
        ("train.momentum=1", "train.momentum must lie in [0, 1)"),
        ("base.seed=-1", "base.seed must lie in [0, 2**32)"),
        ("base.seed=4294967296", "base.seed must lie in [0, 2**32)"),
        ("model.dropout=1", "model.dropout must lie in [0, 1)"),
        ("model.dropout=-0.5", "model.dropout must lie in [0, 1)"),
        ("model.latent_dim=1", "model.latent_dim must be at least 2"),
        ("data.val_fraction=0.5", "data.val_fraction + data.test_fraction must be below 1"),
        ("data.image_size=4", "data.image_size must be at least 8"),
        ("hill.projection_sample=1", "hill.projection_sample must be at least 2"),
        ("gate.poll_interval_s=0", "gate.poll_interval_s must be at least 1"),
        ("hill.w_center=-5", "hill.w_center, hill.w_spread and hill.w_point must be non-neg"),
    ],
)
def test_values_torch_would_reject_are_refused_up_front(override, says):
    overrides = [override, "data.test_fraction=0.5"] if "val_fraction" in override else [override]
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_limits_themselves_are_accepted():
    cfg = load_config(
        None,
        [
            "train.weight_decay=0",
            "train.momentum=0",
            "model.dropout=0",
            "model.latent_dim=2",
            "data.val_fraction=0.49",
            "data.test_fraction=0.5",
            "hill.projection_sample=2",
            "base.seed=4294967295",
        ],
    )
    assert cfg.model.latent_dim == 2 and cfg.base.seed == 2**32 - 1


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("-2.5e+3", -2500.0),
        ("-.5", -0.5),
        ("-17", -17),
        ("-.inf", float("-inf")),
        ("+.Inf", float("inf")),
        ("~", None),
        ("", None),
        ("NULL", None),
        ("TRUE", True),
        ("2024-01-01", "2024-01-01"),  # no timestamps
        ("0x", "0x"),
        ("1e", "1e"),
        ("-0o7", "-0o7"),  # 1.2 core: octal and hex have no sign
    ],
)
def test_the_yaml_1_2_loader_on_its_own(text, value):
    from hill_core.config import yaml12_load

    got = yaml12_load(text)
    assert got == value and type(got) is type(value)

"""One typed config for the whole project, loaded from ``params.yaml``.

Defaults live here, one comment each. A YAML file overrides them section by section, and
``-S section.key=value`` overrides (as ``dvc exp run -S`` takes them) go on top. Unknown keys
and wrong types are a :class:`ConfigError` whose one-line message names the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


class ConfigError(ValueError):
    """A params file or override that does not fit the config; the message names the key."""


@dataclass(frozen=True)
class BaseConfig:
    seed: int = 0  # seeds weights, data split, shuffling and snapshots
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA (with autocast) when present
    run_dir: str = "runs"  # checkpoints and snapshots, one sub-folder per run


@dataclass(frozen=True)
class DataConfig:
    name: Literal["digits", "cifar10", "pamap2", "imagefolder", "table"] = "digits"
    root: str = "data/raw"  # folder (cifar10, pamap2, imagefolder) or file (table)
    download: bool = False  # cifar10 only; needs internet
    val_fraction: float = 0.15  # of all items, stratified (cifar10: of its train set)
    test_fraction: float = 0.15  # of all items, stratified (ignored where the set has a test split)
    label_column: str = "label"  # table only
    image_size: int = 32  # imagefolder only: images are resized to a square of this many pixels
    augment: bool = True  # cifar10 and imagefolder: random crop and flip while training


@dataclass(frozen=True)
class ModelConfig:
    # auto picks the preset of the data set: digits_cnn, cifar_small_cnn, pamap2_cnn or mlp
    name: Literal[
        "auto", "digits_cnn", "cifar_small_cnn", "cifar_proto_cnn", "pamap2_cnn", "mlp"
    ] = "auto"
    latent_dim: int = 64  # d of z for the presets whose latent size is free
    dropout: float = 0.1  # in the classifier head


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    batch_size: int = 64
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    scheduler: Literal["none", "cosine"] = "none"  # cosine anneals over train.epochs


@dataclass(frozen=True)
class HillConfig:
    alpha: float = 0.2  # weight of L_human; (1 - alpha) weighs CE while an edit is active
    w_center: float = 1.0  # shifted classes (moves, merges, separations)
    w_spread: float = 1.0  # scaled classes (compact or spread)
    w_point: float = 1.0  # points moved one by one
    freeze_epoch: int = 1  # P is fitted after this epoch and frozen from then on
    projection: Literal["lda", "pca"] = "lda"
    projection_sample: int = 2000  # training items used to fit P
    gate_epochs: list[int] = field(default_factory=lambda: [4, 8])  # pause after these epochs
    snapshot_size: int = 500  # items shown at a gate, stratified by class
    on_skip: Literal["keep", "clear"] = "keep"  # a skipped gate keeps or clears the teacher
    # After the segment that follows a gate, compare with the lockstep baseline: revert drops a
    # teacher that cost more than guard_tolerance, adapt scales alpha by the measured benefit.
    guard: Literal["off", "revert", "adapt"] = "revert"
    guard_tolerance: float = 1.0  # percentage points of validation accuracy


@dataclass(frozen=True)
class GateConfig:
    host: str = "127.0.0.1"  # where the gate page listens; anything else needs auth
    port: int = 0  # 0: a free port
    auth_env: str = "HILL_GATE_AUTH"  # environment variable holding "user:password"
    auth_file: str = ""  # or a file holding "user:password"
    timeout_s: int = 3600  # how long a gate waits for a person
    on_timeout: Literal["skip", "stop"] = "skip"
    poll_interval_s: int = 1  # how often a paused run checks for its resume
    # How a run waits: pause keeps the process and serves the page itself; suspend frees the
    # worker and the gate service serves the page; auto suspends runs of a deployment only.
    wait: Literal["auto", "pause", "suspend"] = "auto"
    service_url: str = "http://127.0.0.1:7870"  # the gate service, as a person's browser sees it


@dataclass(frozen=True)
class TrackingConfig:
    experiment_prefix: str = "hill"  # MLflow experiment is "<prefix>-<data set>"
    edits_dir: str = "data/edits"  # DVC-tracked gate edits, one sub-folder per run


@dataclass(frozen=True)
class Config:
    base: BaseConfig = field(default_factory=BaseConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    hill: HillConfig = field(default_factory=HillConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """``{"train.epochs": 12, ...}``: the form MLflow params and DVC params diff use."""
        return {
            f"{section}.{key}": value
            for section, values in self.to_dict().items()
            for key, value in values.items()
        }

    def hash(self) -> str:
        """Short, stable hash of the resolved config (stamped on every artifact)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def replace(self, **overrides: Any) -> Config:
        """Copy with dotted overrides, validated like a file: ``replace(**{"hill.alpha": 0})``."""
        return from_dict(_merge(self.to_dict(), _nest(overrides)))


def load_config(path: str | Path | None = "params.yaml", overrides: list[str] = ()) -> Config:
    """Load ``path`` (or the defaults when None) with ``-S`` style overrides on top.

    Args:
        path: YAML file with any subset of the sections; missing keys keep their defaults.
        overrides: ``"section.key=value"`` strings; values are parsed as YAML scalars/lists.

    Raises:
        ConfigError: one line naming the file or key that is wrong.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_yaml(Path(path))
    return from_dict(_merge(raw, _nest(parse_overrides(overrides))))


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["train.epochs=5"]`` -> ``{"train.epochs": 5}``."""
    import yaml  # a parser, imported where used so nothing happens at package import

    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        try:
            parsed[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({err})") from None
    return parsed


def from_dict(raw: dict[str, Any]) -> Config:
    """Build a validated :class:`Config` from nested plain data."""
    if not isinstance(raw, dict):
        raise ConfigError(f"params must be a mapping of sections, got {type(raw).__name__}")
    sections = {f.name: f for f in dataclasses.fields(Config)}
    built = {}
    for name, values in raw.items():
        if name not in sections:
            raise ConfigError(f"unknown section {name!r} (known: {', '.join(sections)})")
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ConfigError(f"section {name!r} must be a mapping, got {type(values).__name__}")
        built[name] = _build_section(name, sections[name].default_factory, values)
    cfg = Config(**built)
    _check_consistency(cfg)
    return cfg


def _build_section(name: str, cls: type, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown key {name}.{key} (known: {', '.join(sorted(known))})")
        values[key] = _coerce(f"{name}.{key}", hints[key], value)
    return cls(**values)


def _coerce(key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value is False and "off" in allowed:
            value = "off"  # YAML 1.1 (PyYAML) reads a bare `off` as false
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", item_hint, v) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(key, option, value)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} does not fit {hint}")
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is type(None) and value is None:
        return None
    if (
        isinstance(hint, type)
        and isinstance(value, hint)
        and not (hint is int and isinstance(value, bool))
    ):
        return value
    raise ConfigError(f"{key}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def _check_consistency(cfg: Config) -> None:
    """Cross-field rules that a type cannot express."""
    t, h = cfg.train, cfg.hill
    checks = [
        (t.epochs >= 1, "train.epochs must be at least 1"),
        (t.batch_size >= 2, "train.batch_size must be at least 2"),
        (t.lr > 0, "train.lr must be positive"),
        (0.0 <= h.alpha <= 1.0, "hill.alpha must lie in [0, 1]"),
        (
            min(h.w_center, h.w_spread, h.w_point) >= 0,
            "hill.w_center, hill.w_spread and hill.w_point must be non-negative",
        ),
        (h.guard_tolerance >= 0, "hill.guard_tolerance must be non-negative"),
        (1 <= h.freeze_epoch <= t.epochs, "hill.freeze_epoch must lie in [1, train.epochs]"),
        (h.snapshot_size >= 2, "hill.snapshot_size must be at least 2"),
        (h.gate_epochs == sorted(set(h.gate_epochs)), "hill.gate_epochs must increase strictly"),
        (
            all(h.freeze_epoch <= g < t.epochs for g in h.gate_epochs),
            "hill.gate_epochs must lie in [hill.freeze_epoch, train.epochs)",
        ),
        (0 < cfg.data.val_fraction < 1, "data.val_fraction must lie in (0, 1)"),
        (0 < cfg.data.test_fraction < 1, "data.test_fraction must lie in (0, 1)"),
        (0 <= cfg.gate.port < 65536, "gate.port must lie in [0, 65535]"),
        (cfg.gate.timeout_s >= 1, "gate.timeout_s must be at least 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: no such params file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})"
        ) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return raw


def _nest(dotted: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in dotted.items():
        section, _, name = key.partition(".")
        nested.setdefault(section, {})[name] = value
    return nested


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in top.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:
            merged[section] = values
    return merged

"""One typed config for the whole project, loaded from ``params.yaml``.

Defaults live here, one comment each. A YAML file overrides them section by section, and
``-S section.key=value`` overrides (as ``dvc exp run -S`` takes them) go on top. Unknown keys
and wrong types are a :class:`ConfigError` whose one-line message names the key. Both read
plain scalars as YAML 1.2 (core schema), not PyYAML's YAML 1.1: see :class:`Yaml12Loader`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from hill_core.errors import HillError


class ConfigError(HillError):
    """A params file or override that does not fit the config; the message names the key."""


# YAML 1.2 core schema, https://yaml.org/spec/1.2.2/#1032-tag-resolution. [0-9] is ASCII only
# (unlike \d or Python's int()), so "٣" or fullwidth "１２" never become numbers.
_NULL = re.compile(r"(?:~|null|Null|NULL|)\Z")
_BOOL = re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z")
_INT = re.compile(r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z")
_FLOAT = re.compile(
    r"(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z"
)
_TAG = "tag:yaml.org,2002:"


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with YAML 1.2 core-schema plain scalars instead of YAML 1.1's.

    Why: PyYAML implements YAML 1.1, where ``1e-3`` is a string (its floats need a dot),
    ``1_000`` is 1000, ``1:30`` is 90 (base 60), ``017`` is octal 15, ``2024-01-01`` a date and
    ``on/off/yes/no`` booleans. People write params the 1.2 (and JSON) way, so here:

    - int: ``[-+]?[0-9]+`` (decimal, ``017`` is 17), ``0o17``, ``0x1F``;
    - float: ``1e-3``, ``1E5``, ``-2.5e+3``, ``.5``, ``1.``, ``.inf``, ``-.inf``, ``.nan``;
    - bool: ``true``/``false`` (any of three cases); null: ``~``, ``null``, empty;
    - everything else is a string: ``1_000``, ``1:30``, ``yes``, ``off``, non-ASCII digits,
      which the type check then refuses for a number (``hill.guard: off`` is the string).

    Explicit tags (``!!int "1_000"``) go through the same rules, not Python's laxer int().
    """

    yaml_implicit_resolvers: typing.ClassVar[dict] = {}  # start empty: none of YAML 1.1's


def _construct(pattern: re.Pattern, convert):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        text = loader.construct_scalar(node)
        if not pattern.match(text):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{text!r} is not a YAML 1.2 {node.tag.rsplit(':', 1)[-1]}",
                node.start_mark,
            )
        return convert(text)

    return construct


def _to_int(text: str) -> int:
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


def _to_float(text: str) -> float:
    special = text.lower().lstrip("+")
    if special in (".inf", "-.inf", ".nan"):
        return float(special.replace(".", ""))
    return float(text)


for _tag, _pattern, _first, _convert in [
    ("null", _NULL, ["~", "n", "N", ""], lambda _: None),
    ("bool", _BOOL, list("tTfF"), lambda text: text.lower() == "true"),
    ("int", _INT, list("-+0123456789"), _to_int),
    ("float", _FLOAT, list("-+.0123456789"), _to_float),  # after int: "1" is an int
]:
    Yaml12Loader.add_implicit_resolver(_TAG + _tag, _pattern, _first)
    Yaml12Loader.add_constructor(_TAG + _tag, _construct(_pattern, _convert))


def yaml12_load(text: str) -> Any:
    """Parse YAML text with :class:`Yaml12Loader` (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    # Quote a string that a YAML 1.2 reader would take for a number, bool or null ("1e3").
    plain_is_not_str = any(p.match(text) for p in (_NULL, _BOOL, _INT, _FLOAT))
    return dumper.represent_scalar(_TAG + "str", text, style="'" if plain_is_not_str else None)


class Yaml12Dumper(yaml.SafeDumper):
    """Safe dumper whose output :class:`Yaml12Loader` reads back to the same values."""


Yaml12Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    """``yaml.safe_dump`` that round-trips through :func:`yaml12_load` (keys in given order)."""
    return yaml.dump(data, Dumper=Yaml12Dumper, sort_keys=False)


@dataclass(frozen=True)
class BaseConfig:
    seed: int = 0  # seeds weights, data split, shuffling and snapshots
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA (with autocast) when present
    run_dir: str = "runs"  # checkpoints and snapshots, one sub-folder per run


@dataclass(frozen=True)
class DataConfig:
    # a built-in loader (BUILTIN_DATA), "torchvision:<Dataset>" (TORCHVISION_DATA, read from the
    # files under root) or "package.module:factory", a callable returning the splits (docs/data.md)
    name: str = "digits"
    root: str = "data/raw"  # folder (cifar10, pamap2, imagefolder, torchvision:) or file (table)
    kwargs: dict[str, Any] = field(default_factory=dict)  # more arguments for a factory
    download: bool = False  # cifar10 only; needs internet
    val_fraction: float = 0.15  # of all items, stratified (cifar10: of its train set)
    test_fraction: float = 0.15  # of all items, stratified (ignored where the set has a test split)
    label_column: str = "label"  # table only
    image_size: int = 32  # imagefolder only: images are resized to a square of this many pixels
    augment: bool = True  # cifar10 and imagefolder: random crop and flip while training
    # Label noise for studies (hill_core/data/noise.py): this fraction of the training labels
    # is flipped, deterministically from (label_noise_seed, base.seed); 0 flips nothing.
    label_noise: float = 0.0
    label_noise_kind: Literal["symmetric", "pairs"] = "symmetric"  # pairs: within each pair
    # kind pairs: classes confused both ways, "a-b" comma-separated (digits' look-alikes)
    label_noise_pairs: str = "1-7,3-8,4-9,5-6,0-2"
    label_noise_seed: int = 0
    label_noise_splits: Literal["train", "train+val"] = "train"  # test labels stay true

    @property
    def short_name(self) -> str:
        """The data set's name as run names, tags and experiments use it: ``digits``,
        ``fashionmnist`` for ``torchvision:FashionMNIST``, ``my-cells`` for ``lab.io:my_cells``."""
        if ":" not in self.name:
            return self.name
        last = self.name.rpartition(":")[2].rpartition(".")[2]
        return re.sub(r"[^a-z0-9]+", "-", last.lower()).strip("-") or "data"


@dataclass(frozen=True)
class ModelConfig:
    # a preset (MODEL_PRESETS; auto: the data set's), "torchvision:<architecture>" (built with
    # weights=None) or "package.module:factory", a callable returning an nn.Module (docs/models.md)
    name: str = "auto"
    latent_dim: int = 64  # d of z for the presets whose latent size is free
    dropout: float = 0.1  # in the presets' classifier head
    # torchvision: and import-path models: the submodule whose output, flattened to (B, d), is z
    # (e.g. avgpool, layer4, encoder.proj); read with a forward hook, the model stays as it is
    latent: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)  # more arguments for the factory
    weights: str = ""  # a local state dict to start from, loaded with weights_only=True


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    batch_size: int = 64
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    scheduler: Literal["none", "cosine"] = "none"  # cosine anneals over train.epochs
    # torch.compile the model's latent path: faster steps after a one-off compilation (seconds
    # to a minute, per process); worth it for long runs, mostly on CUDA.
    compile: bool = False


# Keys added after runs were recorded: at these defaults they are left out of Config.hash(), so
# the hashes stamped on earlier runs' edits and checkpoints (replay checks them) stay valid.
HASH_NEUTRAL_DEFAULTS = {
    ("train", "compile"): False,
    ("data", "label_noise"): 0.0,
    ("data", "label_noise_kind"): "symmetric",
    ("data", "label_noise_pairs"): "1-7,3-8,4-9,5-6,0-2",
    ("data", "label_noise_seed"): 0,
    ("data", "label_noise_splits"): "train",
    ("data", "kwargs"): {},
    ("model", "latent"): "",
    ("model", "kwargs"): {},
    ("model", "weights"): "",
    ("gate", "trusted_proxies"): [],
    ("hill", "suspects"): 100,
    ("hill", "budget"): 30,
}


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
    suspects: int = 100  # plus the items whose labels look most wrong (hill_core/suspects.py)
    budget: int = 30  # items a simulated label-correcting user (oracle...) inspects per gate
    on_skip: Literal["keep", "clear"] = "keep"  # a skipped gate keeps or clears the teacher
    # After the segment that follows a gate, compare with the lockstep baseline: revert drops a
    # teacher that cost more than guard_tolerance, adapt scales alpha by the measured benefit.
    guard: Literal["off", "revert", "adapt"] = "revert"
    # percentage points of validation accuracy; 0: a latent edit that cost anything is reverted
    # (at 1 pp, kept adversarial edits on table20 cost up to -2.1 pp of test accuracy)
    guard_tolerance: float = 0.0


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
    # Host headers the page and the service answer (others get 400: DNS rebinding); the hosts
    # of service_url and of the bind address are added.
    allowed_hosts: list[str] = field(default_factory=lambda: ["127.0.0.1", "localhost", "::1"])
    ssl_certfile: str = ""  # TLS certificate (PEM) for the page and the service, with ssl_keyfile
    ssl_keyfile: str = ""  # its private key; both or neither (or TLS at a reverse proxy)
    # Addresses (or networks, "10.0.0.0/8") of reverse proxies whose X-Forwarded-For names the
    # client; from anyone else it is ignored, so a forged one cannot dodge the login throttle.
    trusted_proxies: list[str] = field(default_factory=list)

    # A password variable must be one of hill's own: any variable holding a colon (PATH)
    # would otherwise become "user:password".
    _ENV_CHARS: typing.ClassVar[frozenset[str]] = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

    def __post_init__(self) -> None:
        name = self.auth_env
        if not (name.startswith("HILL_") and len(name) > 5 and set(name) <= self._ENV_CHARS):
            raise ConfigError(f"gate.auth_env: {name!r} must match HILL_[A-Z0-9_]+")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError("gate.ssl_certfile and gate.ssl_keyfile go together: both or neither")
        if not all(h.split() == [h] and "/" not in h for h in self.allowed_hosts):
            raise ConfigError("gate.allowed_hosts: each entry must be a host name, no spaces")


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
        resolved = self.to_dict()
        for (section, key), default in HASH_NEUTRAL_DEFAULTS.items():
            if resolved[section][key] == default:
                del resolved[section][key]
        text = json.dumps(resolved, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def replace(self, **overrides: Any) -> Config:
        """Copy with dotted overrides, validated like a file: ``replace(**{"hill.alpha": 0})``."""
        return from_dict(_merge(self.to_dict(), _nest(overrides)))


def baseline_config(cfg: Config) -> Config:
    """The paired baseline: same seed, data and schedule, alpha = 0 and no gates.

    Not parsed again: it sets two values of a validated config and only drops constraints
    (no gates), so nothing needs validating.
    """
    return dataclasses.replace(cfg, hill=dataclasses.replace(cfg.hill, alpha=0.0, gate_epochs=[]))


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


def load_sections(
    path: str | Path | None, overrides: list[str], sections: tuple[str, ...]
) -> Config:
    """:func:`load_config` reading only ``sections`` of the file and the overrides (the others
    keep their defaults): for a command that uses no training setting, such as the gate
    service, so that a training mistake elsewhere in the file does not stop it."""
    raw = _read_yaml(Path(path)) if path is not None else {}
    over = _nest(parse_overrides(overrides))
    return from_dict(_merge(_only(raw, sections), _only(over, sections)))


def _only(raw: dict[str, Any], sections: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k in sections}


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["train.epochs=5"]`` -> ``{"train.epochs": 5}``; values are YAML 1.2 scalars/lists."""
    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        try:
            parsed[key.strip()] = yaml12_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(
                f"override {item!r}: value is not valid YAML ({_problem(err)})"
            ) from None
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
            value = "off"  # `guard: false` means off too (and YAML 1.1 readers say false)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{key}: expected a mapping of names to values, got {value!r}")
        return dict(value)
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
        if not math.isfinite(value):  # .inf/.nan: torch takes lr=inf, then the loss is NaN
            raise ConfigError(f"{key}: {value!r} is not a finite number")
        return float(value)
    if hint is type(None) and value is None:
        return None
    if (
        isinstance(hint, type)
        and isinstance(value, hint)
        and not (hint is int and isinstance(value, bool))
    ):
        return value
    raise ConfigError(
        f"{key}: expected {getattr(hint, '__name__', hint)}, got {value!r}{_hint(hint, value)}"
    )


def _hint(hint: Any, value: Any) -> str:
    """Why a string was not read as the number or bool it may look like (YAML 1.2 rules)."""
    if not isinstance(value, str):
        return ""
    if hint in (int, float):
        return " (numbers are YAML 1.2: ASCII digits, no underscores, e.g. 1000 or 1e-3)"
    if hint is bool:
        return " (booleans are YAML 1.2: true or false)"
    return ""


def _check_consistency(cfg: Config) -> None:
    """Cross-field rules that a type cannot express, and values torch or sklearn would reject
    only after training started; each failure is one line naming the key."""
    for ok, message in [*_train_checks(cfg), *_model_data_checks(cfg), *_hill_gate_checks(cfg)]:
        if not ok:
            raise ConfigError(message)


def _train_checks(cfg: Config) -> list[tuple[bool, str]]:
    b, t = cfg.base, cfg.train
    return [
        # numpy's and sklearn's seeds are 32-bit unsigned
        (0 <= b.seed < 2**32, "base.seed must lie in [0, 2**32)"),
        (t.epochs >= 1, "train.epochs must be at least 1"),
        (t.batch_size >= 2, "train.batch_size must be at least 2"),
        (t.lr > 0, "train.lr must be positive"),
        (t.weight_decay >= 0, "train.weight_decay must be non-negative"),
        (0 <= t.momentum < 1, "train.momentum must lie in [0, 1)"),  # torch SGD: >= 0
    ]


BUILTIN_DATA = ("digits", "cifar10", "pamap2", "imagefolder", "table")
# torchvision data sets read from their files under data.root (hill_core/data/torchvision_sets.py)
TORCHVISION_DATA = ("MNIST", "FashionMNIST", "KMNIST", "EMNIST", "CIFAR10", "CIFAR100")
MODEL_PRESETS = ("auto", "digits_cnn", "cifar_small_cnn", "cifar_proto_cnn", "pamap2_cnn", "mlp")
IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\Z")
TORCHVISION_NAME = re.compile(r"torchvision:[A-Za-z_]\w*\Z")


def _name_checks(cfg: Config) -> list[tuple[bool, str]]:
    """data.name and model.name: a built-in, torchvision:<name> or package.module:factory."""
    m, d = cfg.model, cfg.data
    forms = '"package.module:factory"'
    return [
        (
            d.name in BUILTIN_DATA
            or IMPORT_PATH.match(d.name) is not None
            or d.name in {f"torchvision:{n}" for n in TORCHVISION_DATA},
            f"data.name: {d.name!r} is not a built-in ({', '.join(BUILTIN_DATA)}), "
            f"torchvision:<{'|'.join(TORCHVISION_DATA)}> or {forms}",
        ),
        (
            m.name in MODEL_PRESETS
            or IMPORT_PATH.match(m.name) is not None
            or TORCHVISION_NAME.match(m.name) is not None,
            f"model.name: {m.name!r} is not a preset ({', '.join(MODEL_PRESETS)}), "
            f"torchvision:<architecture> or {forms}",
        ),
        (
            m.name not in MODEL_PRESETS or not (m.latent or m.kwargs or m.weights),
            f"model.latent, model.kwargs and model.weights apply to torchvision: and import-path "
            f"models, not to the preset {m.name!r}",
        ),
        (
            m.name in MODEL_PRESETS or bool(m.latent),
            f"model.latent: name the layer of {m.name} whose output is the latent z "
            "(e.g. avgpool for torchvision:resnet18)",
        ),
    ]


def _model_data_checks(cfg: Config) -> list[tuple[bool, str]]:
    m, d = cfg.model, cfg.data
    return [
        *_name_checks(cfg),
        (m.latent_dim >= 2, "model.latent_dim must be at least 2 (the view P is 2-D)"),
        (0 <= m.dropout < 1, "model.dropout must lie in [0, 1)"),
        (0 < d.val_fraction < 1, "data.val_fraction must lie in (0, 1)"),
        (0 < d.test_fraction < 1, "data.test_fraction must lie in (0, 1)"),
        (
            d.val_fraction + d.test_fraction < 1,
            "data.val_fraction + data.test_fraction must be below 1 (training needs items)",
        ),
        # cifar_small_cnn (imagefolder's preset) halves the image three times: 8 px -> 1 px
        (d.image_size >= 8, "data.image_size must be at least 8 (pixels)"),
        (0 <= d.label_noise < 1, "data.label_noise must lie in [0, 1) (a fraction of labels)"),
        (d.label_noise_seed >= 0, "data.label_noise_seed must be non-negative"),
    ]


def _hill_gate_checks(cfg: Config) -> list[tuple[bool, str]]:
    t, h, g = cfg.train, cfg.hill, cfg.gate
    return [
        (0.0 <= h.alpha <= 1.0, "hill.alpha must lie in [0, 1]"),
        (
            min(h.w_center, h.w_spread, h.w_point) >= 0,
            "hill.w_center, hill.w_spread and hill.w_point must be non-negative",
        ),
        (h.guard_tolerance >= 0, "hill.guard_tolerance must be non-negative"),
        (1 <= h.freeze_epoch <= t.epochs, "hill.freeze_epoch must lie in [1, train.epochs]"),
        # P's PCA/LDA needs two items for two axes (sampling keeps one per class on top)
        (h.projection_sample >= 2, "hill.projection_sample must be at least 2"),
        (h.snapshot_size >= 2, "hill.snapshot_size must be at least 2"),
        (h.suspects >= 0, "hill.suspects must be non-negative"),
        (h.budget >= 0, "hill.budget must be non-negative"),
        (h.gate_epochs == sorted(set(h.gate_epochs)), "hill.gate_epochs must increase strictly"),
        (
            all(h.freeze_epoch <= e < t.epochs for e in h.gate_epochs),
            f"hill.gate_epochs={h.gate_epochs} must lie in [hill.freeze_epoch, train.epochs)"
            f" = [{h.freeze_epoch}, {t.epochs})",
        ),
        (0 <= g.port < 65536, "gate.port must lie in [0, 65535]"),
        (g.timeout_s >= 1, "gate.timeout_s must be at least 1"),
        (g.poll_interval_s >= 1, "gate.poll_interval_s must be at least 1 (seconds)"),
    ]


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such params file")
    try:
        raw = yaml12_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({_problem(err)})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return raw


def _problem(err: yaml.YAMLError) -> str:
    """The one-line reason of a YAML error (its str spans lines, with a caret)."""
    return " ".join(str(getattr(err, "problem", None) or err).split())


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

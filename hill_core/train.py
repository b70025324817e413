"""Training with an explicit, resumable state.

``train_segment(state, first, last, teacher)`` trains epochs ``first..last`` (1-based,
inclusive). The data order of an epoch depends only on (seed, epoch), and a checkpoint
(``hill_core.checkpoint``) carries every RNG state, so "train 10" equals "train 5, save, load,
train 5" bit for bit on the CPU.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.weak import WeakIdKeyDictionary

from hill_core.config import Config
from hill_core.corrections import Corrections
from hill_core.data import DataBundle, IndexedDataset
from hill_core.errors import HillError
from hill_core.evaluate import evaluate, latents_of
from hill_core.losses import LossWeights, hill_loss
from hill_core.models import build_model, memory_format, model_input
from hill_core.projection import Projection, fit_projection
from hill_core.rng import rng_states, set_rng_states
from hill_core.sampling import stratified_sample
from hill_core.teacher import Teacher

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # x (B, ...), y (B,), ids (B,)


@dataclass
class TrainState:
    """Everything training needs; ``data`` is not saved (it is reloaded from the config)."""

    config: Config
    data: DataBundle
    model: torch.nn.Module  # a preset HillModel or a user's network (hill_core.tapped)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    projection: Projection | None = None
    epoch: int = 0  # last completed epoch
    extra: dict = field(default_factory=dict)  # caller's bookkeeping, saved with the state
    # The RNG states this run continues from. Each run carries its own, so a guided run and
    # its lockstep baseline can take turns in one process and each trains as if alone.
    rng: dict = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA when present, else the CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise HillError("base.device=cuda but torch sees no CUDA device (use auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay
        )
    cls = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def build_scheduler(cfg: Config, optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch; ``none`` keeps the lr constant."""
    if cfg.train.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def init_state(cfg: Config, data: DataBundle) -> TrainState:
    """A fresh state: seeds every RNG from ``base.seed``, then builds model and optimiser."""
    seed_everything(cfg.base.seed)
    device = resolve_device(cfg.base.device)
    model = build_model(cfg.model, data.name, data.input_shape, data.num_classes)
    model = model.to(device, memory_format=memory_format(data.input_shape))
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    return TrainState(cfg, data, model, optimizer, scheduler, device, rng=rng_states())


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's order and augmentation: seeded from (seed, epoch) only."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def epoch_batches(train: IndexedDataset, batch_size: int, seed: int, epoch: int) -> Iterator[Batch]:
    """Training batches (x, y, ids) of one epoch, each gathered and augmented as a whole.

    The order is :func:`epoch_loader`'s (the same permutation of the same generator); without
    augmentation the batches are equal to its, which a test checks. The batches are on the
    device ``train`` gathers on (see ``IndexedDataset.to``).
    """
    generator = epoch_generator(seed, epoch)
    # A DataLoader draws its workers' base seed from the generator before shuffling: draw it
    # too, so that the order stays the reference's (and that of runs recorded before).
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    order = torch.randperm(len(train), generator=generator)
    for rows in order.split(batch_size):
        yield train.batch(rows, generator)


def epoch_loader(train: IndexedDataset, batch_size: int, seed: int, epoch: int) -> DataLoader:
    """:func:`epoch_batches` the readable way: a shuffling ``DataLoader`` over the items."""
    generator = epoch_generator(seed, epoch)
    return DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator)


EpochHook = Callable[[dict[str, float]], None]


def train_segment(
    state: TrainState,
    first_epoch: int,
    last_epoch: int,
    teacher: Teacher | None,
    on_epoch: EpochHook | None = None,
    alpha_scale: float = 1.0,
    corrections: Corrections | None = None,
) -> tuple[TrainState, list[dict[str, float]]]:
    """Train epochs ``first_epoch..last_epoch`` and return per-epoch metrics.

    The one training loop: the flow's tasks and the in-process loop both call it. Fits the
    projection after ``hill.freeze_epoch``. With ``teacher`` None the loss is plain CE.

    Args:
        on_epoch: called with each epoch's metrics as the epoch ends (tracking, progress).
        alpha_scale: the guard's ``adapt`` factor on ``hill.alpha``, in [0, 1].
        corrections: the label corrections in force (None: the data set's own labels).
    Returns:
        the same state object (advanced) and one dict per epoch: epoch, lr, train_acc, ce,
        l_center, l_spread, l_point, l_human, loss, teacher_active, alpha, train_items,
        items_relabelled, items_excluded, val_acc, val_f1.
    """
    if first_epoch != state.epoch + 1 or last_epoch < first_epoch:
        raise ValueError(
            f"state is at epoch {state.epoch}; cannot train {first_epoch}..{last_epoch}"
        )
    if teacher is not None and state.projection is None:
        raise ValueError(
            "a teacher needs the frozen projection; train past hill.freeze_epoch first"
        )
    history = []
    set_rng_states(state.rng or rng_states())
    weights = LossWeights.from_config(state.config.hill, alpha_scale)
    corrections = corrections or Corrections.none()
    train = corrections.apply(state.data.train)
    for epoch in range(first_epoch, last_epoch + 1):
        metrics = _train_epoch(state, train, epoch, teacher, weights)
        metrics.update(train_items=float(len(train)), **corrections.counts())
        state.scheduler.step()
        state.epoch = epoch
        if state.projection is None and epoch >= state.config.hill.freeze_epoch:
            state.projection = fit_state_projection(state)
        val = evaluate(state.model, state.data.val, state.device, state.data.num_classes)
        metrics.update(val_acc=val.accuracy, val_f1=val.macro_f1)
        history.append(metrics)
        state.rng = rng_states()
        if on_epoch is not None:
            on_epoch(metrics)
    return state, history


def _train_epoch(
    state: TrainState,
    train: IndexedDataset,
    epoch: int,
    teacher: Teacher | None,
    weights: LossWeights,
) -> dict[str, float]:
    cfg, model, device = state.config, state.model, state.device
    teacher = teacher.to(device) if teacher is not None else None
    lr = state.optimizer.param_groups[0]["lr"]
    train = train if device.type == "cpu" else train.to(device)
    latent_and_logits = _forward_fn(state)
    # Running sums stay tensors on the device: one host sync per epoch, not one per batch.
    names, totals = None, None  # term names; (T,) sums over the items of each term
    seen, correct = 0, torch.zeros((), device=device)
    model.train()
    for x, y, ids in epoch_batches(train, cfg.train.batch_size, cfg.base.seed, epoch):
        x, y, ids = model_input(x, device), y.to(device), ids.to(device)
        with _autocast(device):
            z, logits = latent_and_logits(x)  # (B, d), (B, C)
            p = state.projection(z) if teacher is not None else None  # (B, 2)
        loss, terms = hill_loss(logits.float(), y, p, ids, teacher, weights)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        n = len(y)
        names = names or list(terms)
        step = torch.stack([terms[k] for k in names]) * n  # (T,)
        totals = step if totals is None else totals + step
        seen += n
        correct += (logits.argmax(1) == y).sum()
    means = [] if totals is None else (totals.double() / seen).tolist()
    metrics = dict(zip(names or [], means, strict=True))
    metrics.update(epoch=float(epoch), lr=lr, train_acc=float(correct) / max(seen, 1))
    metrics["teacher_active"] = float(teacher is not None)
    metrics["alpha"] = weights.alpha if teacher is not None else 0.0
    return metrics


def _forward_fn(state: TrainState) -> Callable[[torch.Tensor], tuple[torch.Tensor, ...]]:
    """``model.latent_and_logits``, compiled with ``torch.compile`` once per process when
    ``train.compile`` is on (the first epoch then pays the compilation)."""
    if not state.config.train.compile:
        return state.model.latent_and_logits
    compiled = _compiled.get(state.model)
    if compiled is None:
        compiled = _compiled[state.model] = torch.compile(state.model.latent_and_logits)
    return compiled


_compiled = WeakIdKeyDictionary()  # model -> its compiled forward


def _autocast(device: torch.device):
    """Mixed precision on CUDA (bf16); full precision on the CPU so runs are bit-reproducible."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fit_state_projection(state: TrainState) -> Projection:
    """Fit P on a stratified sample of training items (no augmentation), seeded by base.seed."""
    cfg = state.config
    rows = stratified_sample(
        state.data.train_eval.labels, cfg.hill.projection_sample, cfg.base.seed
    )
    train_eval = state.data.train_eval
    sample = train_eval.subset(rows, train_eval.transform)  # CIFAR: uint8 -> normalised floats
    z, _ = latents_of(state.model, sample, state.device)
    return fit_projection(z.numpy(), sample.labels, cfg.hill.projection).to(state.device)

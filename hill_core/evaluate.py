"""Evaluation and latent extraction: no side effects, no gradients, model left in eval mode."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from hill_core.models import model_input

EVAL_BATCH = 512  # items per forward pass; memory only, results do not depend on it


@dataclass(frozen=True)
class EvalResult:
    """accuracy and macro_f1 in [0, 1]; confusion (C, C) counts, rows = true class."""

    accuracy: float
    macro_f1: float
    confusion: np.ndarray

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """(C,) recall of each class (0 where a class has no items)."""
        totals = self.confusion.sum(axis=1)
        return np.divide(
            np.diag(self.confusion), totals, out=np.zeros(len(totals)), where=totals > 0
        )


def confusion_from(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    flat = y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores_from_confusion(confusion: np.ndarray) -> EvalResult:
    tp = np.diag(confusion).astype(np.float64)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    denom = predicted + actual
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = actual > 0
    accuracy = float(tp.sum() / max(confusion.sum(), 1))
    return EvalResult(accuracy, float(f1[present].mean()) if present.any() else 0.0, confusion)


@torch.no_grad()
def latents_of(model, dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, d) latents and (N, C) logits of an ``IndexedDataset``, on the CPU, in its order."""
    model.eval()
    zs, logits = [], []
    for rows in torch.arange(len(dataset)).split(EVAL_BATCH):
        x, _, _ = dataset.batch(rows)  # no augment on evaluation splits: no RNG is drawn
        z, out = model.latent_and_logits(model_input(x, device))
        zs.append(z.float().cpu())
        logits.append(out.float().cpu())
    return torch.cat(zs), torch.cat(logits)


@torch.no_grad()
def latents_of_reference(model, dataset: Dataset, device) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`latents_of` the readable way, through a ``DataLoader`` over the items."""
    model.eval()
    zs, logits = [], []
    # An explicit generator: a DataLoader without one draws its seed from the global torch RNG,
    # which would shift later dropout masks and break bit-equality with plain training.
    loader = DataLoader(dataset, batch_size=EVAL_BATCH, shuffle=False, generator=torch.Generator())
    for x, _, _ in loader:
        z, out = model.latent_and_logits(model_input(x, device))
        zs.append(z.float().cpu())
        logits.append(out.float().cpu())
    return torch.cat(zs), torch.cat(logits)


def evaluate(model, dataset: Dataset, device: torch.device, num_classes: int) -> EvalResult:
    """Accuracy, macro-F1 and confusion matrix of ``model`` on ``dataset``."""
    _, logits = latents_of(model, dataset, device)
    y_true = np.asarray(dataset.labels)
    y_pred = logits.argmax(1).numpy()
    return scores_from_confusion(confusion_from(y_true, y_pred, num_classes))

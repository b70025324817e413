"""A user's own package, written into a test's project folder: networks and data factories
that are right, and each of the mistakes hill must catch in one line.

``write_user_package(root)`` writes ``userpkg/`` under ``root`` and forgets any earlier import
of it, so each test imports the copy in its own folder (hill resolves import paths from the
working directory).
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

MODELS = '''
import torch
from torch import nn


class Net(nn.Module):
    """BatchNorm, dropout, and the latent inside: body.proj."""

    def __init__(self, channels, num_classes):
        super().__init__()
        self.body = nn.Sequential()
        self.body.add_module("conv", nn.Conv2d(channels, 8, 3, padding=1))
        self.body.add_module("norm", nn.BatchNorm2d(8))
        self.body.add_module("relu", nn.ReLU())
        self.body.add_module("flat", nn.Flatten())
        self.body.add_module("proj", nn.Linear(8 * 64, 12))
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(12, num_classes)
        self.pair = Pair()

    def forward(self, x):
        return self.out(self.drop(torch.relu(self.body(x))))


class Pair(nn.Module):
    """A module whose output is a tuple, never called by Net.forward."""

    def forward(self, x):
        return x, x


class PairNet(nn.Module):
    """The latent layer returns a tuple, not a tensor (B, ...)."""

    def __init__(self, num_classes):
        super().__init__()
        self.pair = Pair()
        self.out = nn.Linear(64, num_classes)

    def forward(self, x):
        a, _ = self.pair(x.flatten(1))
        return self.out(a)


def build(num_classes, input_shape):
    return Net(input_shape[0], num_classes)


def pair_net(num_classes):
    return PairNet(num_classes)


def not_a_module(num_classes):
    return "a string"


def broken(num_classes):
    raise RuntimeError("no GPU here")
'''

DATA = """
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch.utils.data import Dataset


class Items(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def digits(root, seed, shift=0):
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = d.target + shift
    rows = np.random.default_rng(seed).permutation(len(y))
    cut = [rows[:1200], rows[1200:1500], rows[1500:]]
    return tuple(Items(x[r], y[r]) for r in cut) + ([str(c) for c in range(10)],)


def bad_labels(root, seed):
    return digits(root, seed, shift=3)  # labels 3..12 for 10 class names


def not_datasets(root, seed):
    return [1, 2, 3]
"""


def write_user_package(root: Path) -> Path:
    """``root/userpkg`` with ``models.py`` and ``data.py``; returns the package folder."""
    package = root / "userpkg"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(textwrap.dedent(MODELS))
    (package / "data.py").write_text(textwrap.dedent(DATA))
    forget("userpkg")
    return package


def copy_examples(root: Path) -> Path:
    """The repository's ``examples/`` folder copied into ``root`` (as a user's package)."""
    shutil.copytree(REPO_ROOT / "examples", root / "examples",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    forget("examples")
    return root / "examples"


def forget(package: str) -> None:
    """Drop ``package`` and its modules from ``sys.modules`` (and stale path caches)."""
    import importlib

    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()

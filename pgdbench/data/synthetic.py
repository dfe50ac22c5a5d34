"""MNIST-shaped synthetic data of any size, for timing at scale.

Inputs are uniform in [0, 1]; labels come from a fixed random linear teacher,
so the task is learnable and accuracy still means something.
"""
from __future__ import annotations

import numpy as np

from pgdbench.data.dataset import Dataset
from pgdbench.errors import UsageError


def make_synthetic(n_train: int = 50_000, n_features: int = 784, n_classes: int = 10, seed: int = 0) -> Dataset:
    if n_train <= 0:
        raise UsageError(f"synthetic data needs a positive size, got {n_train}")
    rng = np.random.default_rng([seed, 0x5A7])
    n_eval = max(n_train // 5, 1)
    teacher = rng.standard_normal((n_features, n_classes)).astype(np.float32)

    def split(n):
        X = rng.random((n, n_features), dtype=np.float32)
        return X, np.argmax((X - 0.5) @ teacher, axis=1)

    (Xt, yt), (Xv, yv), (Xs, ys) = split(n_train), split(n_eval), split(n_eval)
    return Dataset(f"synthetic:{n_train}", Xt, yt, Xv, yv, Xs, ys, n_classes=n_classes,
                   class_names=[str(k) for k in range(n_classes)], source="generated")

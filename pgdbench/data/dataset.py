"""A data set: train / validation / test splits of float32 inputs and integer labels, checked on creation."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pgdbench.errors import DataError

#: The most classes a data set may have: one output unit per class, and the one-hot targets (examples × classes)
#: stay no larger than MNIST-sized inputs (labels of 10^9 would otherwise ask for terabytes).
MAX_CLASSES = 1024


def one_hot(y: np.ndarray, n_classes: int, dtype=np.float32) -> np.ndarray:
    """Rows of the identity for labels ``y``, made directly (indexing np.eye would first build classes × classes)."""
    out = np.zeros((len(y), n_classes), dtype)
    out[np.arange(len(y)), y] = 1
    return out


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
    notes: list = field(default_factory=list)   # what loading dropped or changed, shown in summary()

    def __post_init__(self):
        if not 1 <= self.n_classes <= MAX_CLASSES:
            raise DataError(f"{self.name}: {self.n_classes} classes; pgdbench trains classifiers of 1 to "
                            f"{MAX_CLASSES:,} classes (labels 0..K-1)")
        for split in ("train", "val", "test"):
            X = np.asarray(getattr(self, f"X_{split}"))
            if X.dtype.kind not in "biuf":
                raise DataError(f"{self.name}: {split} inputs must be real numbers, got {X.dtype}")
            X = np.ascontiguousarray(X, dtype=np.float32)
            y = np.asarray(getattr(self, f"y_{split}"))
            if y.ndim == 2 and y.shape[1] == 1:  # a column of labels
                y = y.reshape(-1)
            if y.ndim != 1:
                raise DataError(f"{self.name}: {split} labels must be one per example, shape (n,), got {y.shape}")
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
        return one_hot(y, self.n_classes, dtype)

    def summary(self) -> str:
        return (f"{self.name}: {len(self.X_train)} train / {len(self.X_val)} validation / "
                f"{len(self.X_test)} test, {self.n_features} features, {self.n_classes} classes"
                + "".join(f"; {note}" for note in self.notes))

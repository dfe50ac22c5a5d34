"""A data set of your own in one .npz file: X_train, y_train, X_test, y_test (X_val, y_val optional)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from pgdbench.data.dataset import Dataset
from pgdbench.errors import DataError


def load_npz(path) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    missing = {"X_train", "y_train", "X_test", "y_test"} - set(arrays)
    if missing:
        raise DataError(f"{path}: missing arrays {', '.join(sorted(missing))}")
    if "X_val" not in arrays:  # hold out the last sixth, as Kamra et al., *Parallel Gradient Descent* does for MNIST
        n = len(arrays["X_train"]) - len(arrays["X_train"]) // 6
        arrays["X_val"], arrays["y_val"] = arrays["X_train"][n:], arrays["y_train"][n:]
        arrays["X_train"], arrays["y_train"] = arrays["X_train"][:n], arrays["y_train"][:n]
    labels = np.concatenate([arrays["y_train"], arrays["y_val"], arrays["y_test"]])
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: labels must be integers, got {labels.dtype}")
    return Dataset(f"npz:{path.name}", arrays["X_train"], arrays["y_train"], arrays["X_val"], arrays["y_val"],
                   arrays["X_test"], arrays["y_test"], n_classes=int(labels.max()) + 1, source=str(path))

"""MNIST from the four standard IDX files, split 50,000 / 10,000 / 10,000 as in Kamra et al., *Parallel Gradient
Descent*."""
from __future__ import annotations

import numpy as np

from pgdbench.data.dataset import Dataset
from pgdbench.data.idx import read_idx
from pgdbench.data.sources import locate
from pgdbench.errors import DataError

FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", (60000, 28, 28)),
    "train_labels": ("train-labels-idx1-ubyte.gz", (60000,)),
    "test_images": ("t10k-images-idx3-ubyte.gz", (10000, 28, 28)),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", (10000,)),
}
N_TRAIN = 50_000  # the rest of the 60,000 training images is the validation split


def read_split(images_path, labels_path, n: int) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, (None, 28, 28))
    labels = read_idx(labels_path, (None,))
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if len(images) != n:
        raise DataError(f"{images_path}: {len(images)} images, expected {n}")
    if labels.max(initial=0) > 9:
        raise DataError(f"{labels_path}: labels must be digits 0-9, found {labels.max()}")
    return (images.reshape(n, 784).astype(np.float32) / 255.0), labels.astype(np.int64)


def load_mnist(data_dir=None, download: bool = True) -> Dataset:
    paths = {k: locate(name, "mnist", data_dir, download) for k, (name, _) in FILES.items()}
    X, y = read_split(paths["train_images"], paths["train_labels"], 60000)
    X_test, y_test = read_split(paths["test_images"], paths["test_labels"], 10000)
    return Dataset("mnist", X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:], X_test, y_test,
                   n_classes=10, class_names=[str(d) for d in range(10)],
                   source=str(paths["train_images"].parent))

"""MNIST from the four standard IDX files, split 50,000 / 10,000 / 10,000 as in Kamra et al., *Parallel Gradient
Descent*."""
from __future__ import annotations

import numpy as np

from pgdbench.data.dataset import Dataset
from pgdbench.data.idx import read_idx, read_idx_dims
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
    # the headers first: a file is read only once its counts are known to be the standard ones
    image_dims, label_dims = read_idx_dims(images_path), read_idx_dims(labels_path)
    if len(image_dims) != 3 or image_dims[1:] != (28, 28):
        raise DataError(f"{images_path}: dimensions {image_dims} in the header, expected (None, 28, 28)")
    if image_dims[0] != label_dims[0]:
        raise DataError(f"{images_path} has {image_dims[0]} images but {labels_path} has {label_dims[0]} labels")
    if image_dims[0] != n:
        raise DataError(f"{images_path}: {image_dims[0]} images, expected {n}")
    images = read_idx(images_path, (n, 28, 28))
    labels = read_idx(labels_path, (n,))
    if labels.max(initial=0) > 9:
        raise DataError(f"{labels_path}: labels must be digits 0-9, found {labels.max()}")
    X = images.reshape(n, 784).astype(np.float32)
    X /= 255.0  # in place: one float copy of the images, not two
    return X, labels.astype(np.int64)


def load_mnist(data_dir=None, download: bool = True) -> Dataset:
    paths = {k: locate(name, "mnist", data_dir, download) for k, (name, _) in FILES.items()}
    X, y = read_split(paths["train_images"], paths["train_labels"], 60000)
    X_test, y_test = read_split(paths["test_images"], paths["test_labels"], 10000)
    return Dataset("mnist", X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:], X_test, y_test,
                   n_classes=10, class_names=[str(d) for d in range(10)],
                   source=str(paths["train_images"].parent))

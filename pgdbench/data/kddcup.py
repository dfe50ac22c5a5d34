"""KDD Cup 1999 (Kamra et al.'s earlier draft, *Parallel Backpropagation*): network connection records labelled
normal or by attack type.

Training data is the 10 % file (494,021 records), split 5:1 into train and
validation like MNIST; the test set is the labelled ``corrected`` file. The
three symbolic columns are one-hot encoded with the categories seen in
training (unseen test values encode as all zeros); the 38 numeric columns are
standardised with the training mean and standard deviation.

Labels: ``categories`` (5 classes: normal, dos, probe, r2l, u2r; the default)
or ``types`` (the 23 labels of the training file; test records whose attack
type never occurs in training are dropped and counted in ``source``).
"""
from __future__ import annotations

import numpy as np

from pgdbench.data.dataset import Dataset
from pgdbench.data.sources import locate
from pgdbench.errors import DataError, UsageError

SYMBOLIC = (1, 2, 3)  # protocol_type, service, flag
N_FIELDS = 42
CATEGORY = {
    "normal": "normal",
    **dict.fromkeys(["back", "land", "neptune", "pod", "smurf", "teardrop", "apache2", "mailbomb",
                     "processtable", "udpstorm"], "dos"),
    **dict.fromkeys(["ipsweep", "nmap", "portsweep", "satan", "mscan", "saint"], "probe"),
    **dict.fromkeys(["ftp_write", "guess_passwd", "imap", "multihop", "phf", "spy", "warezclient",
                     "warezmaster", "named", "sendmail", "snmpgetattack", "snmpguess", "worm", "xlock",
                     "xsnoop", "httptunnel"], "r2l"),
    **dict.fromkeys(["buffer_overflow", "loadmodule", "perl", "rootkit", "ps", "sqlattack", "xterm"], "u2r"),
}
CATEGORIES = ["normal", "dos", "probe", "r2l", "u2r"]


def read_records(path):
    import pandas as pd

    try:
        frame = pd.read_csv(path, header=None, compression="gzip" if str(path).endswith(".gz") else None)
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as KDD Cup CSV ({type(exc).__name__}: {exc})") from None
    if frame.shape[1] != N_FIELDS:
        raise DataError(f"{path}: {frame.shape[1]} columns per record, expected {N_FIELDS}")
    frame[41] = frame[41].astype(str).str.rstrip(".")
    return frame


def encode(frame, categories: dict[int, list[str]], mean=None, std=None):
    numeric = frame.drop(columns=[*SYMBOLIC, 41]).to_numpy(np.float64)
    if not np.all(np.isfinite(numeric)):
        raise DataError("KDD Cup records contain non-numeric or missing values in numeric columns")
    if mean is None:
        mean, std = numeric.mean(axis=0), numeric.std(axis=0)
        std[std == 0] = 1.0
    parts = [(numeric - mean) / std]
    for col in SYMBOLIC:
        codes = {v: k for k, v in enumerate(categories[col])}
        idx = frame[col].map(codes).fillna(-1).to_numpy(np.int64)
        onehot = np.zeros((len(frame), len(codes)), np.float32)
        rows = np.nonzero(idx >= 0)[0]
        onehot[rows, idx[rows]] = 1.0
        parts.append(onehot)
    return np.hstack(parts).astype(np.float32), mean, std


def load_kddcup99(data_dir=None, labels: str = "categories", download: bool = True) -> Dataset:
    if labels not in ("categories", "types"):
        raise UsageError(f"kddcup99 labels must be 'categories' or 'types', got {labels!r}")
    train = read_records(locate("kddcup.data_10_percent.gz", "kddcup99", data_dir, download))
    test = read_records(locate("corrected.gz", "kddcup99", data_dir, download))
    unknown = sorted(set(train[41]) - set(CATEGORY))
    if unknown:
        raise DataError(f"training file has unknown labels {unknown[:5]}")
    categories = {col: sorted(train[col].unique()) for col in SYMBOLIC}
    if labels == "categories":
        class_names = CATEGORIES
        test = test[test[41].isin(list(CATEGORY))]
        to_class = {t: CATEGORIES.index(c) for t, c in CATEGORY.items()}
    else:
        class_names = sorted(train[41].unique())
        to_class = {t: k for k, t in enumerate(class_names)}
    n_test_all = len(test)
    test = test[test[41].isin(list(to_class))]
    dropped = n_test_all - len(test)
    X, mean, std = encode(train, categories)
    X_test, _, _ = encode(test, categories, mean, std)
    y, y_test = train[41].map(to_class).to_numpy(np.int64), test[41].map(to_class).to_numpy(np.int64)
    order = np.random.default_rng(1999).permutation(len(X))
    n_train = len(X) - len(X) // 6
    tr, va = order[:n_train], order[n_train:]
    note = f"; {dropped} test records with attack types unseen in training dropped" if dropped else ""
    return Dataset(f"kddcup99:{labels}", X[tr], y[tr], X[va], y[va], X_test, y_test,
                   n_classes=len(class_names), class_names=class_names, source=f"KDD Cup 1999 10 %{note}")

"""KDD Cup 1999 (Kamra et al.'s earlier draft, *Parallel Backpropagation*): network connection records labelled
normal or by attack type.

Training data is the 10 % file (494,021 records), split 5:1 into train and
validation like MNIST; the test set is the labelled ``corrected`` file. The
three symbolic columns are one-hot encoded with the categories seen in
training (unseen test values encode as all zeros); the 38 numeric columns are
standardised with the training mean and standard deviation.

Labels: ``categories`` (5 classes: normal, dos, probe, r2l, u2r; the default)
or ``types`` (the 23 labels of the training file; test records whose attack
type never occurs in training are dropped and counted).

A malformed training file is an error naming the line; in the test file,
records with other than 42 fields or labels that are no KDD attack type are
dropped and counted. Every drop is reported in the data set's summary.
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


NUMERIC = [c for c in range(N_FIELDS - 1) if c not in SYMBOLIC]


def read_records(path, *, drop_malformed: bool = False):
    """The records of one KDD Cup file, and how many were dropped for the wrong number of fields.

    A record with other than 42 fields is an error naming its line, or, with ``drop_malformed`` (the test
    file), dropped and counted. A numeric field that is not a number is always an error naming the line.
    """
    import re
    import warnings

    import pandas as pd

    with warnings.catch_warnings(record=True) as caught:  # pandas reports the lines it skips as warnings
        warnings.simplefilter("always")
        try:
            # names: every line is read as 42 fields (fewer are padded with NaN), the first as well as the others;
            # blank lines kept, so that a record's position is its line number
            frame = pd.read_csv(path, header=None, names=range(N_FIELDS), skip_blank_lines=False,
                                on_bad_lines="warn" if drop_malformed else "error", dtype={41: str},
                                compression="gzip" if str(path).endswith(".gz") else None, low_memory=False)
        except Exception as exc:
            raise DataError(f"{path}: cannot be read as KDD Cup CSV ({type(exc).__name__}: {exc})") from None
    skipped = sorted(int(n) for w in caught for n in re.findall(r"Skipping line (\d+)", str(w.message)))
    lines = np.setdiff1d(np.arange(1, len(frame) + len(skipped) + 1), skipped)  # the line of each record
    short = frame[41].isna().to_numpy()  # fewer than 42 fields (or no label)
    if short.any() and not drop_malformed:
        raise DataError(f"{path}: line {lines[np.argmax(short)]}: fewer than {N_FIELDS} fields")
    frame, lines = frame[~short], lines[~short]
    for col in NUMERIC:
        column = frame[col]
        values = column if pd.api.types.is_numeric_dtype(column) else pd.to_numeric(column, errors="coerce")
        bad = ~np.isfinite(values.to_numpy(np.float64, na_value=np.nan))  # text, a missing value, inf
        if bad.any():
            k = int(np.argmax(bad))
            raise DataError(f"{path}: line {lines[k]}: field {col + 1} should be a number, got {column.iloc[k]!r}")
        frame[col] = values
    frame[41] = frame[41].str.rstrip(".")
    return frame, len(skipped) + int(short.sum())


def encode(frame, categories: dict[int, list[str]], mean=None, std=None):
    numeric = frame[NUMERIC].to_numpy(np.float64)
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
    train_path = locate("kddcup.data_10_percent.gz", "kddcup99", data_dir, download)
    test_path = locate("corrected.gz", "kddcup99", data_dir, download)
    train, _ = read_records(train_path)
    test, malformed = read_records(test_path, drop_malformed=True)
    unknown = sorted(set(train[41]) - set(CATEGORY))
    if unknown:
        raise DataError(f"{train_path}: unknown labels {unknown[:5]}")
    categories = {col: sorted(train[col].unique()) for col in SYMBOLIC}
    if labels == "categories":
        class_names = CATEGORIES
        to_class = {t: CATEGORIES.index(c) for t, c in CATEGORY.items()}
    else:
        class_names = sorted(train[41].unique())
        to_class = {t: k for k, t in enumerate(class_names)}
    known = test[41].isin(list(to_class))
    strange = sorted(set(test[41][~known.to_numpy()]) - set(CATEGORY))  # not even a KDD attack type
    unseen = int((~known).sum()) - int(test[41].isin(strange).sum())
    test = test[known]
    X, mean, std = encode(train, categories)
    X_test, _, _ = encode(test, categories, mean, std)
    y, y_test = train[41].map(to_class).to_numpy(np.int64), test[41].map(to_class).to_numpy(np.int64)
    order = np.random.default_rng(1999).permutation(len(X))
    n_train = len(X) - len(X) // 6
    tr, va = order[:n_train], order[n_train:]
    notes = []
    if malformed:
        notes.append(f"{malformed} test records with other than {N_FIELDS} fields dropped")
    if strange:
        n = int((~known).sum()) - unseen
        notes.append(f"{n} test records with unknown labels dropped ({', '.join(strange[:3])}"
                     f"{', ...' if len(strange) > 3 else ''})")
    if unseen:
        notes.append(f"{unseen} test records with attack types unseen in training dropped")
    return Dataset(f"kddcup99:{labels}", X[tr], y[tr], X[va], y[va], X_test, y_test,
                   n_classes=len(class_names), class_names=class_names,
                   source="KDD Cup 1999 10 %" + "".join(f"; {n}" for n in notes), notes=notes)

"""A data set of your own in one .npz file: X_train, y_train, X_test, y_test (X_val, y_val optional).

Every array's header (shape and dtype, read with ``np.lib.format``) is checked
before any array is loaded: inputs must be 2-D real numbers, labels integers of
shape (n,) or (n, 1), and each header must describe exactly the bytes the
file holds, so that a header claiming a huge shape cannot make the loader ask
for more memory than the file's own data.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from pgdbench.data.dataset import MAX_CLASSES, Dataset
from pgdbench.data.sources import regular_file
from pgdbench.errors import DataError

REQUIRED = ("X_train", "y_train", "X_test", "y_test")
OPTIONAL = ("X_val", "y_val")
INPUT_KINDS = "biuf"   # bool, signed and unsigned integers, floats: what converts to float32 exactly enough
LABEL_KINDS = "iu"


def _header(path: Path, z: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from one member's .npy header, checked against the bytes the member holds."""
    name = info.filename[:-4]
    try:
        with z.open(info) as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            header = f.tell()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: {name} is not a readable .npy array ({exc})") from None
    if dtype.hasobject or dtype.kind == "V":
        raise DataError(f"{path}: {name} holds Python objects or records ({dtype}), not numbers")
    claimed = dtype.itemsize
    for d in shape:
        claimed *= d
    if claimed != info.file_size - header:
        raise DataError(f"{path}: {name}'s header claims shape {shape} of {dtype} ({claimed:,} bytes) but the file "
                        f"holds {info.file_size - header:,} bytes for it")
    return shape, dtype


def _check(path: Path, headers: dict) -> None:
    for name, (shape, dtype) in headers.items():
        if name.startswith("X_"):
            if len(shape) != 2:
                raise DataError(f"{path}: {name} must be 2-D (examples × features), got shape {shape}")
            if dtype.kind not in INPUT_KINDS:
                raise DataError(f"{path}: {name} must hold real numbers, got {dtype} "
                                f"({'complex' if dtype.kind == 'c' else 'text' if dtype.kind in 'SU' else dtype.kind})")
        else:
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise DataError(f"{path}: {name} must hold one label per example, shape (n,) or (n, 1), "
                                f"got shape {shape}")
            if dtype.kind not in LABEL_KINDS:
                raise DataError(f"{path}: {name} must hold integer class labels, got {dtype}")
    for split in ("train", "val", "test"):
        if f"X_{split}" in headers and f"y_{split}" in headers:
            n, m = headers[f"X_{split}"][0][0], headers[f"y_{split}"][0][0]
            if n != m:
                raise DataError(f"{path}: X_{split} has {n} examples but y_{split} has {m} labels")
    if ("X_val" in headers) != ("y_val" in headers):
        raise DataError(f"{path}: X_val and y_val come together (found only one of them)")


def load_npz(path) -> Dataset:
    path = Path(path)
    if not regular_file(path):
        raise DataError(f"{path}: file not found")
    try:
        with zipfile.ZipFile(path) as z:
            members = {i.filename[:-4]: i for i in z.infolist() if i.filename.endswith(".npy")}
            missing = set(REQUIRED) - set(members)
            if missing:
                raise DataError(f"{path}: missing arrays {', '.join(sorted(missing))}")
            headers = {name: _header(path, z, members[name]) for name in REQUIRED + OPTIONAL if name in members}
        _check(path, headers)
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in headers}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    for name in arrays:
        if name.startswith("y_"):
            arrays[name] = arrays[name].reshape(-1)
    if "X_val" not in arrays:  # hold out the last sixth, as Kamra et al., *Parallel Gradient Descent* does for MNIST
        n = len(arrays["X_train"]) - len(arrays["X_train"]) // 6
        arrays["X_val"], arrays["y_val"] = arrays["X_train"][n:], arrays["y_train"][n:]
        arrays["X_train"], arrays["y_train"] = arrays["X_train"][:n], arrays["y_train"][:n]
    largest = max(int(arrays[k].max(initial=0)) for k in ("y_train", "y_val", "y_test"))
    smallest = min(int(arrays[k].min(initial=0)) for k in ("y_train", "y_val", "y_test"))
    if smallest < 0:
        raise DataError(f"{path}: labels must be class indices 0..K-1, found {smallest}")
    if largest >= MAX_CLASSES:
        raise DataError(f"{path}: labels must be class indices 0..K-1 with K at most {MAX_CLASSES:,}, found "
                        f"{largest} (one output unit per class: the net and its targets would be {largest + 1:,} "
                        f"wide)")
    return Dataset(f"npz:{path.name}", arrays["X_train"], arrays["y_train"], arrays["X_val"], arrays["y_val"],
                   arrays["X_test"], arrays["y_test"], n_classes=largest + 1, source=str(path))

"""Data loading: real files where present, and every kind of bad file gets a clear error."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from pgdbench.data import load_dataset
from pgdbench.data.dataset import Dataset
from pgdbench.data.idx import read_idx
from pgdbench.data.sources import KNOWN_FILES
from pgdbench.errors import DataError, UsageError
from tests.conftest import kdd_dir, mnist_dir


def idx_bytes(array: np.ndarray) -> bytes:
    magic = {1: 0x801, 3: 0x803}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, n_train=60000, n_test=10000, image_shape=(28, 28), compress=False) -> Path:
    """Small-valued but correctly shaped MNIST files (all four), raw or gzipped."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *image_shape)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *image_shape)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, arr in files.items():
        data = idx_bytes(arr)
        if compress:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


# -- IDX parsing ----------------------------------------------------------------

def test_idx_roundtrip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(arr))
    assert np.array_equal(read_idx(tmp_path / "a"), arr)
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(arr)))
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)


def test_bad_magic(tmp_path):
    (tmp_path / "f").write_bytes(b"\x00\x00\x08\x04" + bytes(100))
    with pytest.raises(DataError, match="bad magic number 0x00000804"):
        read_idx(tmp_path / "f")


def test_truncated_raw_file(tmp_path):
    data = idx_bytes(np.zeros((10, 28, 28)))
    (tmp_path / "f").write_bytes(data[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "f")


def test_truncated_gzip_file(tmp_path):
    data = gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 256, (50, 28, 28))))
    (tmp_path / "f.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(tmp_path / "f.gz")


def test_trailing_bytes(tmp_path):
    (tmp_path / "f").write_bytes(idx_bytes(np.zeros(5)) + b"xx")
    with pytest.raises(DataError, match="trailing data"):
        read_idx(tmp_path / "f")


def test_wrong_dimensions(tmp_path):
    write_mnist(tmp_path / "m", n_train=10, n_test=10, image_shape=(28, 27))
    with pytest.raises(DataError, match=r"dimensions \(10, 28, 27\)"):
        load_dataset("mnist", data_dir=tmp_path / "m")


def test_count_mismatch(tmp_path):
    folder = write_mnist(tmp_path / "m", n_train=100, n_test=10)
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(99)))
    with pytest.raises(DataError, match="100 images but .* 99 labels"):
        load_dataset("mnist", data_dir=folder)


def test_wrong_total_count(tmp_path):
    folder = write_mnist(tmp_path / "m", n_train=100, n_test=10000)
    with pytest.raises(DataError, match="100 images, expected 60000"):
        load_dataset("mnist", data_dir=folder)


def test_raw_files_load_with_the_papers_split(tmp_path):
    d = load_dataset("mnist", data_dir=write_mnist(tmp_path / "m"))
    assert (len(d.X_train), len(d.X_val), len(d.X_test)) == (50000, 10000, 10000)
    assert d.X_train.dtype == np.float32 and 0 <= d.X_train.min() and d.X_train.max() <= 1


def test_checksum_mismatch(tmp_path):
    folder = write_mnist(tmp_path / "m", n_train=10, n_test=10, compress=True)  # a valid file, not the original
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("mnist", data_dir=folder)


def test_missing_files_say_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="--data-dir DIR.*mnist-sample"):
        load_dataset("mnist", data_dir=tmp_path / "empty")


def test_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="no such directory"):
        load_dataset("mnist", data_dir=tmp_path / "nope")


# -- Dataset validation -----------------------------------------------------------

def test_nan_inputs_are_refused():
    X = np.ones((4, 3))
    X[2, 1] = np.nan
    with pytest.raises(DataError, match="1 NaN or infinite"):
        Dataset("t", X, np.zeros(4, int), X[:0], np.zeros(0, int), X[:0], np.zeros(0, int), n_classes=2)


def test_npz_with_nan(tmp_path):
    X = np.random.default_rng(0).random((12, 5))
    X[3, 3] = np.inf
    np.savez(tmp_path / "d.npz", X_train=X, y_train=np.zeros(12, int), X_test=X[:2], y_test=np.zeros(2, int))
    with pytest.raises(DataError, match="NaN or infinite"):
        load_dataset(f"npz:{tmp_path / 'd.npz'}")


def test_npz_corrupt_and_incomplete(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")
    np.savez(tmp_path / "part.npz", X_train=np.ones((3, 2)))
    with pytest.raises(DataError, match="missing arrays X_test, y_test, y_train"):
        load_dataset(f"npz:{tmp_path / 'part.npz'}")


def test_label_out_of_range():
    X = np.ones((3, 2))
    with pytest.raises(DataError, match="labels must be integers in 0..1"):
        Dataset("t", X, np.array([0, 1, 2]), X, np.zeros(3, int), X, np.zeros(3, int), n_classes=2)


def test_unknown_dataset():
    with pytest.raises(UsageError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


# -- the embedded default and synthetic data -------------------------------------

def test_embedded_sample_is_real_balanced_digits():
    d = load_dataset("mnist-sample")
    assert (len(d.X_train), len(d.X_val), len(d.X_test)) == (4000, 500, 500)
    labels = np.concatenate([d.y_train, d.y_val, d.y_test])
    assert np.array_equal(np.bincount(labels), [500] * 10)
    # real digits: mostly-black images with strokes, not noise
    assert 0.15 < (d.X_train > 0).mean() < 0.25
    assert d.X_train.max() == 1.0


def test_synthetic_sizes_and_determinism():
    a, b = load_dataset("synthetic:500"), load_dataset("synthetic:500")
    assert a.X_train.shape == (500, 784) and len(a.X_val) == 100
    assert np.array_equal(a.X_train, b.X_train) and len(set(a.y_train)) > 5
    with pytest.raises(UsageError, match="integer"):
        load_dataset("synthetic:lots")


# -- the real files, where present ---------------------------------------------------

@pytest.mark.skipif(mnist_dir() is None, reason="real MNIST files not present (../shared/data/mnist or $PGDBENCH_DATA)")
def test_real_mnist_matches_its_documented_counts():
    d = load_dataset("mnist", data_dir=mnist_dir())
    train_labels = np.concatenate([d.y_train, d.y_val])
    assert np.array_equal(np.bincount(train_labels), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    assert np.array_equal(np.bincount(d.y_test), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])


@pytest.mark.skipif(kdd_dir() is None, reason="KDD Cup 1999 files not present (../shared/data/kddcup99)")
def test_kddcup99_encoding():
    d = load_dataset("kddcup99", data_dir=kdd_dir())
    assert len(d.X_train) + len(d.X_val) == 494021 and len(d.X_test) == 311029
    assert d.n_classes == 5 and d.class_names[0] == "normal"
    numeric = d.X_train[:, :38]
    assert abs(float(numeric.mean())) < 0.05  # standardised on the training file
    onehot = d.X_train[:, 38:]
    assert set(np.unique(onehot)) == {0.0, 1.0} and np.all(onehot.sum(axis=1) == 3)  # one value per symbolic column
    types = load_dataset("kddcup99:types", data_dir=kdd_dir())
    assert types.n_classes == 23 and "dropped" in types.source


# -- downloading (pooch), from a server on this machine ----------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_folder(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    handler = lambda *a, **k: QuietHandler(*a, directory=str(folder), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_rejects_a_corrupt_file(http_folder, monkeypatch, tmp_path):
    folder, url = http_folder
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(10000))))
    monkeypatch.delenv("PGDBENCH_OFFLINE")
    monkeypatch.setenv("PGDBENCH_MIRROR_MNIST", url)
    from pgdbench.data.sources import locate
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="checksum mismatch"):
        locate("t10k-labels-idx1-ubyte.gz", "mnist", tmp_path / "empty")


@pytest.mark.skipif(mnist_dir() is None, reason="real MNIST files not present to serve")
def test_download_verifies_and_caches(http_folder, monkeypatch, tmp_path):
    folder, url = http_folder
    shutil.copy(mnist_dir() / "t10k-labels-idx1-ubyte.gz", folder)
    monkeypatch.delenv("PGDBENCH_OFFLINE")
    monkeypatch.setenv("PGDBENCH_MIRROR_MNIST", url)
    from pgdbench.data.sources import cache_dir, locate
    path = locate("t10k-labels-idx1-ubyte.gz", "mnist")
    assert path.parent == cache_dir()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == KNOWN_FILES["t10k-labels-idx1-ubyte.gz"]
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()  # the second call must come from the cache
    assert locate("t10k-labels-idx1-ubyte.gz", "mnist") == path


def test_offline_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="PGDBENCH_OFFLINE is set"):
        load_dataset("mnist", data_dir=tmp_path / "empty")

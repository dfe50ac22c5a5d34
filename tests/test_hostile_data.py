"""Hostile data files cost little memory and end in one line: headers are checked before anything is read.

Each file is handed to `pgdbench train` in a subprocess whose address space is capped (``resource``, so that a
regression fails with a MemoryError instead of swapping a shared machine) and whose peak resident memory (VmHWM)
is measured. Before, the gzip bomb expanded to gigabytes, the sparse file and the npz asked for more than the cap
(MemoryError tracebacks) and labels of 10^9 made the default net 10^9 outputs wide.
"""
from __future__ import annotations

import gzip
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="address-space cap and /proc/self/status: Linux")

CAP_MIB = 2048    # address space of the subprocess; every one of these files made main's loaders ask for more
BOUND_MIB = 400   # peak RSS allowed: the interpreter and NumPy (about 90 MiB) and a few copies of the 47 MB the
#                   largest header here legitimately promises (60,000 MNIST images)

RUNNER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap} << 20, {cap} << 20))
from pgdbench.cli import main
try:
    code = main(sys.argv[1:])
finally:  # VmHWM, not ru_maxrss, which keeps the high-water mark of the process that forked this one
    hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print("peak RSS MiB", int(hwm.split()[1]) >> 10, file=sys.stderr)
sys.exit(code)
"""


def _train(tmp_path: Path, *args: str) -> tuple[int, list[str], int]:
    """(exit status, stderr lines but the measurement, peak RSS in MiB) of `pgdbench train ARGS` under the cap."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # OpenBLAS reserves address space per thread
    proc = subprocess.run([sys.executable, "-c", RUNNER.format(cap=CAP_MIB), "train", "--epochs", "1", "--quiet",
                           *args], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    lines = proc.stderr.strip().splitlines()
    measured = [line for line in lines if line.startswith("peak RSS MiB")]
    rss = int(measured[0].rsplit(" ", 1)[1]) if measured else -1
    print(f"{args}: exit {proc.returncode}, peak RSS {rss} MiB")  # shown with pytest -s
    return proc.returncode, [line for line in lines if line not in measured], rss


def _idx_header(magic: int, dims) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in dims)


def _mnist_folder(tmp_path: Path, images_name: str, images: bytes | None = None) -> Path:
    """A data folder whose training images are ``images``, with 60,000 training labels; the test files need only
    exist (the training split is read first)."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    if images is not None:
        (folder / images_name).write_bytes(images)
    (folder / "train-labels-idx1-ubyte").write_bytes(_idx_header(0x801, (60000,)) + bytes(60000))
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"")
    return folder


def _assert_one_line(code: int, lines: list[str], rss: int, *expected: str) -> None:
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("pgdbench train: error: "), lines
    for text in expected:
        assert text in lines[0], lines
    assert 0 < rss < BOUND_MIB, f"peak RSS {rss} MiB"


def test_gzip_bomb_under_the_raw_idx_name(tmp_path):
    """3 MB of gzip that expands to 3 GiB, named like an uncompressed file (so no checksum applies): decompression
    stops once it has produced more than the 47 MB the header promises."""
    zeros = gzip.compress(bytes(64 << 20), compresslevel=9, mtime=0)  # 64 MiB of zeros in 65 kB
    bomb = gzip.compress(_idx_header(0x803, (60000, 28, 28)), mtime=0) + zeros * 48  # gzip members concatenate
    assert len(bomb) < 4 << 20
    folder = _mnist_folder(tmp_path, "train-images-idx3-ubyte", bomb)
    code, lines, rss = _train(tmp_path, "--dataset", "mnist", "--data-dir", str(folder))
    _assert_one_line(code, lines, rss, "train-images-idx3-ubyte", "more data than")


def test_sparse_20_gb_raw_idx(tmp_path):
    """A 20 GB file (sparse: no disk used) whose header agrees with its size: the header's count is refused before
    a byte of the body is read."""
    folder = _mnist_folder(tmp_path, "train-images-idx3-ubyte")
    n = 20_000_000_000 // 784
    with open(folder / "train-images-idx3-ubyte", "wb") as f:
        f.write(_idx_header(0x803, (n, 28, 28)))
        f.truncate(16 + n * 784)
    code, lines, rss = _train(tmp_path, "--dataset", "mnist", "--data-dir", str(folder))
    _assert_one_line(code, lines, rss, "train-images-idx3-ubyte", f"has {n} images")


def test_sparse_raw_idx_larger_than_its_header(tmp_path):
    """The right header on a 20 GB file: refused from the file's size, not by reading to the end."""
    folder = _mnist_folder(tmp_path, "train-images-idx3-ubyte")
    with open(folder / "train-images-idx3-ubyte", "wb") as f:
        f.write(_idx_header(0x803, (60000, 28, 28)))
        f.truncate(20_000_000_000)
    code, lines, rss = _train(tmp_path, "--dataset", "mnist", "--data-dir", str(folder))
    _assert_one_line(code, lines, rss, "train-images-idx3-ubyte", "trailing data")


def _npz_member(array: np.ndarray | None = None, header: dict | None = None, body: bytes = b"") -> bytes:
    import io

    out = io.BytesIO()
    if header is None:
        np.lib.format.write_array(out, array, allow_pickle=False)
    else:
        np.lib.format.write_array_header_1_0(out, header)
        out.write(body)
    return out.getvalue()


def _write_npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name + ".npy", data)
    return path


def _small(n=60, d=784, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, d), dtype=np.float32), rng.integers(0, 10, n)


def test_npz_header_claiming_a_huge_shape(tmp_path):
    """X_train's header claims 10^9 × 784 floats (3 TB) over 1 kB of data: refused from the header."""
    X, y = _small()
    path = _write_npz(tmp_path / "huge.npz", {
        "X_train": _npz_member(header={"descr": "<f4", "fortran_order": False, "shape": (10**9, 784)},
                               body=bytes(1024)),
        "y_train": _npz_member(y), "X_test": _npz_member(X), "y_test": _npz_member(y)})
    code, lines, rss = _train(tmp_path, "--dataset", f"npz:{path}")
    _assert_one_line(code, lines, rss, "huge.npz", "X_train", "(1000000000, 784)")


def test_labels_of_a_billion_with_the_default_net(tmp_path):
    """A label of 10^9 would make the default net 10^9 outputs wide (terabytes of weights): refused on loading."""
    X, y = _small()
    y[7] = 10**9
    path = tmp_path / "labels.npz"
    np.savez(path, X_train=X, y_train=y, X_test=X, y_test=y % 10)
    code, lines, rss = _train(tmp_path, "--dataset", f"npz:{path}")
    _assert_one_line(code, lines, rss, "labels.npz", "1000000000")


def test_labels_out_of_range_for_the_net(tmp_path):
    """Labels 0..10 and a net of 10 outputs: the mismatch is named (11 classes, 10 outputs)."""
    X, y = _small()
    y[3] = 10
    path = tmp_path / "eleven.npz"
    np.savez(path, X_train=X, y_train=y, X_test=X, y_test=y)
    code, lines, rss = _train(tmp_path, "--dataset", f"npz:{path}", "--layers", "784,16,10")
    _assert_one_line(code, lines, rss, "11 classes")

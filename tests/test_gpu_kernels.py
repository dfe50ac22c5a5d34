"""The tiled kernels of implementations/kernels/mlp_step.cluda, without a GPU.

* nvcc compiles prelude_cuda.h + the source (exactly what PyCUDA would build) to PTX;
* PoCL runs each kernel through the opencl backend's device API, against NumPy
  in float64 on awkward shapes (1, 10, 31, 33, 784, 1000; odd batches, gathered rows);
* whole epochs of the opencl backend against the float64 reference, in float64
  (tolerance 1e-10) and float32 (tolerance FLOAT32_TOLERANCE = 2e-4, the kit's);
* launches per step are counted on the real device queue.

PoCL compiles each distinct program the first time (then caches it under
~/.cache/pocl): the tests use three builds -- float64 and float32 at the
default tile 32, and float64 at tile 8 to show that the tile is a real
compile-time parameter.
"""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from implementations import tiled_runner
from implementations.tiled_runner import kernel_source, launches_per_step
from pgdbench.core import reference
from pgdbench.core.model import NetSpec, epoch_order, glorot_uniform
from pgdbench.core.testing import FLOAT32_TOLERANCE
from pgdbench.errors import UsageError

ARCHS = ["sm_75", "sm_80", "sm_90"]


# -- nvcc --------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_nvcc_compiles_kernel_source_to_ptx(arch, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH: the CUDA toolkit is not installed here")
    dtype = np.float64 if arch == "sm_80" else np.float32   # one arch also checks the double build
    src = tmp_path / "mlp_step.cu"
    src.write_text(kernel_source("cuda", dtype))
    out = tmp_path / f"mlp_step_{arch}.ptx"
    run = subprocess.run([nvcc, "--ptx", f"-arch={arch}", str(src), "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"nvcc failed for {arch}:\n{run.stderr}"
    ptx = out.read_text()
    for name in tiled_runner.SIGNATURES:
        assert f".entry {name}(" in ptx, f"kernel {name} missing from the PTX (mangled name?)"
    assert (".f64" in ptx) == (dtype == np.float64)


# -- PoCL: the kernels one by one ------------------------------------------------

def opencl_device(dtype, tile=32, wpt=4):
    pytest.importorskip("pyopencl", reason="pyopencl not installed (pip install '.[opencl]')")
    from implementations.opencl_tiled import OpenCLDevice, OpenCLTrainer, _choose

    avail = OpenCLTrainer.availability()
    if not avail:
        pytest.skip(f"no OpenCL device: {avail.reason}")
    return OpenCLDevice(_choose(""), kernel_source("opencl", dtype, tile, wpt), dtype)


_DEVICES = {}


def device(dtype=np.float64, tile=32, wpt=4):
    key = (np.dtype(dtype).name, tile, wpt)
    if key not in _DEVICES:
        _DEVICES[key] = opencl_device(dtype, tile, wpt)
    return _DEVICES[key]


class Kernels:
    """Runs one kernel on NumPy inputs and returns the outputs as NumPy arrays."""

    def __init__(self, dev, dtype, tile, wpt):
        self.dev, self.dtype, self.tile = dev, np.dtype(dtype), tile
        self.local = tiled_runner.local_size(tile, wpt)

    def buf(self, a):
        a = np.ascontiguousarray(a, self.dtype if a.dtype.kind == "f" else np.int32)
        b = self.dev.alloc(a.nbytes)
        self.dev.upload(b, a)
        return b

    def get(self, b, shape):
        out = np.empty(shape, self.dtype)
        self.dev.download(out, b)
        return out

    def run(self, name, grid_n, grid_m, args):
        g = tiled_runner.groups
        self.dev.launch(name, (g(grid_n, self.tile), g(grid_m, self.tile)), self.local, args)
        self.dev.finish()


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# (rows of the batch M, inputs K, outputs N): every awkward width appears on every axis somewhere
SHAPES = [(1, 784, 10), (31, 33, 1), (33, 10, 31), (1000, 31, 33), (7, 1, 784), (10, 1000, 1)]


@pytest.mark.parametrize("tile,wpt", [(32, 4), (8, 2)])
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_kernels_match_numpy_float64(M, K, N, tile, wpt):
    k = Kernels(device(np.float64, tile, wpt), np.float64, tile, wpt)
    rng = np.random.default_rng([M, K, N])
    n_data = M + 5
    X = rng.standard_normal((n_data, K))
    Y = rng.random((n_data, N))
    rows = rng.permutation(n_data)                 # gather: batch row r is data row rows[offset + r]
    offset = 3 if M + 3 <= n_data else 0
    idx = rows[offset:offset + M]
    Wb = rng.standard_normal((K + 1, N)) / np.sqrt(K)
    Xb, Yb, Rb, Wbb = k.buf(X), k.buf(Y), k.buf(rows), k.buf(Wb)

    # forward with gathered rows and the fused output delta
    A_out, D = k.dev.alloc(M * N * 8), k.dev.alloc(M * N * 8)
    k.run("forward_sigmoid", N, M, (Xb, Rb, offset, 1, Wbb, A_out, M, K, N, Yb, D, 1, 1))
    a = sigmoid(X[idx] @ Wb[:K] + Wb[K])
    np.testing.assert_allclose(k.get(A_out, (M, N)), a, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(k.get(D, (M, N)), (a - Y[idx]) * a * (1 - a), rtol=1e-11, atol=1e-14)

    # delta propagation: the layer below has K units, its activations Ab (M x K)
    Ab = sigmoid(rng.standard_normal((M, K)))
    Dup = rng.standard_normal((M, N))
    Db = k.dev.alloc(M * K * 8)
    k.run("backprop_delta", K, M, (k.buf(Dup), Wbb, k.buf(Ab), Db, M, N, K))
    np.testing.assert_allclose(k.get(Db, (M, K)), (Dup @ Wb[:K].T) * Ab * (1 - Ab), rtol=1e-11, atol=1e-13)

    # weight update of weights and bias with gathered input rows: Wb -= s [x 1]ᵀ δ
    s = 0.37
    k.run("update_weights", N, K + 1, (Xb, Rb, offset, 1, k.buf(Dup), Wbb, K, N, M, np.float64(s)))
    expected = Wb.copy()
    expected[:K] -= s * X[idx].T @ Dup
    expected[K] -= s * Dup.sum(axis=0)
    np.testing.assert_allclose(k.get(Wbb, (K + 1, N)), expected, rtol=1e-11, atol=1e-12)


def test_kernels_float32_default_build():
    """The float32 program (what `pgdbench train` runs) on the widest shape: relative error of float32 sums."""
    k = Kernels(device(np.float32), np.float32, 32, 4)
    rng = np.random.default_rng(5)
    M, K, N = 1000, 784, 33
    X = rng.random((M, K)).astype(np.float32)
    Wb = (rng.standard_normal((K + 1, N)) / np.sqrt(K)).astype(np.float32)
    A_out = k.dev.alloc(M * N * 4)
    Xb = k.buf(X)
    k.run("forward_sigmoid", N, M, (Xb, k.buf(np.arange(M)), 0, 0, k.buf(Wb), A_out, M, K, N, Xb, A_out, 0, 0))
    a = sigmoid(X.astype(np.float64) @ Wb[:K] + Wb[K])
    np.testing.assert_allclose(k.get(A_out, (M, N)), a, rtol=1e-5, atol=1e-6)


# -- PoCL: whole training runs of the opencl backend -------------------------------

def opencl_trainer_class():
    pytest.importorskip("pyopencl", reason="pyopencl not installed (pip install '.[opencl]')")
    from implementations.opencl_tiled import OpenCLTrainer

    avail = OpenCLTrainer.availability()
    if not avail:
        pytest.skip(f"no OpenCL device: {avail.reason}")
    return OpenCLTrainer


class LaunchCounter:
    """Wraps a real device API's launch to count launches; the kernels still run."""

    def __init__(self, dev):
        self.dev, self.count, self.names = dev, 0, []
        self._launch = dev.launch
        dev.launch = self

    def __call__(self, name, *args):
        self.count += 1
        self.names.append(name)
        return self._launch(name, *args)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layers", [(784, 33, 10), (40, 33, 31, 10)])
def test_opencl_epochs_match_reference(layers, dtype):
    """Two epochs, batch 31 with an odd last batch of 19, shuffled order: θ equals the float64 reference's."""
    cls = opencl_trainer_class()
    spec = NetSpec(layers)
    rng = np.random.default_rng(len(layers))
    n, batch, lr = 112, 31, 0.8
    X = rng.random((n, spec.n_inputs))
    Y = np.eye(spec.n_outputs)[rng.integers(0, spec.n_outputs, n)]
    params = glorot_uniform(spec, 3, np.float64)
    expected = params.copy()
    with cls(spec, params.copy(dtype), dtype=dtype) as t:
        t.load_data(X.astype(dtype), Y.astype(dtype))
        counter = LaunchCounter(t.dev)
        for epoch in range(2):
            order = epoch_order(n, 7, epoch)
            t.train_epoch(order, batch, lr)
            expected = reference.train_epoch(expected, X, Y, order, batch, lr)
        got = t.get_weights()
        steps = 2 * -(-n // batch)
        L = len(spec.shapes)
        assert counter.count == steps * launches_per_step(L) == steps * t.metadata()["kernel_launches_per_step"]
        one_step = ["forward_sigmoid"] * L
        for layer in range(L - 1, -1, -1):
            one_step += (["backprop_delta"] if layer > 0 else []) + ["update_weights"]
        assert counter.names == one_step * steps
    assert expected.max_abs_diff(params) > 1e-2, "the reference barely moved: the comparison would be vacuous"
    tol = 1e-10 if dtype == np.float64 else FLOAT32_TOLERANCE
    diff = got.max_abs_diff(expected)
    assert diff < tol, f"{np.dtype(dtype).name}: parameters differ from the reference by {diff:.2e}"


def test_launches_per_step_is_five_for_net1h():
    assert launches_per_step(len(NetSpec((784, 1024, 10)).shapes)) == 5
    assert launches_per_step(len(NetSpec((784, 1024, 1024, 10)).shapes)) == 8


def test_tile_limits_are_checked():
    from implementations.tiled_runner import check_tile

    check_tile(64, 4, np.float32)                                  # 33 KB of local memory: fits
    with pytest.raises(UsageError, match="local memory"):
        check_tile(64, 4, np.float64)                              # 66 KB: does not
    with pytest.raises(UsageError, match="threads per work-group"):
        check_tile(128, 2)
    with pytest.raises(UsageError, match="wpt"):
        check_tile(32, 3)


def test_opencl_options_are_checked():
    cls = opencl_trainer_class()
    spec = NetSpec((5, 3, 2))
    params = glorot_uniform(spec)
    with pytest.raises(UsageError, match="wpt"):
        cls(spec, params, options={"tile": 32, "wpt": 5})
    with pytest.raises(UsageError, match="tile"):
        cls(spec, params, options={"tile": 0})
    with pytest.raises(UsageError, match="does not exist"):
        cls(spec, params, options={"device": "9:9"})


def test_opencl_unavailable_without_pyopencl(monkeypatch):
    from implementations.opencl_tiled import OpenCLTrainer

    monkeypatch.setitem(sys.modules, "pyopencl", None)      # as if it were not installed
    avail = OpenCLTrainer.availability()
    assert not avail and "pyopencl not installed" in avail.reason


# -- PyCUDA: availability here, the kit on a GPU ------------------------------------

def test_pycuda_availability_says_why():
    from implementations.pycuda_tiled import PyCudaTrainer

    avail = PyCudaTrainer.availability()
    if avail:
        return                                   # a GPU machine: test_pycuda_on_gpu does the work
    assert "pycuda not installed" in avail.reason or "no CUDA driver / no GPU" in avail.reason, avail.reason


def test_pycuda_unavailable_without_pycuda(monkeypatch):
    from implementations.pycuda_tiled import PyCudaTrainer

    monkeypatch.setitem(sys.modules, "pycuda", None)
    avail = PyCudaTrainer.availability()
    assert not avail and avail.reason.startswith("pycuda not installed")


def test_pycuda_on_gpu():
    from implementations.pycuda_tiled import PyCudaTrainer
    from pgdbench.core.testing import check_backend

    avail = PyCudaTrainer.availability()
    if not avail:
        pytest.skip(f"no GPU: {avail.reason}")
    check_backend(PyCudaTrainer)

"""The tiled kernels of implementations/kernels/, without a GPU.

* nvcc compiles every program (each tile configuration and the narrow kernels, float32 and float64)
  for sm_80 and sm_90 with ``-Xptxas -v``: every kernel is there, none spills, none needs more than
  48 KB of static shared memory;
* NVRTC (what ``cupy-tiled`` builds through CuPy's RawModule) compiles the same sources;
* PoCL runs each product of a step through the runner's own launch code (``forward_layer``,
  ``backprop_layer``, ``update_layer`` of the opencl backend), against NumPy in float64, in every
  configuration, on awkward shapes: widths that are not multiples of 4 or of a tile (1, 10, 31, 33,
  67, 1000) and ones that are (36, 260, 784: the 16-byte loads), a batch of 1, batches that are not
  multiples of the tile, the 10-wide output layer, K = B weight updates split over work-groups;
* whole epochs of the opencl backend against the float64 reference, float64 (1e-10) and float32
  (the kit's FLOAT32_TOLERANCE), with the launches per step counted on the device queue.

PoCL builds a kernel for each work-group shape the first time it runs it (cached in ~/.cache/pocl).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from implementations import tiled_kernels
from implementations.tiled_kernels import (NARROW, group_signatures, groups, kernel_source, narrow_params,
                                           tile_configs)
from implementations.tiled_plan import MIN_SPLIT_ROWS, Planner
from pgdbench.core import reference
from pgdbench.core.model import NetSpec, epoch_order, glorot_uniform
from pgdbench.core.testing import FLOAT32_TOLERANCE
from pgdbench.errors import UsageError

ARCHS = ["sm_80", "sm_90"]
PROGRAMS = [(dt, g) for dt in ("float32", "float64") for g in groups(dt)]


# -- nvcc: every program, every kernel, no spills ------------------------------------------------

def ptxas_report(stderr: str) -> dict:
    """{(kernel, arch): (spill stores, spill loads, stack bytes, shared bytes)} from nvcc -Xptxas -v."""
    out, current = {}, None
    for line in stderr.splitlines():
        m = re.search(r"Compiling entry function '(\w+)' for '(sm_\d+)'", line)
        if m:
            current = (m.group(1), m.group(2))
            out[current] = [0, 0, 0, 0]
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and current:
            out[current][0:3] = [int(m.group(2)), int(m.group(3)), int(m.group(1))]
        m = re.search(r"Used \d+ registers.*?(\d+) bytes smem", line)
        if m and current:
            out[current][3] = int(m.group(1))
    return {k: tuple(v) for k, v in out.items()}


@pytest.mark.parametrize("dtype,group", PROGRAMS)
def test_nvcc_compiles_without_spills(dtype, group, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH: the CUDA toolkit is not installed here")
    src = tmp_path / "k.cu"
    src.write_text(kernel_source("cuda", dtype, group))
    gencode = [a for arch in ARCHS for a in ("-gencode", f"arch=compute_{arch[3:]},code={arch}")]
    run = subprocess.run([nvcc, "--fatbin", *gencode, "-Xptxas", "-v", str(src), "-o", str(tmp_path / "k.fatbin")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"nvcc failed:\n{run.stderr}"
    report = ptxas_report(run.stderr)
    for arch in ARCHS:
        for name in group_signatures(group):
            assert (name, arch) in report, f"{name} missing for {arch} (mangled name?):\n{run.stderr}"
            stores, loads, stack, smem = report[(name, arch)]
            assert stores == loads == 0, f"{name} spills on {arch}: {stores} bytes stored, {loads} loaded"
            assert stack == 0, f"{name} needs a {stack}-byte stack frame on {arch}"
            assert smem <= tiled_kernels.LOCAL_MEMORY_LIMIT, f"{name}: {smem} bytes of shared memory on {arch}"


def test_every_configuration_fits_a_work_group():
    for dtype in ("float32", "float64"):
        tiled_kernels.check_local_memory(dtype)          # 48 KB of static local memory
        for c in tile_configs(dtype):
            assert c.threads <= 1024 and c.tm in (4, 8) and c.tn in (4, 8)


# -- NVRTC: what cupy-tiled compiles -----------------------------------------------------------------

def nvrtc_compile(source: str, arch: str = "compute_90") -> bytes:
    """PTX from NVRTC with the options CupyDevice gives RawModule, without a GPU (no device query)."""
    compiler = pytest.importorskip("cupy.cuda.compiler", reason="cupy not installed (pip install -e '.[cupy]')")
    from implementations.cupy_tiled import NVRTC_OPTIONS

    try:
        compiler._get_nvrtc_version()
    except Exception as exc:   # the NVRTC library is found at run time
        pytest.skip(f"NVRTC not loadable here ({type(exc).__name__}: {exc}); pip install nvidia-cuda-nvrtc")
    prog = compiler._NVRTCProgram(source, "k.cu", (), (), method="ptx")
    ptx, _ = prog.compile(NVRTC_OPTIONS + (f"-arch={arch}", "--device-as-default-execution-space"))
    return ptx


@pytest.mark.parametrize("dtype,group", PROGRAMS)
def test_nvrtc_compiles_the_cupy_tiled_source(dtype, group):
    ptx = nvrtc_compile(kernel_source("cuda", dtype, group))
    text = ptx.decode() if isinstance(ptx, bytes) else ptx
    for name in group_signatures(group):
        assert f".entry {name}(" in text
    assert (".f64" in text) == (dtype == "float64")


# -- PoCL: each product of a step against NumPy -------------------------------------------------------

def opencl_trainer_class():
    pytest.importorskip("pyopencl", reason="pyopencl not installed (pip install -e '.[opencl]')")
    from implementations.opencl_tiled import OpenCLTrainer

    avail = OpenCLTrainer.availability()
    if not avail:
        pytest.skip(f"no OpenCL device: {avail.reason}")
    return OpenCLTrainer


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


class Products:
    """One opencl trainer whose device runs single products on NumPy data, as ``_step`` launches them."""

    def __init__(self, layers, dtype, options, n_data, rows):
        cls = opencl_trainer_class()
        self.spec = NetSpec(layers)
        self.dtype = np.dtype(dtype)
        self.t = cls(self.spec, glorot_uniform(self.spec, 0, dtype), dtype=dtype, options=options)
        self.rows = rows

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.t.close()

    def put(self, buf, a):
        self.t.dev.upload(buf, np.ascontiguousarray(a, self.dtype))

    def get(self, buf, shape):
        out = np.empty(shape, self.dtype)
        self.t.dev.finish()
        self.t.dev.download(out, buf)
        return out

    def load(self, X, Y, batch):
        self.t.load_data(X.astype(self.dtype), Y.astype(self.dtype))
        self.t._ensure_buffers(batch)
        self.t._upload_order(self.rows)


# (rows of the batch M, inputs K, outputs N): every awkward width appears on every axis somewhere
SHAPES = [(1, 784, 10), (31, 33, 1), (33, 10, 31), (1000, 31, 33), (7, 1, 784), (10, 1000, 1), (65, 784, 36),
          (129, 36, 260)]
F64_MODES = [{"tile": c.name, "narrow": "off"} for c in tile_configs("float64")] + [{"tile": "32x32"}]


@pytest.mark.parametrize("options", F64_MODES, ids=lambda o: "-".join(o.values()))
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_products_match_numpy_float64(M, K, N, options):
    rng = np.random.default_rng([M, K, N])
    n_data = M + 5
    X, Y = rng.standard_normal((n_data, K)), rng.random((n_data, N))
    rows = rng.permutation(n_data)                 # gather: batch row r is data row rows[offset + r]
    offset = 3 if M + 3 <= n_data else 0
    idx = rows[offset:offset + M]
    Wb = rng.standard_normal((K + 1, N)) / np.sqrt(K)

    # forward of a one-layer net K -> N with gathered rows and the fused output delta
    with Products((K, N), np.float64, options, n_data, rows) as p:
        p.load(X, Y, M)
        t = p.t
        with t.dev.active():
            t.set_weights(_params(Wb))
            product = t.forward_layer(0, M, t.X, True, offset, targets=t.Y, gather_y=True)
            a = sigmoid(X[idx] @ Wb[:K] + Wb[K])
            np.testing.assert_allclose(p.get(t._act[0], (M, N)), a, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(p.get(t._delta[0], (M, N)), (a - Y[idx]) * a * (1 - a), rtol=1e-11,
                                       atol=1e-14)
        assert product.group == (NARROW if N <= 16 and options.get("narrow") != "off" else options["tile"])

        # the weight update Wb -= s [x 1]ᵀ δ with gathered input rows: K = B, whole and split in 3
        for split in ("1", "3"):
            t.planner = Planner(np.float64, 2, tile=options["tile"], split=split, narrow=options.get("narrow", "auto"))
            Dup = rng.standard_normal((M, N))
            with t.dev.active():
                t.set_weights(_params(Wb))
                p.put(t._delta[0], Dup)
                product = t.update_layer(0, M, t.Wb[0], 0.37, t.X, True, offset)
                expected = Wb.copy()
                expected[:K] -= 0.37 * X[idx].T @ Dup
                expected[K] -= 0.37 * Dup.sum(axis=0)
                np.testing.assert_allclose(p.get(t.Wb[0], (K + 1, N)), expected, rtol=1e-11, atol=1e-12)
            assert product.splits == int(split) and len(product.launches) == 1 + (split == "3")

    # delta propagation: a net 5 -> K -> N; δ of the K units from δ of the N outputs through W
    with Products((5, K, N), np.float64, options, 6, np.arange(6)) as p:
        p.load(rng.random((6, 5)), rng.random((6, N)), M)
        t = p.t
        Ab, Dup = sigmoid(rng.standard_normal((M, K))), rng.standard_normal((M, N))
        params = t.get_weights()
        params.weights[1], params.biases[1] = Wb[:K].copy(), Wb[K].copy()
        with t.dev.active():
            t.set_weights(params)
            p.put(t._act[0], Ab)
            p.put(t._delta[1], Dup)
            t.backprop_layer(1, M)
            np.testing.assert_allclose(p.get(t._delta[0], (M, K)), (Dup @ Wb[:K].T) * Ab * (1 - Ab), rtol=1e-11,
                                       atol=1e-13)


def _params(Wb):
    from pgdbench.core.model import Parameters

    return Parameters([Wb[:-1].copy()], [Wb[-1].copy()])


@pytest.mark.parametrize("group", groups("float32"))
def test_float32_programs_on_the_widest_shape(group):
    """Each float32 program (what `pgdbench train` runs): forward, delta and a split update, float32 rounding."""
    rng = np.random.default_rng(5)
    M, K, N = 1000, 784, 33 if group != NARROW else 10
    tile = "128x64" if group == NARROW else group
    X = rng.random((M, K))
    Wb = rng.standard_normal((K + 1, N)) / np.sqrt(K)
    with Products((K, N), np.float32, {"tile": tile, "split": "2"}, M, np.arange(M)) as p:
        p.load(X, rng.random((M, N)), M)
        t = p.t
        with t.dev.active():
            t.set_weights(_params(Wb))
            t.forward_layer(0, M, t.X, False)
            a = sigmoid(X @ Wb[:K] + Wb[K])
            np.testing.assert_allclose(p.get(t._act[0], (M, N)), a, rtol=1e-5, atol=1e-6)
            D = rng.standard_normal((M, N))
            p.put(t._delta[0], D)
            product = t.update_layer(0, M, t.Wb[0], 1e-3, t.X, False)
            assert product.group == group and product.splits == 2
            expected = Wb[:K] - 1e-3 * X.T @ D
            np.testing.assert_allclose(p.get(t.Wb[0], (K + 1, N))[:K], expected, rtol=1e-4, atol=1e-5)


# -- PoCL: whole training runs of the opencl backend -------------------------------------------

class LaunchCounter:
    """Wraps a real device API's launch to count launches; the kernels still run."""

    def __init__(self, dev):
        self.dev, self.names = dev, []
        self._launch = dev.launch
        dev.launch = self

    def __call__(self, name, *args):
        self.names.append(name)
        return self._launch(name, *args)


EPOCH_CASES = [((784, 33, 10), np.float64, {}), ((40, 33, 31, 10), np.float64, {"split": "2", "tile": "32x32"}),
               ((784, 33, 10), np.float32, {"split": "3"}), ((40, 33, 31, 10), np.float32, {"narrow": "off"})]


@pytest.mark.parametrize("layers,dtype,options", EPOCH_CASES,
                         ids=lambda v: "-".join(map(str, v)) if isinstance(v, tuple) else str(v))
def test_opencl_epochs_match_reference(layers, dtype, options):
    """Two epochs, batch 31 with an odd last batch of 19, shuffled order: θ equals the float64 reference's."""
    cls = opencl_trainer_class()
    spec = NetSpec(layers)
    rng = np.random.default_rng(len(layers))
    n, batch, lr = 112, 31, 0.8
    X = rng.random((n, spec.n_inputs))
    Y = np.eye(spec.n_outputs)[rng.integers(0, spec.n_outputs, n)]
    params = glorot_uniform(spec, 3, np.float64)
    expected = params.copy()
    with cls(spec, params.copy(dtype), dtype=dtype, options=options) as t:
        t.load_data(X.astype(dtype), Y.astype(dtype))
        counter = LaunchCounter(t.dev)
        for epoch in range(2):
            order = epoch_order(n, 7, epoch)
            t.train_epoch(order, batch, lr)
            expected = reference.train_epoch(expected, X, Y, order, batch, lr)
        got = t.get_weights()
        sizes = [min(batch, n - s) for s in range(0, n, batch)] * 2
        plans = [t.step_plan(b) for b in sizes]
        assert counter.names == [launch.kernel for plan in plans for p in plan for launch in p.launches]
        assert t.metadata()["kernel_launches_per_step"] == sum(len(p.launches) for p in t.step_plan(batch))
    assert expected.max_abs_diff(params) > 1e-2, "the reference barely moved: the comparison would be vacuous"
    tol = 1e-10 if dtype == np.float64 else FLOAT32_TOLERANCE
    diff = got.max_abs_diff(expected)
    assert diff < tol, f"{np.dtype(dtype).name}: parameters differ from the reference by {diff:.2e}"


# -- the plan --------------------------------------------------------------------------------------

NET1H, NET2H = NetSpec((784, 1024, 10)).shapes, NetSpec((784, 1024, 1024, 10)).shapes


def test_plan_of_a_net1h_step_on_an_h200_sized_device():
    plan = Planner(np.float32, 132)
    small = plan.step(NET1H, 32)
    assert [p.kind for p in small] == ["forward", "forward", "backprop", "update", "update"]
    assert [p.group for p in small] == ["32x32", NARROW, "32x32", NARROW, "64x64"]   # 785 x 1024: 208 64x64 tiles
    assert plan.launches_per_step(NET1H, 32) == 5 and plan.launches_per_step(NET2H, 32) == 8
    big = plan.step(NET1H, 4096)
    assert big[0].group == "128x128"                                # 32 x 8 blocks: every SM busy
    narrow_update = big[3]
    assert narrow_update.group == NARROW and narrow_update.splits == 8   # 33 blocks of 1025 rows: split the batch
    assert big[0].flops == 2 * 4096 * 784 * 1024
    assert plan.launches_per_step(NET1H, 4096) == sum(len(p.launches) for p in big) > 5
    assert narrow_params(np.float32).width >= 10                    # the output layer of both nets


def test_plan_options():
    assert Planner(np.float32, 132, narrow="off").forward(1, 64, 1024, 10).group != NARROW
    assert Planner(np.float32, 132, tile="64x64").forward(0, 4096, 784, 1024).group == "64x64"
    assert Planner(np.float32, 132, split="1").update(1, 1024, 10, 4096).splits == 1
    auto = Planner(np.float32, 132).update(1, 1024, 10, MIN_SPLIT_ROWS * 2)
    assert auto.splits == 2                                         # never shorter than MIN_SPLIT_ROWS
    assert Planner(np.float32, 1).update(0, 784, 1024, 4096).splits == 1   # one compute unit: nothing to fill
    with pytest.raises(UsageError, match="tile"):
        Planner(np.float32, 4, tile="256x256")
    with pytest.raises(UsageError, match="tile"):
        Planner(np.float64, 4, tile="128x128")                      # float32-only configuration
    with pytest.raises(UsageError, match="split"):
        Planner(np.float32, 4, split="0")
    with pytest.raises(UsageError, match="narrow"):
        Planner(np.float32, 4, narrow="yes")


def test_opencl_options_are_checked():
    cls = opencl_trainer_class()
    spec = NetSpec((5, 3, 2))
    params = glorot_uniform(spec)
    with pytest.raises(UsageError, match="tile"):
        cls(spec, params, options={"tile": "7x7"})
    with pytest.raises(UsageError, match="split"):
        cls(spec, params, options={"split": "-1"})
    with pytest.raises(UsageError, match="does not exist"):
        cls(spec, params, options={"device": "9:9"})


def test_opencl_unavailable_without_pyopencl(monkeypatch):
    from implementations.opencl_tiled import OpenCLTrainer

    monkeypatch.setitem(sys.modules, "pyopencl", None)      # as if it were not installed
    avail = OpenCLTrainer.availability()
    assert not avail and "pyopencl not installed" in avail.reason


# -- PyCUDA and cupy-tiled: availability here, the kit on a GPU -------------------------------------

def test_pycuda_availability_says_why():
    from implementations.pycuda_tiled import PyCudaTrainer

    avail = PyCudaTrainer.availability()
    if avail:
        return                                   # a GPU machine: test_kit_on_gpu does the work
    assert "pycuda not installed" in avail.reason or "no CUDA driver / no GPU" in avail.reason, avail.reason


def test_pycuda_unavailable_without_pycuda(monkeypatch):
    from implementations.pycuda_tiled import PyCudaTrainer

    monkeypatch.setitem(sys.modules, "pycuda", None)
    avail = PyCudaTrainer.availability()
    assert not avail and avail.reason.startswith("pycuda not installed")


def test_cupy_tiled_unavailable_without_cupy(monkeypatch):
    from implementations.cupy_tiled import CupyTiledTrainer

    monkeypatch.setitem(sys.modules, "cupy", None)
    avail = CupyTiledTrainer.availability()
    assert not avail and "cupy not installed" in avail.reason


@pytest.mark.parametrize("backend", ["pycuda", "cupy-tiled"])
def test_kit_on_gpu(backend):
    from pgdbench.core import registry
    from pgdbench.core.testing import check_backend

    avail = registry.entry(backend).availability()
    if not avail:
        pytest.skip(f"no GPU: {avail.reason}")
    check_backend(registry.get(backend))

"""Backend-specific tests of ``numba`` and ``torch`` (the shared checks live in test_conformance.py).

Small nets only: the numba kernels compile once per dtype (cached on disk),
and everything here reuses that compilation.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from pgdbench.core import testing
from pgdbench.core.model import NetSpec, epoch_order, glorot_uniform
from pgdbench.core.protocol import usable_cpus
from pgdbench.errors import BackendUnavailable, UsageError

SPEC = testing.SMALL_SPEC
TWO = pytest.mark.skipif(usable_cpus() < 2, reason="needs 2 usable CPUs")


def problem(dtype=np.float64, n=30):
    spec, params, X, Y = testing.small_problem(seed=3, n=n)
    return params.copy(dtype), X.astype(dtype), Y.astype(dtype)


# -- numba -----------------------------------------------------------------

@pytest.fixture(scope="module")
def nb():
    pytest.importorskip("numba", reason="numba is not installed (pip install -e '.[numba]')")
    import numba

    from implementations import _numba_kernels as kernels
    from implementations.numba_prange import NumbaTrainer
    return numba, kernels, NumbaTrainer


def test_numba_unavailable_without_numba(monkeypatch):
    from implementations.numba_prange import NumbaTrainer

    monkeypatch.setitem(sys.modules, "numba", None)  # what an uninstalled package looks like to find_spec
    avail = NumbaTrainer.availability()
    assert not avail and "'numba' is not installed" in avail.reason
    params, _, _ = problem()
    with pytest.raises(BackendUnavailable, match="numba"):
        NumbaTrainer(SPEC, params)


def test_numba_reports_threading_layer(nb):
    numba, _, NumbaTrainer = nb
    params, X, Y = problem()
    with NumbaTrainer(SPEC, params, dtype=np.float64, threads=1) as t:
        meta = t.metadata()
    assert meta["threading_layer"] in ("omp", "tbb", "workqueue"), meta
    assert meta["threading_layer"] == numba.threading_layer()
    assert meta["kernel"] == "blas" and meta["numba_threads"] == 1


@TWO
def test_numba_uses_its_threads_and_restores_the_setting(nb):
    numba, _, NumbaTrainer = nb
    params, X, Y = problem()
    numba.set_num_threads(1)
    seen = []
    with NumbaTrainer(SPEC, params, dtype=np.float64, threads=2) as t:
        t.load_data(X, Y)
        t.train_epoch(epoch_order(len(X), 0, 0), 10, 0.5, progress=lambda k: seen.append(numba.get_num_threads()))
        assert seen and set(seen) == {2}, f"numba threads during the epoch: {seen}"
        assert numba.get_num_threads() == 1, "the caller's numba thread count must be restored"
        # two private accumulators, both holding a thread-batch's gradient sum
        assert t._G[0].shape[0] == 2 and np.abs(t._G[0][1]).sum() > 0


def test_numba_refuses_more_threads_than_its_pool(nb, monkeypatch):
    numba, _, NumbaTrainer = nb
    params, _, _ = problem()
    too_many = numba.config.NUMBA_NUM_THREADS + 1
    monkeypatch.setenv("PGDBENCH_MAX_THREADS", str(too_many))
    with pytest.raises(UsageError, match="NUMBA_NUM_THREADS"):
        NumbaTrainer(SPEC, params, dtype=np.float64, threads=too_many)


def test_numba_compiles_in_the_constructor_not_in_the_epochs(nb):
    """Both dtypes compiled (one signature each, any depth); nothing compiles once training starts."""
    _, kernels, NumbaTrainer = nb
    trainers = [NumbaTrainer(spec, glorot_uniform(spec, 0, dt), dtype=dt, threads=1)
                for dt in (np.float32, np.float64) for spec in (SPEC, NetSpec((13, 5, 3)))]
    compiled = {sig[1].dtype for sig in kernels.run.signatures}
    assert {np.dtype(d) for d in ("float32", "float64")} <= {np.dtype(str(d)) for d in compiled}
    before = len(kernels.run.signatures)
    for t in trainers:
        X = np.random.default_rng(0).random((20, t.spec.n_inputs)).astype(t.dtype)
        Y = np.eye(t.spec.n_outputs, dtype=t.dtype)[np.arange(20) % t.spec.n_outputs]
        t.load_data(X, Y)
        t.train_epoch(epoch_order(20, 0, 0), 7, 0.1)
        t.predict(X)
        t.loss_and_gradients(X[:5], Y[:5])
        t.close()
    assert len(kernels.run.signatures) == before, "a timed epoch compiled something"
    assert before <= 2, f"one compilation per dtype is expected, got {kernels.run.signatures}"


@pytest.mark.parametrize("threads", [1, pytest.param(2, marks=TWO)])
@pytest.mark.parametrize("kernel,update", [("loops", "reduce"), ("blas", "rows"), ("loops", "rows")])
def test_numba_variants_match_the_reference(nb, threads, kernel, update):
    """The non-default variants are held to the same float64 and float32 checks as the default."""
    _, _, NumbaTrainer = nb

    class Variant(NumbaTrainer):
        reference_options = {"kernel": kernel, "update": update}

    testing.check_gradients(Variant, threads)
    for dt in (np.float64, np.float32):
        testing.check_training_steps(Variant, threads, dt)


def test_numba_rows_update_keeps_no_private_sums(nb):
    _, _, NumbaTrainer = nb
    params, X, Y = problem()
    with NumbaTrainer(SPEC, params, dtype=np.float64, threads=2 if usable_cpus() >= 2 else 1,
                      options={"update": "rows"}) as t:
        t.load_data(X, Y)
        t.train_epoch(epoch_order(len(X), 0, 0), 10, 0.5)
        assert t._G[0].shape[0] == 1, "update=rows must not allocate per-thread weight accumulators"


def test_numba_rejects_unknown_kernel(nb):
    _, _, NumbaTrainer = nb
    params, _, _ = problem()
    with pytest.raises(UsageError, match="kernel"):
        NumbaTrainer(SPEC, params, options={"kernel": "fortran"})
    with pytest.raises(UsageError, match="update"):
        NumbaTrainer(SPEC, params, options={"update": "atomic"})


def test_numba_pads_thread_slabs(nb):
    """Consecutive threads' slabs are ≥ 64 bytes apart for any width (no shared cache lines)."""
    from implementations.numba_prange import _pad_rows

    for cols in (1, 3, 10, 15, 16, 17, 1024):
        assert _pad_rows(cols) * cols >= 16


# -- torch -----------------------------------------------------------------

@pytest.fixture(scope="module")
def th():
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[torch]')")
    from implementations.torch_ref import TorchTrainer
    return torch, TorchTrainer


def test_torch_unavailable_without_torch(monkeypatch):
    """With torch absent, the backend is listed as unavailable with the reason, and refuses to start."""
    from implementations.torch_ref import TorchTrainer

    monkeypatch.setitem(sys.modules, "torch", None)  # what an uninstalled package looks like to find_spec
    avail = TorchTrainer.availability()
    assert not avail and "'torch' is not installed" in avail.reason
    params, _, _ = problem()
    with pytest.raises(BackendUnavailable, match="torch"):
        TorchTrainer(SPEC, params)


def test_torch_starts_from_the_given_parameters(th):
    torch, TorchTrainer = th
    for dt in (np.float32, np.float64):
        params = glorot_uniform(SPEC, 5, dt)
        with TorchTrainer(SPEC, params, dtype=dt, options={"device": "cpu"}) as t:
            assert t.get_weights().max_abs_diff(params) == 0.0
            assert all(w.dtype == (torch.float32 if dt == np.float32 else torch.float64) for w in t.W)
            params.weights[0][...] = 7.0  # the trainer holds a copy
            assert t.get_weights().max_abs_diff(glorot_uniform(SPEC, 5, dt)) == 0.0


@TWO
def test_torch_sets_and_restores_its_thread_count(th):
    torch, TorchTrainer = th
    params, X, Y = problem()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    seen = []
    try:
        with TorchTrainer(SPEC, params, dtype=np.float64, threads=2, options={"device": "cpu"}) as t:
            t.load_data(X, Y)
            t.train_epoch(epoch_order(len(X), 0, 0), 10, 0.5, progress=lambda k: seen.append(torch.get_num_threads()))
            assert set(seen) == {2}, f"torch threads during the epoch: {seen}"
            assert torch.get_num_threads() == 1, "the caller's torch thread count must be restored"
            t.predict(X)
            t.loss_and_gradients(X, Y)
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_torch_device_option(th):
    torch, TorchTrainer = th
    params, _, _ = problem()
    with pytest.raises(UsageError, match="device"):
        TorchTrainer(SPEC, params, options={"device": "tpu"})
    if torch.cuda.is_available():
        with TorchTrainer(SPEC, params, options={"device": "auto"}) as t:
            assert t.device.type == "cuda"
    else:
        with pytest.raises(BackendUnavailable, match="no CUDA"):
            TorchTrainer(SPEC, params, options={"device": "cuda"})
        with TorchTrainer(SPEC, params, options={"device": "auto"}) as t:
            assert t.metadata()["device"] == "cpu"


def test_torch_on_gpu_matches_the_reference(th):
    torch, TorchTrainer = th
    if not torch.cuda.is_available():
        pytest.skip("no GPU: torch.cuda.is_available() is False")

    class OnGpu(TorchTrainer):
        reference_options = {"device": "cuda"}

    testing.check_training_steps(OnGpu, 1, np.float64)

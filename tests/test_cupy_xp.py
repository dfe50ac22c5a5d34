"""The cupy backend without a GPU: its array code (implementations/xp_mlp.py) run with NumPy,
and its availability check. On a machine with a CUDA device the last test runs the kit on CuPy."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from implementations.cupy_xp import CupyTrainer
from implementations.xp_mlp import NumpyXpTrainer
from pgdbench.core import reference
from pgdbench.core.model import NetSpec, epoch_order, glorot_uniform
from pgdbench.core.testing import FLOAT32_TOLERANCE, check_backend


def test_xp_code_path_passes_the_kit_with_numpy():
    """protocol, gradients vs finite differences, float64/float32 steps vs the reference, convergence."""
    check_backend(NumpyXpTrainer)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_xp_epochs_match_reference_on_awkward_widths(dtype):
    spec = NetSpec((33, 31, 17, 10))
    rng = np.random.default_rng(11)
    n, batch, lr = 101, 33, 0.7
    X, Y = rng.random((n, 33)), np.eye(10)[rng.integers(0, 10, n)]
    params = glorot_uniform(spec, 4, np.float64)
    expected = params.copy()
    with NumpyXpTrainer(spec, params.copy(dtype), dtype=dtype) as t:
        t.load_data(X.astype(dtype), Y.astype(dtype))
        for epoch in range(2):
            order = epoch_order(n, 1, epoch)
            t.train_epoch(order, batch, lr)
            expected = reference.train_epoch(expected, X, Y, order, batch, lr)
        got = t.get_weights()
    assert expected.max_abs_diff(params) > 1e-2
    tol = 1e-10 if dtype == np.float64 else FLOAT32_TOLERANCE
    assert got.max_abs_diff(expected) < tol


def test_cupy_availability_says_why():
    avail = CupyTrainer.availability()
    if avail:
        return                                   # a GPU machine: test_cupy_on_gpu does the work
    try:
        import cupy  # noqa: F401
    except ImportError:
        assert "cupy not installed" in avail.reason
    else:
        assert "no CUDA device" in avail.reason or "cannot use CUDA" in avail.reason, avail.reason


def test_cupy_unavailable_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    avail = CupyTrainer.availability()
    assert not avail and "cupy not installed" in avail.reason


def test_cupy_on_gpu():
    avail = CupyTrainer.availability()
    if not avail:
        pytest.skip(f"no GPU: {avail.reason}")
    check_backend(CupyTrainer)

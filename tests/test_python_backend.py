"""The pure-Python backend: LINALGLIB against NumPy, and no NumPy inside the training loop."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from implementations import linalglib as la
from implementations.python_naive import PythonTrainer
from pgdbench.core import reference
from pgdbench.core.model import NetSpec, epoch_order, glorot_uniform

rng = np.random.default_rng(5)
M = rng.standard_normal((7, 5))
u, v = rng.standard_normal(7), rng.standard_normal(5)


def close(got, expected):
    np.testing.assert_allclose(np.array(got), expected, rtol=1e-13, atol=1e-15)


def test_products_match_numpy():
    close(la.dot(u.tolist(), u.tolist()), u @ u)
    close(la.matvec(M.tolist(), v.tolist()), M @ v)
    close(la.vecmat(u.tolist(), M.tolist()), u @ M)


def test_in_place_updates_match_numpy():
    A = M.tolist()
    la.add_outer_inplace(A, u.tolist(), v.tolist())
    close(A, M + np.outer(u, v))
    y = v.tolist()
    la.axpy_inplace(y, -0.25, (2 * v).tolist())
    close(y, v - 0.5 * v)
    la.scale_inplace(y, 4.0)
    close(y, 2 * v)


def test_elementwise_match_numpy():
    close(la.add(v.tolist(), (3 * v).tolist()), 4 * v)
    close(la.sub(v.tolist(), (3 * v).tolist()), -2 * v)
    close(la.hadamard(v.tolist(), v.tolist()), v * v)
    close(la.sum_of_squares(v.tolist()), v @ v)
    z = np.array([-1000.0, -30.0, -1.5, 0.0, 2.0, 40.0, 1000.0])   # no OverflowError at either end
    with np.errstate(over="ignore"):
        close(la.sigmoid(z.tolist()), reference.sigmoid(z))
        a = reference.sigmoid(z)
    close(la.sigmoid_prime_from_output(a.tolist()), a * (1 - a))


class NoNumpy:
    def __getattr__(self, name):
        raise AssertionError(f"np.{name} used inside the training loop")


def test_the_training_loop_calls_no_numpy(monkeypatch):
    """While training: the backend's `np` is booby-trapped, every Python function and built-in method
    called is checked for the module it belongs to, and the state is plain lists of floats."""
    import implementations.python_naive as backend

    assert {v.__name__ for v in vars(la).values() if type(v).__name__ == "module"} == {"math"}
    spec = NetSpec((6, 4, 3))
    params = glorot_uniform(spec, 0, np.float64)
    X = rng.random((10, 6))
    Y = np.eye(3)[rng.integers(0, 3, 10)]
    t = PythonTrainer(spec, params, dtype=np.float64)
    t.load_data(X, Y)
    order = epoch_order(10, 0, 0).tolist()
    seen = set()

    def profiler(frame, event, arg):
        if event == "call":
            seen.add(frame.f_globals.get("__name__", ""))
        elif event == "c_call":
            owner = getattr(arg, "__self__", None)
            seen.add(getattr(arg, "__module__", None) or type(owner).__module__)

    monkeypatch.setattr(backend, "np", NoNumpy())
    sys.setprofile(profiler)
    try:
        t._train(order, 4, 0.5)
    finally:
        sys.setprofile(None)
    monkeypatch.undo()
    assert all(type(x) is float for W in t.W for row in W for x in row)
    assert all(type(x) is float for b in t.b for x in b)
    assert "implementations.linalglib" in seen       # the profiler does see the calls
    numpy_calls = sorted(m for m in seen if m and m.split(".")[0] == "numpy")
    assert not numpy_calls, f"NumPy called inside the training loop: {numpy_calls}"
    expected = reference.train_epoch(params, X, Y, np.array(order), 4, 0.5)
    assert t.get_weights().max_abs_diff(expected) < 1e-12


def test_pure_python_forward_matches_the_reference():
    spec = NetSpec((6, 4, 3))
    params = glorot_uniform(spec, 1, np.float64)
    X = rng.random((5, 6))
    t = PythonTrainer(spec, params, dtype=np.float64)
    np.testing.assert_allclose(t.predict_pure_python(X), reference.forward(params, X)[-1], rtol=1e-13)
    np.testing.assert_allclose(t.predict(X), reference.forward(params, X)[-1], rtol=1e-13)


def test_is_serial_and_projected():
    assert PythonTrainer.projected and not PythonTrainer.uses_threads
    spec = NetSpec((6, 4, 3))
    from pgdbench.errors import UsageError
    with pytest.raises(UsageError, match="serial"):
        PythonTrainer(spec, glorot_uniform(spec), threads=2)

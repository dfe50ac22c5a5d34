"""The elementwise strategies and the vectorisable exp of pgdbench.core.fused_numba: accuracy in ulps over the
whole range, saturation of σ, NaN, and the same results as the NumPy strategy."""
from __future__ import annotations

import numpy as np
import pytest

from pgdbench.core import elementwise
from pgdbench.errors import UsageError

numba = pytest.importorskip("numba", reason="numba is an optional extra: the compiled strategy needs it")
from pgdbench.core import fused_numba  # noqa: E402  (imports numba)


def ulps(got: np.ndarray, exact: np.ndarray, dtype) -> np.ndarray:
    """|got − exact| in units of the last place of ``exact`` rounded to ``dtype`` (exact: long double)."""
    with np.errstate(over="ignore"):
        rounded = exact.astype(dtype)
    finite = np.isfinite(rounded) & (rounded != 0)
    spacing = np.spacing(np.abs(rounded[finite])).astype(np.longdouble)
    return np.abs(got[finite].astype(np.longdouble) - exact[finite]) / spacing


def vexp(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    fused_numba.exp_array(x, out)
    return out


def test_float32_exp_is_within_one_ulp_over_the_whole_range():
    # every float32 from −105 to 89 on a fine grid (≈ 4 million points), the limits of the clamp included
    x = np.concatenate([np.linspace(-105, 89, 4_000_001, dtype=np.float32),
                        np.float32([-103.972, -103.28, -87.34, 0, 1e-30, -1e-30, 88.72, 88.7228])])
    got = vexp(x)
    with np.errstate(over="ignore", under="ignore"):
        exact = np.exp(x.astype(np.longdouble))
    normal = exact >= np.finfo(np.float32).tiny
    assert ulps(got[normal], exact[normal], np.float32).max() <= 1.0
    # subnormal results: the second scaling rounds once more, still within one ulp of the subnormal grid
    sub = ~normal & (exact.astype(np.float32) > 0)
    assert np.abs(got[sub].astype(np.longdouble) - exact[sub]).max() <= np.float32(2 ** -149)
    # overflow to inf and underflow to 0 exactly where the correctly rounded result does
    with np.errstate(over="ignore"):
        assert np.array_equal(np.isinf(got), np.isinf(exact.astype(np.float32)))
        assert np.array_equal(got == 0, exact.astype(np.float32) == 0)


def test_float64_exp_is_within_one_ulp_on_a_dense_sample_of_its_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-750, 712, 2_000_001), rng.uniform(-1, 1, 200_000),
                        [-745.13, -708.4, 0.0, 709.78, 709.7827]])
    got = vexp(x)
    with np.errstate(over="ignore", under="ignore"):
        exact = np.exp(x.astype(np.longdouble))
    normal = exact >= np.finfo(np.float64).tiny
    if np.finfo(np.longdouble).nmant > 52:   # x86: 64-bit mantissa, a reference finer than the result
        assert ulps(got[normal], exact[normal], np.float64).max() <= 1.0
    else:                                     # no wider type: against NumPy's exp, itself within an ulp
        assert ulps(got[normal], np.exp(x[normal]).astype(np.longdouble), np.float64).max() <= 2.0
    with np.errstate(over="ignore"):
        assert np.array_equal(np.isinf(got), np.isinf(exact.astype(np.float64)))
        assert np.array_equal(got == 0, exact.astype(np.float64) == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype):
    got = vexp(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype))
    assert np.isnan(got[0]) and got[1] == np.inf and got[2] == 0 and got[3] == 1 and got[4] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_saturates_exactly_and_never_makes_a_nan(dtype):
    # where e^(−z) overflows σ is exactly 0, where e^(−z) < half an ulp of 1 it is exactly 1 (as NumPy's σ)
    zeros, ones = ([-np.inf, -1e30, -1000, -200, -104, -90], [17, 40, 90, 200, 1000, 1e30, np.inf]) \
        if dtype == np.float32 else ([-np.inf, -1e30, -1000, -720], [40, 90, 200, 1000, 1e30, np.inf])
    middle = [-80, -40, -17, -1, 0, 1, 10]
    z = np.array([zeros + middle + ones + [np.nan]], dtype)
    got = z.copy()
    fused_numba.bias_sigmoid(got, np.zeros(z.shape[1], dtype), dtype(1))
    got = got[0]
    assert np.all(got[:len(zeros)] == 0) and np.all(got[len(zeros) + len(middle):-1] == 1)
    assert np.isnan(got[-1]) and not np.isnan(got[:-1]).any()            # NaN only from NaN
    assert np.all((got[:-1] >= 0) & (got[:-1] <= 1))
    mid = z[0, len(zeros):len(zeros) + len(middle)].astype(np.longdouble)
    assert ulps(got[len(zeros):len(zeros) + len(middle)], 1 / (1 + np.exp(-mid)), dtype).max() <= 2.0


def test_the_sigmoid_is_as_accurate_as_numpys_over_the_range():
    z = np.linspace(-87, 100, 1001 * 999, dtype=np.float32).reshape(1001, 999)    # σ normal, not subnormal
    got = z.copy()
    fused_numba.bias_sigmoid(got, np.zeros(999, np.float32), np.float32(1))
    exact = 1 / (1 + np.exp(-z.astype(np.longdouble)))
    ref = z.copy()
    elementwise.get("numpy").bias_sigmoid(ref, np.zeros(999, np.float32))
    ours, numpys = ulps(got, exact, np.float32).max(), ulps(ref, exact, np.float32).max()
    assert ours <= 3.0 and ours <= numpys + 0.5, (ours, numpys)   # here: 2.4 against NumPy's 3.4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_passes_equal_the_numpy_ones(dtype):
    rng = np.random.default_rng(1)
    fast, slow = elementwise.get("numba"), elementwise.get("numpy")
    a = rng.random((37, 53)).astype(dtype)
    y = rng.random((37, 53)).astype(dtype)
    z = (rng.standard_normal((37, 53)) * 6).astype(dtype)
    b = rng.standard_normal(53).astype(dtype)
    tol = dict(rtol=3e-6 if dtype == np.float32 else 1e-14, atol=1e-7 if dtype == np.float32 else 1e-16)
    for strategy in (fast, slow):
        strategy.warm(dtype)
    out = [z.copy(), z.copy()]
    for s, o in zip((fast, slow), out):
        s.bias_sigmoid(o, b)
    np.testing.assert_allclose(*out, **tol)
    out = [np.empty_like(a), np.empty_like(a)]
    for s, o in zip((fast, slow), out):
        s.output_delta(o, a, y, np.empty_like(a), 0.37)
    np.testing.assert_allclose(*out, **tol)
    out = [y.copy(), y.copy()]
    for s, o in zip((fast, slow), out):
        s.times_sigmoid_prime(o, a, np.empty_like(a))
    np.testing.assert_allclose(*out, **tol)
    g = rng.random((3, 37, 53)).astype(dtype)
    out = [a.copy(), a.copy()]
    for s, o in zip((fast, slow), out):
        s.subtract_sums(o[5:20], g, 5)
    np.testing.assert_allclose(out[0][5:20], a[5:20] - g[:, 5:20].sum(axis=0), **tol)
    np.testing.assert_allclose(*out, **tol)


def test_kernels_are_vectorised():
    """The point of the exp: LLVM turns the sigmoid's loop into packed (SIMD) instructions."""
    kernel = numba.njit(fastmath=fused_numba.FLAGS, error_model="numpy")(fused_numba.bias_sigmoid.py_func)
    kernel(np.zeros((2, 16), np.float32), np.zeros(16, np.float32), np.float32(1))
    asm = "".join(kernel.inspect_asm().values())
    assert "divps" in asm and "ps" in asm.split("divps")[0][-400:] or "vdivps" in asm, "σ's division is not packed"


def test_unknown_and_unavailable_strategies_are_refused_in_one_line(monkeypatch):
    with pytest.raises(UsageError, match="unknown elementwise strategy 'svml'; known: auto, numba, numpy"):
        elementwise.get("svml")
    monkeypatch.setattr(elementwise, "numba_missing", lambda: "numba is not installed (pip install numba)")
    assert elementwise.default_name() == "numpy"
    with pytest.raises(UsageError, match="'numba' is not available here: numba is not installed"):
        elementwise.get("numba")

"""GEMM providers (-o gemm=...): products and accumulating updates equal NumPy's, every backend built on the shared
step passes the conformance kit under every provider found here, and a missing one is refused in one line."""
from __future__ import annotations

import numpy as np
import pytest

from pgdbench.core import gemm, registry, testing
from pgdbench.errors import UsageError
from tests.test_cli import pgdbench

FOUND = [name for name, why in gemm.available().items() if why is None]


def provider_params():
    """Every provider; those missing here are skipped with the reason (CI has no oneMKL: pip install mkl)."""
    return [pytest.param(name, id=name, marks=() if why is None else pytest.mark.skip(reason=f"{name}: {why}"))
            for name, why in gemm.available().items()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", provider_params())
def test_products_and_updates_equal_numpys(name, dtype):
    g = gemm.get(name)
    rng = np.random.default_rng(0)
    a, b = rng.random((33, 17)).astype(dtype), rng.random((17, 29)).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for x, y in ((a, b), (np.ascontiguousarray(a.T).T, b), (a, np.ascontiguousarray(b.T).T),
                 (np.ascontiguousarray(a.T).T, np.ascontiguousarray(b.T).T)):
        out = np.full((33, 29), np.nan, dtype)
        g.matmul(x, y, out)
        np.testing.assert_allclose(out, a @ b, **tol)
    # W[r0:r1] += α · A[:, r0:r1]ᵀ D: a block of rows of W, a block of columns of A, transposed (update=rows)
    W = rng.random((40, 29)).astype(dtype)
    A, D = rng.random((11, 40)).astype(dtype), rng.random((11, 29)).astype(dtype)
    want = W.copy()
    want[7:30] += -0.25 * A[:, 7:30].T @ D
    g.update(A[:, 7:30].T, D, W[7:30], -0.25)
    np.testing.assert_allclose(W, want, **tol)
    g.matmul(a[:0], b, np.empty((0, 29), dtype))          # nothing to do, and no error


BACKENDS = ("numpy", "threads", "hybrid", "averaging", "mpi", "numba")


@pytest.mark.parametrize("name", provider_params())
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_step_backend_passes_the_kit_under_every_provider(backend, name):
    _passes_the_kit(backend, {"gemm": name})


def _passes_the_kit(backend: str, options: dict) -> None:
    """Gradients by finite differences and whole training steps against the float64 reference, in float64 and
    float32, at the backend's most threads, under ``options``; skipped (with why) where the backend cannot run."""
    entry = registry.entries()[backend]
    if not entry.availability():
        pytest.skip(f"{backend}: {entry.availability().reason}")
    cls = testing.with_options(entry.cls, options)
    threads = testing.thread_counts(cls)[-1]
    testing.check_gradients(cls, threads)
    for dtype in (np.float64, np.float32):
        testing.check_training_steps(cls, threads, dtype)


@pytest.mark.parametrize("name", provider_params())
@pytest.mark.parametrize("options", [{"reduce": "rows"}, {"reduce": "main", "elementwise": "numpy"}],
                         ids=["rows", "main-numpy"])
def test_threads_reductions_pass_the_kit_under_every_provider(options, name):
    cls = testing.with_options(registry.get("threads"), {**options, "gemm": name})
    for threads in testing.thread_counts(cls):
        for dtype in (np.float64, np.float32):
            testing.check_training_steps(cls, threads, dtype)


def test_an_unknown_provider_names_the_known_ones():
    with pytest.raises(UsageError, match="unknown GEMM provider 'blis'; known: auto, openblas, mkl, numpy"):
        gemm.get("blis")


def test_an_unavailable_provider_says_why(monkeypatch):
    monkeypatch.setattr(gemm, "mkl_path", lambda: None)
    gemm._probe.cache_clear()
    try:
        assert "pip install mkl" in gemm.available()["mkl"]
        with pytest.raises(UsageError, match="GEMM provider 'mkl' is not available here: oneMKL not found"):
            gemm.get("mkl")
    finally:
        gemm._probe.cache_clear()


def test_auto_is_numpys_openblas_where_numpy_has_it():
    assert gemm.default_name() == ("openblas" if "openblas" in FOUND else "numpy")
    assert gemm.get("auto").name == gemm.default_name()


def test_list_shows_the_providers_and_results_record_them(tmp_path):
    out = pgdbench("list", "-v").stdout
    assert "GEMM providers" in out and "openblas" in out and "mkl" in out
    results = tmp_path / "b.jsonl"
    pgdbench("bench", "--dataset", "synthetic:300", "--net", "784,16,10", "--batch-size", "50", "--threads", "1",
              "-o", "gemm=" + ",".join(FOUND), "--results", str(results), "--quiet")
    import json
    bench = [json.loads(line) for line in results.read_text().splitlines()]
    meta = [r["backend_metadata"]["gemm"] for r in bench
            if r.get("kind") == "bench" and r["status"] == "ok" and r["options"]]
    assert sorted(m["provider"] for m in meta) == sorted(FOUND)
    assert all(m["version"] and "architecture" in m for m in meta)


@pytest.mark.parametrize("strategy", ["numpy", "numba"])
@pytest.mark.parametrize("backend", ["numpy", "hybrid", "averaging", "mpi-averaging"])
def test_both_elementwise_strategies_pass_the_kit(backend, strategy):
    from pgdbench.core import elementwise

    if elementwise.available()[strategy]:
        pytest.skip(f"elementwise={strategy}: {elementwise.available()[strategy]}")
    _passes_the_kit(backend, {"elementwise": strategy})

"""The machine's peak: measured GEMM throughput, so every report can state a fraction of it.

``pgdbench peak`` times square matrix products through NumPy's BLAS for each
thread count and dtype, keeps the best of several repeats, and stores the
figures in the user cache (keyed by host and CPU) for later reports.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from pgdbench.core.files import atomic_write_text
from pgdbench.data.sources import cache_dir
from pgdbench.harness.machine import cpu_model, machine_info


def gemm_gflops(n: int, dtype, threads: int, repeats: int = 5) -> float:
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.random((n, n)).astype(dtype)
    b = rng.random((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    best = float("inf")
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=c)  # start the BLAS threads and touch the memory
        for _ in range(repeats):
            start = time.perf_counter()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def peak_file() -> Path:
    return cache_dir() / "peak.json"


def machine_key() -> str:
    import platform
    return f"{platform.node()}|{cpu_model()}"


def measure(threads: list[int], size: int = 2048, repeats: int = 5) -> dict:
    results = {"size": size, "machine": machine_info()["cpu_model"], "gflops": {}}
    for dtype in (np.float32, np.float64):
        for t in threads:
            results["gflops"][f"{np.dtype(dtype).name}/{t}"] = gemm_gflops(size, dtype, t, repeats)
    return results


def save(results: dict) -> Path:
    path = peak_file()
    stored = load_all()
    stored[machine_key()] = results
    atomic_write_text(path, json.dumps(stored, indent=1))
    return path


def load_all() -> dict:
    try:
        return json.loads(peak_file().read_text())
    except (OSError, ValueError):
        return {}


def lookup(dtype: str, threads: int) -> float | None:
    """Stored peak GFLOP/s for this machine, or None if `pgdbench peak` has not been run here."""
    entry = load_all().get(machine_key())
    return entry["gflops"].get(f"{dtype}/{threads}") if entry else None


def fraction_fields(gflops: float, dtype: str, threads: int) -> dict:
    """The record's fields about the peak: the stored peak for this dtype and thread count, and the fraction."""
    machine_peak = lookup(dtype, threads)
    return {"peak_gflops": machine_peak, "fraction_of_peak": gflops / machine_peak if machine_peak else None}

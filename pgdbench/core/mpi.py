"""MPI plumbing shared by the MPI backends, ``pgdbench dbn`` and ``pgdbench mpi-bench``.

Nothing here imports mpi4py at module level: the rank and size of a launched
job are read from the environment the launcher sets (mpich/Hydra, Intel MPI
and Slurm's PMI set ``PMI_RANK``/``PMI_SIZE``; Open MPI sets
``OMPI_COMM_WORLD_RANK``/``OMPI_COMM_WORLD_SIZE``), so that the command line
can decide who prints and who writes files without initialising MPI. mpi4py
is imported only by :func:`comm` and :func:`abort`.

Failure policy for jobs of more than one rank: a rank that fails or is
interrupted (Ctrl-C, or SIGTERM, which :func:`install_abort_hook` turns into
a KeyboardInterrupt) prints one line naming itself and calls
``MPI.COMM_WORLD.Abort``, which makes the launcher kill every other rank
(which would otherwise wait forever in a collective for a partner that has
gone: a rank that merely exits leaves its partners spinning in Allreduce).
Only rank 0 writes results and parameter files, each written atomically, so
an aborted job leaves nothing half-written.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Optional

from pgdbench.core.protocol import install_hint
from pgdbench.errors import BackendUnavailable

ABORT_GRACE_SECONDS = 0.5  # time for mpiexec to forward the aborting rank's last line
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def _env_int(names) -> Optional[int]:
    for name in names:
        value = os.environ.get(name)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                continue
    return None


def launched() -> bool:
    """Whether mpiexec (or another PMI/PMIx launcher) started this process."""
    return any(name in os.environ for name in (*_RANK_VARS, "PMI_FD"))


def launched_rank() -> int:
    """This process's rank in the job that launched it (0 when not launched by mpiexec)."""
    return _env_int(_RANK_VARS) or 0


def launched_size() -> int:
    """Number of ranks of the job that launched this process (1 when not launched by mpiexec)."""
    return _env_int(_SIZE_VARS) or 1


def is_root() -> bool:
    """True on rank 0 (and in a plain single process): the one that prints and writes files."""
    return launched_rank() == 0


def comm():
    """``MPI.COMM_WORLD`` (initialises MPI on first use; a single process becomes a 1-rank job)."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise BackendUnavailable(f"mpi4py cannot be imported ({exc}); {install_hint('mpi4py')}") from None
    return MPI.COMM_WORLD


def local_size(comm) -> int:
    """Ranks of ``comm`` on this host (collective: every rank must call it)."""
    from mpi4py import MPI

    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return local.Get_size()
    finally:
        local.Free()


def abort(code: int, message: str = "", what: str = "failed") -> None:
    """Print one line naming this rank, ``what`` happened to it and ``message`` to stderr, and abort the whole MPI
    job with ``code``."""
    rank, size = launched_rank(), launched_size()
    line = f"pgdbench: rank {rank} of {size} {what}{': ' + message if message else ''}; aborting the MPI job\n"
    sys.stderr.flush()
    os.write(2, line.encode())  # one write: mpiexec would interleave the text and its newline with other ranks
    # mpiexec forwards a rank's stderr asynchronously; aborting at once let it tear the job down before the
    # line above was forwarded (seen on a loaded 2-core CI machine: the interrupted rank said nothing)
    time.sleep(ABORT_GRACE_SECONDS)
    try:
        from mpi4py import MPI
        MPI.COMM_WORLD.Abort(code)
    finally:  # no mpi4py (or Abort returned): at least this process ends
        os._exit(code)


def from_root(value):
    """Rank 0's ``value`` on every rank of a launched job (a collective: every rank calls it at the same point);
    ``value`` itself in a single process."""
    if launched_size() <= 1:
        return value
    return comm().bcast(value, root=0)


_hook_installed = False


def install_abort_hook() -> None:
    """Under a job of more than one rank, make an uncaught exception or a SIGTERM on any rank abort the whole job.

    Without it a failing rank would exit while the others wait in a collective
    for a partner that will never come. SIGTERM raises KeyboardInterrupt, as
    Ctrl-C does, so that a terminated rank unwinds (rank 0 marks its results
    interrupted) and then aborts the job like an interrupted one.
    """
    global _hook_installed
    if _hook_installed or launched_size() <= 1:
        return
    previous = sys.excepthook

    def hook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):
            abort(130, "", "interrupted")
        previous(kind, value, tb)  # the traceback first, then the one line and the abort
        abort(1, f"{kind.__name__}: {value}")

    sys.excepthook = hook
    if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    _hook_installed = True


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def share(n: int, rank: int, size: int) -> tuple[int, int]:
    """[lo, hi) of rank's part when n items are split into ``size`` contiguous parts differing by at most one."""
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def flat_views(shapes, dtype):
    """One contiguous buffer and views of it shaped like ``shapes`` (in order).

    Parameters or gradients kept this way cross the network as one message:
    one Allreduce or Bcast per step instead of one per array.
    """
    import numpy as np

    sizes = [int(np.prod(s)) for s in shapes]
    flat = np.zeros(sum(sizes), dtype)
    views, offset = [], 0
    for shape, size in zip(shapes, sizes):
        views.append(flat[offset:offset + size].reshape(shape))
        offset += size
    return flat, views

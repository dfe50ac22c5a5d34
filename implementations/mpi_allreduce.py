"""``mpi``: synchronous data-parallel minibatch GD across the ranks of an MPI job.

Kamra et al.'s (*Parallel Gradient Descent*) Algorithm 5 with processes instead of threads: every rank holds the
training data and the same parameters; the core's example order is the same on
every rank because it is derived from the seed alone. For each minibatch of B
examples, rank r takes its contiguous slice (the slices differ by at most one
example), computes the *summed* gradient of its slice with NumPy/BLAS, the ranks
add their sums with one in-place ``Allreduce`` of a single flat buffer, and
every rank subtracts the same (η/B)·Σ gradient. The parameters therefore stay
identical on all ranks and equal single-process training up to the order of
floating-point additions.

Launch it with ``mpiexec -n K pgdbench train --backend mpi ...``; run without
mpiexec it is a 1-rank job (MPI's singleton start), which is how the shared
conformance kit checks it. ``threads`` is the number of BLAS threads per rank.

Why it is fast by design:

* the local arithmetic is the ``numpy`` backend's step
  (:class:`pgdbench.core.backprop.Backprop`): preallocated activations and
  deltas, in-place elementwise work (split over the BLAS threads in blocks of
  rows), η/B folded into δ before the weight GEMM, so the reduced buffer
  already holds the step;
* all weight and bias gradients are views of one contiguous buffer, so a step
  costs exactly one collective (latency is paid once, not once per layer) and
  the buffer is reduced in place (``MPI.IN_PLACE``): no allocation, no copy;
* a 1-rank job skips the collective.

Option ``local``: which backend computes each rank's gradient. ``numpy`` (the
default) is the fast path above. Any other registered backend (``-o
local=torch``, ``-o local=numba``, ...) is driven through the protocol alone:
each rank's local trainer is handed the current parameters, returns the mean
gradient of the rank's slice (``loss_and_gradients``), which is rescaled to
the slice's share of the minibatch sum and reduced as above. That costs one
parameter copy per step, and is exact: the kit's checks cover it.
"""
from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np

from implementations.cpu_workers import STEP_OPTIONS, BackpropEvaluation, RowBlocks, step_metadata, step_parts
from pgdbench.core import mpi, registry
from pgdbench.core.backprop import Backprop
from pgdbench.core.model import Parameters, batch_bounds
from pgdbench.core.mpi import flat_views
from pgdbench.core.protocol import AVAILABLE, Parallelism, Trainer, install_hint, unavailable, usable_cpus
from pgdbench.errors import UsageError


@functools.lru_cache(maxsize=1)
def mpi_library_loads():
    """Whether mpi4py can load an MPI library (``pip install mpi4py`` alone has none).

    The import is tried in a child process: importing ``mpi4py.MPI`` initialises
    MPI, which ``pgdbench list`` must not do to itself. Inside a job started by
    mpiexec the launcher vouches for the library, and a child that inherited
    the launcher's connection variables could confuse it: no probe there.
    """
    if mpi.launched():
        return AVAILABLE
    probe = subprocess.run([sys.executable, "-c", "from mpi4py import MPI; MPI.Get_library_version()"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
        return unavailable(f"mpi4py cannot load an MPI library ({last}); {install_hint('mpich')} brings mpich")
    return AVAILABLE


def mpi_metadata(comm, threads: int) -> dict:
    """Facts for results files. Collective (every rank must call it): it counts the ranks on this host."""
    from mpi4py import MPI

    on_this_host = mpi.local_size(comm)
    return {"ranks": comm.Get_size(), "ranks_on_this_host": on_this_host, "blas_threads_per_rank": threads,
            "oversubscribed": on_this_host * threads > usable_cpus(),
            "mpi_library": MPI.Get_library_version().splitlines()[0].strip(),
            "mpi4py": __import__("mpi4py").__version__}


class MpiAllreduceTrainer(BackpropEvaluation, Trainer):
    description = "MPI ranks split every minibatch; summed gradients Allreduced (sync data-parallel, Alg. 5)"
    parallelism = Parallelism.PROCESSES
    device = "cluster"
    serial_counterpart = "numpy"
    requires = ("mpi4py",)
    options = {"local": "numpy", **STEP_OPTIONS}

    @classmethod
    def availability(cls):
        avail = super().availability()
        return mpi_library_loads() if avail else avail

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        own = params.copy(self.dtype)
        self.W, self.b = own.weights, own.biases
        self.local = None
        if self.opts["local"] != "numpy":
            if self.opts["local"] in ("mpi", "mpi-averaging"):
                raise UsageError(f"option local={self.opts['local']}: the local backend cannot itself be an MPI backend")
            self.local = registry.get_available(self.opts["local"])(spec, params, dtype=dtype, threads=threads)
        mpi.install_abort_hook()
        self.comm = mpi.comm()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # every rank must start from the same point: rank 0's parameters win
        if self.size > 1:
            self._sync_params_from_root()
        self.gemm, self.kernels = step_parts(self.opts, self.dtype)
        self.rows = RowBlocks(self.threads, "pgdbench-mpi")
        self.backprop = Backprop(spec, self.dtype, elementwise=self.rows, gemm=self.gemm, kernels=self.kernels)
        # the step's gradient buffers are views of one flat array: one Allreduce sums them all
        self._grad_flat, views = flat_views(spec.shapes + [(n,) for n in spec.layers[1:]], self.dtype)
        self.backprop.gW, self.backprop.gb = views[:len(self.W)], views[len(self.W):]

    def _sync_params_from_root(self):
        for a in self.W + self.b:
            self.comm.Bcast(a, root=0)

    def load_data(self, X, Y):
        super().load_data(X, Y)
        if self.size > 1:  # ranks holding different data would silently train different nets
            shapes = self.comm.allgather((self.X.shape, self.Y.shape))
            if any(s != shapes[0] for s in shapes):
                raise UsageError(f"ranks were given different training data shapes: {shapes}")

    def _step_slice(self, idx: np.ndarray, batch: int, learning_rate: float) -> None:
        """Add this rank's share (η/B)·Σ∇ of a minibatch of ``batch`` examples, reduce, update."""
        n = len(idx)
        if n and self.local is not None:
            self.local.set_weights(Parameters(self.W, self.b))
            _, mean = self.local.loss_and_gradients(self.X[idx], self.Y[idx])
            scale = learning_rate * n / batch   # mean over the slice → its share of (η/B)·Σ
            for mine, theirs in zip(self.backprop.gW + self.backprop.gb, mean.weights + mean.biases):
                np.multiply(theirs, scale, out=mine)
        elif n:
            self.backprop.gradient(self.W, self.b, self.X, self.Y, idx, learning_rate / batch)  # B: the whole minibatch
        else:                                   # fewer examples than ranks: contribute nothing
            self._grad_flat.fill(0)
        if self.size > 1:
            from mpi4py import MPI
            self.comm.Allreduce(MPI.IN_PLACE, self._grad_flat, op=MPI.SUM)
        self.backprop.update(self.W, self.b)

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        self.backprop.ensure(-(-batch_size // self.size))
        with self.gemm.limit(self.threads):
            for start, stop in batch_bounds(len(order), batch_size):
                lo, hi = mpi.share(stop - start, self.rank, self.size)
                self._step_slice(order[start + lo:start + hi], stop - start, learning_rate)
                if progress is not None:
                    progress(stop - start)

    def set_weights(self, params):
        super().set_weights(params)
        if self.size > 1:
            self._sync_params_from_root()

    def metadata(self):
        return {**mpi_metadata(self.comm, self.threads), "local_backend": self.opts["local"],
                **step_metadata(self.gemm, self.kernels)}

    def close(self):
        if self.local is not None:
            self.local.close()
        self.rows.close()

"""``numba``: the OpenMP-style example-parallel version (Kamra et al., *Parallel Gradient Descent* Algorithm 5,
Kamra et al.'s earlier draft, *Parallel Backpropagation* and Ott, *Training Neural Networks in Parallel*).

Each minibatch of B examples is split into P = min(T, B) thread-batches,
contiguous runs of the minibatch whose sizes differ by at most one. One
``prange`` iteration per thread-batch does the whole of Algorithms 3 and 4 for
its examples and sums their gradients into the thread's own accumulator (no
locks, no atomics: nothing is shared but the read-only weights). A second
``prange``, over the rows of every weight matrix, adds the P private sums and
applies the update W ← W − (η/B)ΣG in the same pass (the reduction that the
paper's main thread does alone, here spread over all threads). The whole epoch
is one call into compiled code: no Python between minibatches.

Two ways to do each thread-batch's matrix work (option ``kernel``):

* ``blas`` (default): ``np.dot`` into preallocated buffers, which Numba
  lowers to a single-threaded BLAS GEMM per thread (BLAS is pinned to one
  thread for the duration, so T threads run T independent GEMMs and nothing
  is oversubscribed). Every step is still example-parallel: the threads never
  cooperate inside a product.
* ``loops``: the products written out as loops (blocked by 4 rows so each
  row of W loaded into L1 serves four examples; the innermost loop is
  unit-stride and vectorised by LLVM), as the paper's hand-written Pthreads
  code did. No BLAS at all; slower, but shows what the compiler alone does.

Two ways to apply the minibatch's gradient (option ``update``):

* ``reduce`` (default): Algorithm 5 as stated -- private per-thread sums and
  the parallel reduction fused with the update, described above.
* ``rows``: no private weight sums. After the example-parallel forward and
  backward passes (a barrier: every delta uses the old weights), thread q
  applies the whole minibatch's gradient to its own block of W's rows,
  W[r0:r1] += (−η/B) Σ_p A_p[:, r0:r1]ᵀ Δ_p, with a GEMM that accumulates
  (β = 1) or with loops. W is read and written once per step and no
  P × |W| accumulators exist, which is what matters at small batches and
  many threads. It departs from Algorithm 5 in the update only; the results
  are the same minibatch GD (held to the same checks).

Elementwise work (bias, sigmoid, σ' = a(1 − a), the output delta, the column
sums for the biases) is fused into single passes inside each thread's part.

Threads: ``numba.set_num_threads(T)`` for each call (the caller's setting is
restored after). The threading layer (omp, tbb or workqueue, chosen by Numba
or by ``NUMBA_THREADING_LAYER``) is reported in ``metadata()``.

Compilation: the kernels live in ``implementations._numba_kernels`` with
``cache=True``, so a new process loads machine code from the cache; the
constructor compiles (or loads) the kernels for this dtype and depth and starts
the thread pool, so no timed epoch ever includes compilation.

Memory: each thread has private activations, deltas and a full-size gradient
accumulator (for Net-2h in float32, 7.4 MB per thread). Every per-thread slab
is followed by at least 64 bytes that nobody writes, so two threads never
write to one cache line. The reduction reads P accumulators per step: that is
the price of Algorithm 5, and why its speedup falls at small batches and many
threads.
"""
from __future__ import annotations

import math
import os

import numpy as np

from pgdbench.core import gemm
from pgdbench.core.model import Parameters
from pgdbench.core.protocol import Option, Parallelism, Trainer, validate_batch
from pgdbench.errors import UsageError

#: Minibatches per call into compiled code when a progress callback wants news.
PROGRESS_EVERY = 64


def _pad_rows(cols: int) -> int:
    """Rows to leave unused after each thread's slab: at least 16 elements (≥ 64 bytes)."""
    return -(-16 // cols)


class NumbaTrainer(Trainer):
    description = "Numba prange over thread-batches (OpenMP style, Alg. 5): private gradient sums + parallel reduction"
    parallelism = Parallelism.EXAMPLES
    serial_counterpart = "numba"
    requires = ("numba",)
    options = {"kernel": Option("blas", choices=("blas", "loops")),
               "update": Option("reduce", choices=("reduce", "rows")),
               "gemm": Option("auto", choices=("auto",) + gemm.NAMES),
               "exp": Option("vector", choices=("vector", "libm"))}

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        import numba

        from implementations import _numba_kernels as kernels  # imports numba: only when the backend is built

        self.gemm = gemm.get(self.opts["gemm"])
        self.provider = kernels.PROVIDER_IDS[self.gemm.name]
        kernels.fill_slots(self.gemm)
        if self.threads > numba.config.NUMBA_NUM_THREADS:
            raise UsageError(f"numba was started with {numba.config.NUMBA_NUM_THREADS} threads; "
                             f"set NUMBA_NUM_THREADS={self.threads} before starting Python to use {self.threads}")
        # gemm=numpy: numba's np.dot calls SciPy's BLAS; load it now so threadpoolctl can pin it to one thread
        import scipy.linalg.cython_blas  # noqa: F401

        self.numba, self.k = numba, kernels
        self.use_blas = self.opts["kernel"] == "blas"
        self.rows_update = self.opts["update"] == "rows"
        own = params.copy(self.dtype)
        self.W, self.b = own.weights, own.biases
        # typed lists (not tuples): their type does not depend on the depth, so one compilation serves all nets
        self._Ws, self._bs = self._typed(self.W), self._typed(self.b)
        self._scratch = np.zeros(1, self.dtype)
        self._capacity = 0
        self._ensure_buffers(1)
        with self._threads():
            kernels.touch(self.threads)  # starts the pool, so threading_layer() is known
            # compile (or load from the cache) for this dtype and depth, on an empty range: no work done
            self.X = np.zeros((1, spec.n_inputs), self.dtype)
            self.Y = np.zeros((1, spec.n_outputs), self.dtype)
            self._run(kernels.TRAIN, self.X, self.Y, np.zeros(1, np.int64), 0, 0, 1, 0.0)

    def _typed(self, arrays):
        from numba.typed import List

        out = List()
        for a in arrays:
            out.append(a)
        return out

    # -- buffers ----------------------------------------------------------
    def _ensure_buffers(self, batch_size: int) -> None:
        """Per-thread work space for minibatches of up to ``batch_size`` (see _numba_kernels)."""
        if batch_size <= self._capacity:
            return
        P = min(self.threads, batch_size)
        rows = math.ceil(batch_size / P)
        widths, dt = self.spec.layers, self.dtype

        def slabs(r, cols):
            return np.zeros((P, r + _pad_rows(cols), cols), dt)

        self._xs = slabs(rows, widths[0])
        self._ys = slabs(rows, widths[-1])
        self._acts = self._typed([slabs(rows, w) for w in widths[1:]])
        self._deltas = self._typed([slabs(rows, w) for w in widths[1:]])
        self._G = self._typed([])
        self._private_sums(1 if self.rows_update else P)  # update=rows trains without them
        self._gb = self._typed([slabs(1, n_out) for n_out in widths[1:]])
        self._out = np.zeros((0, widths[-1]), dt)
        self._capacity = batch_size
        self._rows = rows * P  # examples the buffers hold at once

    def _private_sums(self, P: int) -> None:
        """The P threads' full-size weight-gradient accumulators."""
        if len(self._G) and self._G[0].shape[0] >= P:
            return
        self._G = self._typed([np.zeros((P, n_in + _pad_rows(n_out), n_out), self.dtype)
                               for n_in, n_out in self.spec.shapes])

    def _threads(self):
        return _Threads(self.numba, self.threads)

    def _run(self, mode, X, Y, order, start, stop, batch_size, learning_rate=0.0, out=None):
        self.k.run(mode, X, Y, order, start, stop, batch_size, self._Ws, self._bs, self._xs, self._ys,
                   self._acts, self._deltas, self._G, self._gb, self.threads, self.use_blas, self.provider,
                   self.opts["exp"] == "vector", self.rows_update,
                   float(learning_rate), self._scratch, self._out if out is None else out)

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        self._ensure_buffers(batch_size)
        order = np.ascontiguousarray(order, dtype=np.int64)
        n = len(order)
        step = n if progress is None else PROGRESS_EVERY * batch_size
        with self._threads():
            for start in range(0, n, step):
                stop = min(start + step, n)
                self._run(self.k.TRAIN, self.X, self.Y, order, start, stop, batch_size, learning_rate)
                if progress is not None:
                    progress(stop - start)

    # -- checks -------------------------------------------------------------
    def loss_and_gradients(self, X, Y):
        validate_batch(X, Y, self.spec)
        n = len(X)
        X = np.ascontiguousarray(X, dtype=self.dtype)
        Y = np.ascontiguousarray(Y, dtype=self.dtype)
        out = self.predict(X)  # the loss from the compiled forward pass (GRADIENTS repeats it: checks only)
        self._ensure_buffers(n)
        self._private_sums(min(self.threads, n))
        with self._threads():
            self._run(self.k.GRADIENTS, X, Y, np.arange(n, dtype=np.int64), 0, n, n)
        loss = float(0.5 * np.sum((out.astype(np.float64) - Y) ** 2) / n)
        grads = Parameters([G[0, :n_in] / n for G, (n_in, _) in zip(self._G, self.spec.shapes)],
                           [gb[0, 0] / n for gb in self._gb])
        return loss, grads

    def predict(self, X):
        X = np.ascontiguousarray(X, dtype=self.dtype)
        self._ensure_buffers(max(self._capacity, 256 * self.threads))
        out = np.empty((len(X), self.spec.n_outputs), self.dtype)
        with self._threads():
            # Y is not read in this mode; self._out is an empty stand-in of the right type
            self._run(self.k.FORWARD, X, self._out, np.arange(len(X), dtype=np.int64), 0, len(X), self._rows,
                      out=out)
        return out

    def metadata(self):
        numba = self.numba
        try:
            layer = numba.threading_layer()
        except ValueError:  # no parallel region has run yet (cannot happen after __init__)
            layer = "not started"
        return {"numba": numba.__version__, "threading_layer": layer, "kernel": self.opts["kernel"],
                "update": self.opts["update"], "exp": self.opts["exp"], "gemm": self.gemm.info() if self.use_blas else None,
                "numba_threads": self.threads, "numba_num_threads_max": numba.config.NUMBA_NUM_THREADS,
                "cache_dir": os.environ.get("NUMBA_CACHE_DIR", "(next to the module)")}


class _Threads:
    """numba.set_num_threads(T), with BLAS pinned to one thread, restoring both afterwards."""

    def __init__(self, numba, threads):
        self.numba, self.threads = numba, threads

    def __enter__(self):
        from threadpoolctl import threadpool_limits

        self.before = self.numba.get_num_threads()
        self.numba.set_num_threads(self.threads)
        self.blas = threadpool_limits(limits=1, user_api="blas")
        return self

    def __exit__(self, *exc):
        self.blas.restore_original_limits()
        self.numba.set_num_threads(self.before)

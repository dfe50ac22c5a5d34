"""``threads``: Kamra et al.'s (*Parallel Gradient Descent*) *Multicore Parallel* implementation (Algorithm 5) on a
persistent thread pool.

Each minibatch of B examples is split into T contiguous *thread-batches*
(sizes differ by at most one). Worker k computes, with NumPy, the summed
gradient of its examples into its own preallocated buffers; then the partial
sums are added, divided by B and applied: θ ← θ − (η/B) Σ_k g_k. The factor
η/B is folded into each worker's δ before its gradient GEMM (δ is B/T × n,
much smaller than the n_in × n_out gradient), so the reduction is only
subtractions. BLAS is pinned to one thread for the duration of an epoch, so the
T workers do not oversubscribe the cores with BLAS threads of their own.

Option ``reduce`` (who adds the partial sums into the weights):

* ``parallel`` (default): once every worker has finished, each worker adds all
  T partial sums for its own block of rows of every weight matrix (a second
  pool task), in one pass that reads each partial sum once and writes the
  weights once (the elementwise strategy's ``subtract_sums``); the main thread
  does the biases. The arithmetic per weight is that of Algorithm 5; only who
  does it changes.
* ``main``: Algorithm 5 as written -- the main thread adds the T partial sums
  into the weights. That serial pass over every weight matrix (T memory sweeps
  per step, not shrinking with T) is the Amdahl fraction of the design. A
  back-of-envelope estimate for Net-2h at B = 256 on two threads: ≈ 2 ms of
  memory traffic against ≈ 12 ms of GEMMs per worker, enough to hold the
  speedup near 1.8. Compare both with ``-o reduce=main,parallel``.
* ``rows``: no partial sums at all. The workers' forward and backward passes
  write their activations and (η/B-scaled) deltas into consecutive rows of
  batch-wide arrays; after they have all finished (every δ needs the old
  weights), worker k applies the whole minibatch's gradient to its own block
  of rows of each weight matrix with one GEMM that accumulates (β = 1):
  W[r0:r1] ← W[r0:r1] − A[:, r0:r1]ᵀ Δ. The weights are read and written once
  per step, no T × |W| partial sums are written and read back; the weight
  gradient's GEMM is then split over rows of W rather than over examples. It
  departs from Algorithm 5 in the update only (as the ``numba`` backend's
  ``update=rows``); the results are the same minibatch GD, held to the same
  checks. That reduction traffic is the floor Algorithm 5 itself sets at small
  batches (``docs/cpu-backends.md``, "Small batches").

Options ``gemm`` and ``elementwise`` choose the step's BLAS and its
elementwise passes, as for ``numpy`` (``docs/cpu-backends.md``). Every worker
calls the BLAS with ``blas_threads`` threads; a library that can (oneMKL)
gets that count per worker thread, not only per process.

The pool is created once (T − 1 helper threads; the calling thread is worker
0) and shut down by :meth:`close`. With T = 1 there are no helper threads and
no barriers: the 1-thread run is plain serial code, which keeps the speedup
over it honest.

What the GIL does to it
-----------------------
Only one thread at a time can run Python bytecode. NumPy releases the GIL
inside BLAS calls and inside the loops of most ufuncs (matmul, take,
exp, the in-place arithmetic), which is where nearly all the time of a step
goes, so the workers' GEMMs really do run at the same time on different cores.
The Python *glue* between those calls -- method calls, slicing, creating views,
the barrier's condition variables -- needs the GIL and is serialised across
the workers. Per step each worker executes a few dozen such calls (≈ 50–100 µs
in total), whatever the batch size; the GEMMs shrink with the thread-batch.
So the speedup over 1 thread approaches T when thread-batches are large
(B ≥ 256 on the paper's nets) and falls towards — or below — 1 when they are
tiny (B = 8: four examples per worker, microseconds of BLAS per call), where
the workers mostly queue for the GIL and the barrier. To see it::

    pgdbench bench --backend threads --net net1h --batch-size 8,32,128,1024 --threads 1,2 --max-examples 8192

and compare the "vs 1 thread" column across batch sizes (``docs/cpu-backends.md``
explains how to read it). Free-threaded CPython (3.13t) would remove the glue
serialisation but not the barrier cost.
"""
from __future__ import annotations

import numpy as np

from implementations.cpu_workers import STEP_OPTIONS, WorkerPool, split, step_metadata, step_parts
from pgdbench.core.backprop import Backprop
from pgdbench.core.model import batch_bounds
from pgdbench.core.protocol import Option, Parallelism, Trainer, validate_batch
from pgdbench.errors import UsageError


class ThreadsTrainer(Trainer):
    description = "minibatch split across a persistent pool of threads, NumPy per thread, BLAS 1 thread (Alg. 5)"
    parallelism = Parallelism.EXAMPLES
    serial_counterpart = "threads"
    options = {"reduce": Option("parallel", choices=("main", "parallel", "rows")), **STEP_OPTIONS}

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        self.example_workers, self.blas_threads = self._split_threads()
        own = params.copy(self.dtype)
        self.W, self.b = own.weights, own.biases
        self.gemm, self.kernels = step_parts(self.opts, self.dtype)
        self.reduce = self.opts["reduce"]
        T = self.example_workers
        # each worker's buffers: the step of the numpy backend, on a block of the minibatch
        self.workers = [Backprop(spec, self.dtype, gemm=self.gemm, kernels=self.kernels) for _ in range(T)]
        if self.reduce != "rows":
            # the workers' partial sums stacked, (T, n_in, n_out) per layer: one pass adds a block of rows of all T
            self._sums = [np.empty((T, n_in, n_out), self.dtype) for n_in, n_out in spec.shapes]
            for k, w in enumerate(self.workers):
                w.gW = [g[k] for g in self._sums]
        # row blocks of every weight matrix, one per worker, for reduce=parallel and rows
        self._rows = [split(n_in, T) for n_in, _ in spec.shapes]
        self._capacity = 0
        self._bound_n = None
        self.pool = WorkerPool(T, name=f"pgdbench-{self.name}")

    def _split_threads(self) -> tuple[int, int]:
        """(example workers, BLAS threads per worker)."""
        return self.threads, 1

    # -- buffers --------------------------------------------------------------------
    def _ensure(self, batch_size: int) -> None:
        """Buffers for minibatches of up to ``batch_size`` examples: per worker, or (reduce=rows) blocks of rows
        of batch-wide arrays."""
        if batch_size <= self._capacity:
            return
        if self.reduce == "rows":
            widths, dt = self.spec.layers, self.dtype
            self._x = np.empty((batch_size, widths[0]), dt)
            self._y = np.empty((batch_size, widths[-1]), dt)
            self._acts = [np.empty((batch_size, n), dt) for n in widths[1:]]
            self._deltas = [np.empty((batch_size, n), dt) for n in widths[1:]]
            self._scratch = np.empty((batch_size, max(widths[1:])), dt)
            self._gb = [np.empty(n, dt) for n in widths[1:]]
            self._bound_n = None
        else:
            per_worker = -(-batch_size // self.example_workers)
            for w in self.workers:
                w.ensure(per_worker)
        self._capacity = batch_size

    def _bind(self, n: int) -> None:
        """reduce=rows: worker k works in rows [start_k, stop_k) of the batch-wide arrays (re-bound only when the
        minibatch size changes, i.e. for an epoch's last, smaller minibatch)."""
        if self._bound_n == n:
            return
        for w, (s, e) in zip(self.workers, split(n, self.example_workers)):
            w.bind(self._x[s:e], self._y[s:e], [a[s:e] for a in self._acts], [d[s:e] for d in self._deltas],
                   self._scratch[s:e])
        self._bound_n = n

    # -- Algorithm 5 ---------------------------------------------------------------
    def _compute(self, k: int) -> None:
        self.gemm.local_threads(self.blas_threads)
        start, stop = self._blocks[k]
        if stop > start:  # the last minibatch of an epoch may leave a worker without examples
            idx = self._idx[start:stop]
            if self.reduce == "rows":
                self.workers[k].propagate(self.W, self.b, self.X, self.Y, idx, self._scale)
            else:
                self.workers[k].gradient(self.W, self.b, self.X, self.Y, idx, self._scale)

    def _update_rows(self, k: int) -> None:
        """Worker k subtracts the T partial sums from its block of rows of every weight matrix."""
        for layer, W in enumerate(self.W):
            r0, r1 = self._rows[layer][k]
            if r1 > r0:
                self.kernels.subtract_sums(W[r0:r1], self._sums[layer][:self._last], r0)

    def _apply_rows(self, k: int) -> None:
        """reduce=rows: worker k applies the whole minibatch's gradient to its block of rows, one GEMM per layer."""
        n = self._n
        for layer, W in enumerate(self.W):
            r0, r1 = self._rows[layer][k]
            if r1 > r0:
                below = self._x if layer == 0 else self._acts[layer - 1]
                self.gemm.update(below[:n, r0:r1].T, self._deltas[layer][:n], W[r0:r1], -1.0)

    def _step(self, idx, learning_rate: float) -> None:
        n = len(idx)
        self._idx, self._scale, self._n = idx, learning_rate / n, n
        self._blocks = split(n, self.example_workers)
        # workers with examples are the first ones (split gives the extra examples to the first blocks)
        self._first, self._last = 0, sum(e > s for s, e in self._blocks)
        if self.reduce == "rows":
            self._bind(n)
            self.pool.run(self._compute)             # forward and backward, in parallel
            self.pool.run(self._apply_rows)          # W ← W − AᵀΔ, split over rows of W
            for layer, b in enumerate(self.b):       # biases are small: the main thread
                np.add.reduce(self._deltas[layer][:n], axis=0, out=self._gb[layer])
                b -= self._gb[layer]
            return
        self.pool.run(self._compute)                 # partial sums, in parallel
        if self.reduce == "parallel":
            self.pool.run(self._update_rows)
        else:
            for layer, W in enumerate(self.W):       # the main thread adds them up (Alg. 5)
                for k in range(self._last):
                    W -= self.workers[k].gW[layer]
        for layer, b in enumerate(self.b):           # biases are small: always the main thread
            for k in range(self._last):
                b -= self.workers[k].gb[layer]

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        T = self.example_workers
        if batch_size < T:
            raise UsageError(f"{self.name}: batch size {batch_size} is smaller than the {T} example workers "
                             f"(threads); each worker needs at least one example of every full minibatch")
        self._ensure(batch_size)
        with self.gemm.limit(self.blas_threads):
            for start, stop in batch_bounds(len(order), batch_size):
                self._step(order[start:stop], learning_rate)
                if progress is not None:
                    progress(stop - start)

    # -- checks and evaluation: one worker, off the clock ---------------------------
    def _evaluator(self) -> Backprop:
        if not hasattr(self, "_eval"):
            self._eval = Backprop(self.spec, self.dtype, gemm=self.gemm, kernels=self.kernels)
        return self._eval

    def loss_and_gradients(self, X, Y):
        validate_batch(X, Y, self.spec)
        with self.gemm.limit(self.threads):
            return self._evaluator().loss_and_gradients(self.W, self.b, X, Y)

    def predict(self, X):
        with self.gemm.limit(self.threads):
            return self._evaluator().predict(self.W, self.b, X)

    def metadata(self):
        return {"example_workers": self.example_workers, "blas_threads": self.blas_threads,
                "reduce": self.reduce, **step_metadata(self.gemm, self.kernels)}

    def close(self):
        self.pool.close()

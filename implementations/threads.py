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
  pool task); the main thread does the biases. The arithmetic per weight is
  that of Algorithm 5; only who does it changes.
* ``main``: Algorithm 5 as written -- the main thread adds the T partial sums
  into the weights. That serial pass over every weight matrix (T memory sweeps
  per step, not shrinking with T) is the Amdahl fraction of the design. A
  back-of-envelope estimate for Net-2h at B = 256 on two threads: ≈ 2 ms of
  memory traffic against ≈ 12 ms of GEMMs per worker, enough to hold the
  speedup near 1.8. Compare both with ``-o reduce=main,parallel``.

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
from threadpoolctl import threadpool_limits

from implementations.cpu_workers import WorkerPool, split
from pgdbench.core.backprop import Backprop
from pgdbench.core.model import batch_bounds
from pgdbench.core.protocol import Option, Parallelism, Trainer, validate_batch
from pgdbench.errors import UsageError


class ThreadsTrainer(Trainer):
    description = "minibatch split across a persistent pool of threads, NumPy per thread, BLAS 1 thread (Alg. 5)"
    parallelism = Parallelism.EXAMPLES
    serial_counterpart = "threads"
    options = {"reduce": Option("parallel", choices=("main", "parallel"))}

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        self.example_workers, self.blas_threads = self._split_threads()
        own = params.copy(self.dtype)
        self.W, self.b = own.weights, own.biases
        # each worker's buffers: the step of the numpy backend, on a block of the minibatch
        self.workers = [Backprop(spec, self.dtype) for _ in range(self.example_workers)]
        # row blocks of every weight matrix, one per worker, for reduce=parallel
        self._rows = [split(n_in, self.example_workers) for n_in, _ in spec.shapes]
        self.pool = WorkerPool(self.example_workers, name=f"pgdbench-{self.name}")

    def _split_threads(self) -> tuple[int, int]:
        """(example workers, BLAS threads per worker)."""
        return self.threads, 1

    # -- Algorithm 5 ---------------------------------------------------------------
    def _compute(self, k: int) -> None:
        start, stop = self._blocks[k]
        if stop > start:  # the last minibatch of an epoch may leave a worker without examples
            self.workers[k].gradient(self.W, self.b, self.X, self.Y, self._idx[start:stop], self._scale)

    def _update_rows(self, k: int) -> None:
        for layer, W in enumerate(self.W):
            r0, r1 = self._rows[layer][k]
            if r1 > r0:
                block = W[r0:r1]
                for j in self._active:
                    block -= self.workers[j].gW[layer][r0:r1]

    def _step(self, idx, learning_rate: float) -> None:
        n = len(idx)
        self._idx, self._scale = idx, learning_rate / n
        self._blocks = split(n, self.example_workers)
        self._active = [k for k, (s, e) in enumerate(self._blocks) if e > s]
        self.pool.run(self._compute)                 # partial sums, in parallel
        if self.opts["reduce"] == "parallel":
            self.pool.run(self._update_rows)
        else:
            for layer, W in enumerate(self.W):       # the main thread adds them up (Alg. 5)
                for k in self._active:
                    W -= self.workers[k].gW[layer]
        for layer, b in enumerate(self.b):           # biases are small: always the main thread
            for k in self._active:
                b -= self.workers[k].gb[layer]

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        T = self.example_workers
        if batch_size < T:
            raise UsageError(f"{self.name}: batch size {batch_size} is smaller than the {T} example workers "
                             f"(threads); each worker needs at least one example of every full minibatch")
        per_worker = -(-batch_size // T)
        for w in self.workers:
            w.ensure(per_worker)
        with threadpool_limits(limits=self.blas_threads, user_api="blas"):
            for start, stop in batch_bounds(len(order), batch_size):
                self._step(order[start:stop], learning_rate)
                if progress is not None:
                    progress(stop - start)

    # -- checks and evaluation: one worker, off the clock ---------------------------
    def loss_and_gradients(self, X, Y):
        validate_batch(X, Y, self.spec)
        with threadpool_limits(limits=self.threads, user_api="blas"):
            return self.workers[0].loss_and_gradients(self.W, self.b, X, Y)

    def predict(self, X):
        with threadpool_limits(limits=self.threads, user_api="blas"):
            return self.workers[0].predict(self.W, self.b, X)

    def metadata(self):
        return {"example_workers": self.example_workers, "blas_threads": self.blas_threads,
                "reduce": self.opts["reduce"]}

    def close(self):
        self.pool.close()

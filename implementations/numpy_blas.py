"""``numpy``: NumPy + BLAS, the paper's "Fast Serial" (1 thread) and "Fast Parallel" (T threads).

The parallelism is entirely inside the matrix products: OpenBLAS (or MKL)
runs each GEMM on ``threads`` threads, set with threadpoolctl for the duration
of a call and restored afterwards. It is also the suite's fast reference: the
float64 checks of every other backend compare against numbers it reproduces to
rounding. Start here (or from the README's plain example) to write a backend.

The step is :class:`pgdbench.core.backprop.Backprop`, shared with ``threads``,
``hybrid``, ``averaging``, the MPI backends and ``cupy``: buffers allocated
once per batch size, the minibatch gathered into them, elementwise work in
place, η/B folded into the output δ, σ by :func:`pgdbench.core.model.sigmoid_`
(SIMD ``exp``, not ``scipy.special.expit``, which cost a sixth of a Net-2h
step). What this backend adds:

* with T > 1 threads the large elementwise passes (σ, σ′) are split over the
  threads in blocks of rows (:class:`implementations.cpu_workers.RowBlocks`:
  a small persistent pool; NumPy releases the GIL in ufunc loops). This only
  pays when OpenBLAS's own threads go to sleep soon after a GEMM: by default
  they spin for about 2^28 cycles, hold the other cores, and the split runs no
  faster than one thread (measured: σ on 1024×1024 after a GEMM, 2.1 ms on 1
  thread, 2.3 ms split over 2; with ``OPENBLAS_THREAD_TIMEOUT=4``, 1.2 ms).
  The ``pgdbench`` command and the benchmark suites set that variable unless
  it is already set (:mod:`pgdbench.harness.openblas_env`); elsewhere, set it
  before NumPy is imported. Results record it (machine metadata);
* only NumPy's own BLAS is called. SciPy bundles a second OpenBLAS with its
  own thread pool; alternating between the two pools makes their spinning
  threads fight for the cores (measured: 2 threads slower than 1).
"""
from __future__ import annotations

import numpy as np

from implementations.cpu_workers import STEP_OPTIONS, BackpropEvaluation, RowBlocks, step_metadata, step_parts
from pgdbench.core.backprop import Backprop
from pgdbench.core.model import batch_bounds
from pgdbench.core.protocol import Parallelism, Trainer


class NumpyBlasTrainer(BackpropEvaluation, Trainer):
    description = "NumPy + threaded BLAS; 1 thread = Fast Serial, T threads = Fast Parallel"
    parallelism = Parallelism.MATRIX
    serial_counterpart = "numpy"
    options = STEP_OPTIONS

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        own = params.copy(self.dtype)
        self.W, self.b = own.weights, own.biases
        self.gemm, self.kernels = step_parts(self.opts, self.dtype)
        self.rows = RowBlocks(self.threads, "pgdbench-numpy")   # 1 thread: no pool at all
        self.backprop = Backprop(spec, self.dtype, elementwise=self.rows, gemm=self.gemm, kernels=self.kernels)

    def _step(self, idx: np.ndarray, learning_rate: float) -> None:
        self.backprop.step(self.W, self.b, self.X, self.Y, idx, learning_rate)

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        self.backprop.ensure(batch_size)
        with self.gemm.limit(self.threads):
            for start, stop in batch_bounds(len(order), batch_size):
                self._step(order[start:stop], learning_rate)
                if progress is not None:
                    progress(stop - start)

    def metadata(self):
        return step_metadata(self.gemm, self.kernels)

    def close(self):
        self.rows.close()

"""``numpy``: NumPy + BLAS, the paper's "Fast Serial" (1 thread) and "Fast Parallel" (T threads).

The parallelism is entirely inside the matrix products: OpenBLAS (or MKL)
runs each GEMM on ``threads`` threads, set with threadpoolctl for the duration
of a call and restored afterwards. It is also the suite's fast reference: the
float64 checks of every other backend compare against numbers it reproduces to
rounding, so the code below favours plain correctness first and speed second
-- but the speed matters too:

* every buffer (activations, deltas) is allocated once per batch size, the
  minibatch is gathered into a preallocated buffer, and all elementwise work
  is done in place (``out=``); a training step allocates nothing;
* the step size η/B is folded into the output layer's δ (B×10): every δ below
  is linear in it, so all of them come out scaled and no pass over a large
  array applies η/B; each weight matrix sees one GEMM into a preallocated
  buffer and one in-place subtraction;
* the sigmoid is NumPy's SIMD ``exp`` and reciprocal in place
  (:func:`pgdbench.core.model.sigmoid_`), not ``scipy.special.expit``, which
  computes one element at a time and cost a sixth of a Net-2h step;
* with T > 1 threads the large elementwise passes (sigmoid, σ') are split
  over the threads in blocks of rows (a small persistent pool; NumPy releases
  the GIL in ufunc loops). This only pays when OpenBLAS's own threads go to
  sleep soon after a GEMM: by default they spin for about 2^28 cycles, hold
  the other cores, and the split runs no faster than one thread (measured:
  σ on 1024×1024 after a GEMM, 2.1 ms on 1 thread, 2.3 ms split over 2; with
  ``OPENBLAS_THREAD_TIMEOUT=4``, 1.2 ms). The ``pgdbench`` command and the
  benchmark suites set that variable unless it is already set
  (:mod:`pgdbench.harness.openblas_env`); elsewhere, set it before NumPy is
  imported. Results record it (machine metadata);
* only NumPy's own BLAS is called. SciPy bundles a second OpenBLAS with its
  own thread pool; alternating between the two pools makes their spinning
  threads fight for the cores (measured: 2 threads slower than 1).
"""
from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from implementations.cpu_workers import WorkerPool, split
from pgdbench.core.model import Parameters, batch_bounds, sigmoid_
from pgdbench.core.protocol import Parallelism, Trainer, validate_batch

#: An elementwise pass is split over the threads only when each gets at least this many elements:
#: below it, the pool's two barrier crossings (tens of µs) cost more than the split saves.
SPLIT_MIN_ELEMENTS_PER_THREAD = 1 << 15


def _times_sigmoid_prime(d: np.ndarray, a: np.ndarray, one_minus_a: np.ndarray) -> None:
    """d ← d ∘ a ∘ (1 − a): σ'(z) taken from the stored activation, as in the paper."""
    np.subtract(1, a, out=one_minus_a)
    d *= a
    d *= one_minus_a


class NumpyBlasTrainer(Trainer):
    name = "numpy"
    description = "NumPy + threaded BLAS; 1 thread = Fast Serial, T threads = Fast Parallel"
    parallelism = Parallelism.MATRIX
    serial_counterpart = "numpy"

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        self.W = [np.array(w, dtype=self.dtype, order="C") for w in params.weights]
        self.b = [np.array(b, dtype=self.dtype) for b in params.biases]
        self._weight_grad = [np.empty(shape, self.dtype) for shape in spec.shapes]   # (η/B)·Σ∇, any batch size
        self._bias_grad = [np.empty(n, self.dtype) for n in spec.layers[1:]]
        self._capacity = 0
        self._pool = WorkerPool(self.threads, "pgdbench-numpy")   # size 1: no thread at all

    # -- buffers ----------------------------------------------------------
    def _ensure_buffers(self, batch_size: int) -> None:
        if batch_size <= self._capacity:
            return
        widths = self.spec.layers
        self._x = np.empty((batch_size, widths[0]), self.dtype)
        self._y = np.empty((batch_size, widths[-1]), self.dtype)
        self._act = [np.empty((batch_size, n), self.dtype) for n in widths[1:]]
        self._delta = [np.empty((batch_size, n), self.dtype) for n in widths[1:]]
        self._scratch = np.empty((batch_size, max(widths[1:])), self.dtype)
        self._capacity = batch_size

    def load_data(self, X, Y):
        validate_batch(X, Y, self.spec)
        self.X = np.ascontiguousarray(X, dtype=self.dtype)
        self.Y = np.ascontiguousarray(Y, dtype=self.dtype)

    # -- the step ---------------------------------------------------------
    def _by_rows(self, fn, arrays, *shared) -> None:
        """fn(*arrays, *shared), or fn on each thread's block of the arrays' rows when they are large enough."""
        threads = self._pool.size
        if threads == 1 or arrays[0].size < SPLIT_MIN_ELEMENTS_PER_THREAD * threads:
            fn(*arrays, *shared)
            return
        blocks = split(len(arrays[0]), threads)
        self._pool.run(lambda k: fn(*(a[blocks[k][0]:blocks[k][1]] for a in arrays), *shared))

    def _forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Activations of every layer for the rows of ``x``, in the preallocated buffers."""
        n = len(x)
        acts = [x]
        for W, b, buf in zip(self.W, self.b, self._act):
            z = buf[:n]
            np.matmul(acts[-1], W, out=z)
            self._by_rows(sigmoid_, (z,), b)    # a = σ(z + b), in place
            acts.append(z)
        return acts

    def _times_sigmoid_prime(self, d: np.ndarray, a: np.ndarray) -> None:
        self._by_rows(_times_sigmoid_prime, (d, a, self._scratch[: a.shape[0], : a.shape[1]]))

    def _deltas(self, acts, y, scale=1.0) -> list[np.ndarray]:
        """``scale`` · δ_l of every layer, computed with the current weights."""
        n = len(y)
        deltas = [None] * len(self.W)
        d = self._delta[-1][:n]
        np.subtract(acts[-1], y, out=d)          # ∂(½‖a−y‖²)/∂a
        if scale != 1:
            d *= scale                           # on B×n_out only; the layers below inherit it
        self._times_sigmoid_prime(d, acts[-1])
        deltas[-1] = d
        for layer in range(len(self.W) - 1, 0, -1):
            below = self._delta[layer - 1][:n]
            np.matmul(deltas[layer], self.W[layer].T, out=below)
            self._times_sigmoid_prime(below, acts[layer])
            deltas[layer - 1] = below
        return deltas

    def _gradient(self, idx: np.ndarray, scale: float) -> None:
        """_weight_grad, _bias_grad ← scale · Σ_{i ∈ idx} ∇(½‖y_i − a_L(x_i)‖²) at the current parameters."""
        n = len(idx)
        x, y = self._x[:n], self._y[:n]
        np.take(self.X, idx, axis=0, out=x)
        np.take(self.Y, idx, axis=0, out=y)
        acts = self._forward(x)
        deltas = self._deltas(acts, y, scale)    # all first: they need the old weights
        for layer, d in enumerate(deltas):
            np.matmul(acts[layer].T, d, out=self._weight_grad[layer])  # scale·Σ_i a_{l-1} δ_lᵀ
            np.add.reduce(d, axis=0, out=self._bias_grad[layer])

    def _step(self, idx: np.ndarray, learning_rate: float) -> None:
        self._gradient(idx, learning_rate / len(idx))                  # (η/B)·Σ∇
        for W, gW, b, gb in zip(self.W, self._weight_grad, self.b, self._bias_grad):
            W -= gW
            b -= gb

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        self._ensure_buffers(batch_size)
        with threadpool_limits(limits=self.threads, user_api="blas"):
            for start, stop in batch_bounds(len(order), batch_size):
                self._step(order[start:stop], learning_rate)
                if progress is not None:
                    progress(stop - start)

    # -- state and checks ---------------------------------------------------
    def get_params(self):
        return Parameters([w.copy() for w in self.W], [b.copy() for b in self.b])

    def set_params(self, params):
        params.check_against(self.spec)
        for dst, src in zip(self.W + self.b, params.weights + params.biases):
            dst[...] = src

    def loss_and_gradients(self, X, Y):
        validate_batch(X, Y, self.spec)
        n = len(X)
        self._ensure_buffers(n)
        x = np.asarray(X, self.dtype)
        y = np.asarray(Y, self.dtype)
        with threadpool_limits(limits=self.threads, user_api="blas"):
            acts = self._forward(x)
            loss = float(0.5 * np.sum((acts[-1].astype(np.float64) - y) ** 2) / n)
            deltas = self._deltas(acts, y, 1 / n)
            grads = Parameters([acts[k].T @ d for k, d in enumerate(deltas)], [d.sum(axis=0) for d in deltas])
        return loss, grads

    def predict(self, X):
        X = np.asarray(X, self.dtype)
        chunk = max(self._capacity, 1024)
        self._ensure_buffers(chunk)
        out = np.empty((len(X), self.spec.n_outputs), self.dtype)
        with threadpool_limits(limits=self.threads, user_api="blas"):
            for start, stop in batch_bounds(len(X), chunk):
                out[start:stop] = self._forward(X[start:stop])[-1]
        return out

    def close(self):
        self._pool.close()

"""Building blocks shared by the thread-based CPU backends (``threads``, ``hybrid``, ``averaging``).

* :class:`WorkerPool` -- a persistent pool of threads that run one task per
  worker and meet at a barrier: created once, reused for every minibatch,
  shut down by :meth:`WorkerPool.close`.
* :class:`GradientWorker` -- one worker's preallocated buffers and the NumPy
  arithmetic of forward and backward propagation over a block of examples:
  it leaves the *summed* gradient of its examples, pre-multiplied by a step
  size, in its own buffers. The backends decide what to do with it (add the
  partial sums of all workers, or apply it to a replica's own weights).
* :func:`split` -- contiguous, nearly equal blocks (sizes differ by at most one).

Every buffer is allocated when the capacity grows, never during a step, and
the elementwise work is done in place (``out=``).
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from pgdbench.core.model import Parameters, sigmoid_
from pgdbench.core.mpi import share


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """[start, stop) of ``parts`` contiguous blocks covering range(n); the first n % parts get one extra."""
    return [share(n, k, parts) for k in range(parts)]


class WorkerPool:
    """``size`` workers: the calling thread is worker 0, ``size − 1`` helper threads are the others.

    :meth:`run` hands ``task`` to every worker, runs ``task(0)`` itself, and
    returns when all have finished (re-raising the first exception a worker
    raised). The threads are started once, here, and wait on a barrier
    between tasks, so a step costs two barrier crossings and no thread
    creation. With ``size == 1`` no thread is created at all: the 1-thread run
    is plain serial code, which keeps speedups over it honest.
    """

    def __init__(self, size: int, name: str = "pgdbench-worker"):
        self.size = size
        self._task: Callable[[int], None] | None = None
        self._errors: list[BaseException | None] = [None] * size
        self._start = threading.Barrier(size)
        self._done = threading.Barrier(size)
        self._threads = [threading.Thread(target=self._loop, args=(k,), name=f"{name}-{k}", daemon=True)
                         for k in range(1, size)]
        self.closed = False
        for t in self._threads:
            t.start()

    def _loop(self, k: int) -> None:
        while True:
            try:
                self._start.wait()
            except threading.BrokenBarrierError:  # close(): leave
                return
            try:
                self._task(k)
            except BaseException as exc:  # handed to the caller of run()
                self._errors[k] = exc
            try:
                self._done.wait()
            except threading.BrokenBarrierError:
                return

    def run(self, task: Callable[[int], None]) -> None:
        if self.closed:
            raise RuntimeError("the worker pool has been closed")
        if self.size == 1:
            task(0)
            return
        self._task = task
        self._start.wait()
        try:
            task(0)
        finally:
            self._done.wait()
            self._task = None
        errors = [e for e in self._errors if e is not None]
        self._errors = [None] * self.size
        if errors:
            raise errors[0]

    def alive(self) -> int:
        """Helper threads still running (0 after close)."""
        return sum(t.is_alive() for t in self._threads)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # breaking the barriers wakes every helper wherever it waits; each then returns
        self._start.abort()
        self._done.abort()
        for t in self._threads:
            t.join(timeout=10)


class GradientWorker:
    """One worker's buffers, and forward + backward propagation of a block of examples with NumPy."""

    def __init__(self, spec, dtype):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.capacity = 0
        #: the last block's gradient, summed over its examples and multiplied by the step size
        self.gW = [np.empty(shape, self.dtype) for shape in spec.shapes]
        self.gb = [np.empty(n, self.dtype) for _, n in spec.shapes]

    def ensure(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        widths = self.spec.layers
        self._x = np.empty((capacity, widths[0]), self.dtype)
        self._y = np.empty((capacity, widths[-1]), self.dtype)
        self._act = [np.empty((capacity, n), self.dtype) for n in widths[1:]]
        self._delta = [np.empty((capacity, n), self.dtype) for n in widths[1:]]
        self._scratch = np.empty((capacity, max(widths[1:])), self.dtype)
        self.capacity = capacity

    def forward(self, W, b, x) -> list[np.ndarray]:
        """a_0 = x, a_1, ..., a_L for the rows of x (at most ``capacity``), in the worker's buffers."""
        n = len(x)
        acts = [x]
        for W_l, b_l, buf in zip(W, b, self._act):
            z = buf[:n]
            np.matmul(acts[-1], W_l, out=z)
            sigmoid_(z, b_l)
            acts.append(z)
        return acts

    def _times_sigmoid_prime(self, d, a) -> None:
        """d ← d ∘ a ∘ (1 − a): σ'(z) from the stored activation, as in seed 000."""
        one_minus_a = self._scratch[: a.shape[0], : a.shape[1]]
        np.subtract(1, a, out=one_minus_a)
        d *= a
        d *= one_minus_a

    def deltas(self, W, acts, y, scale=1.0) -> list[np.ndarray]:
        """``scale`` · δ_l of every layer: scaling the output δ (rows × n_out) scales all of them."""
        n = len(y)
        out = [None] * len(W)
        d = self._delta[-1][:n]
        np.subtract(acts[-1], y, out=d)
        if scale != 1:
            d *= scale
        self._times_sigmoid_prime(d, acts[-1])
        out[-1] = d
        for layer in range(len(W) - 1, 0, -1):
            below = self._delta[layer - 1][:n]
            np.matmul(out[layer], W[layer].T, out=below)
            self._times_sigmoid_prime(below, acts[layer])
            out[layer - 1] = below
        return out

    def gradient(self, W, b, X, Y, idx, scale: float) -> None:
        """gW, gb ← scale · Σ_{i ∈ idx} ∂(½‖y_i − a_L(x_i)‖²)/∂θ at parameters (W, b)."""
        acts, deltas = self.backprop(W, b, X, Y, idx, scale)  # scaled δ, not the larger gradient
        for layer, d in enumerate(deltas):
            np.matmul(acts[layer].T, d, out=self.gW[layer])
            np.add.reduce(d, axis=0, out=self.gb[layer])

    def backprop(self, W, b, X, Y, idx, scale=1.0):
        n = len(idx)
        x, y = self._x[:n], self._y[:n]
        np.take(X, idx, axis=0, out=x)
        np.take(Y, idx, axis=0, out=y)
        acts = self.forward(W, b, x)
        return acts, self.deltas(W, acts, y, scale)


def loss_and_gradients(worker: GradientWorker, W, b, X, Y):
    """(loss, Parameters of ∂L/∂θ) of a whole batch at (W, b), computed by one worker."""

    n = len(X)
    worker.ensure(n)
    acts = worker.forward(W, b, np.asarray(X, worker.dtype))
    y = np.asarray(Y, worker.dtype)
    loss = float(0.5 * np.sum((acts[-1].astype(np.float64) - y) ** 2) / n)
    deltas = worker.deltas(W, acts, y, 1 / n)
    return loss, Parameters([acts[k].T @ d for k, d in enumerate(deltas)], [d.sum(axis=0) for d in deltas])


def predict(worker: GradientWorker, W, b, X, chunk: int = 1024) -> np.ndarray:
    X = np.asarray(X, worker.dtype)
    chunk = max(worker.capacity, chunk)
    worker.ensure(chunk)
    out = np.empty((len(X), worker.spec.n_outputs), worker.dtype)
    for start in range(0, len(X), chunk):
        out[start:start + chunk] = worker.forward(W, b, X[start:start + chunk])[-1]
    return out

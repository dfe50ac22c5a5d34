"""Minibatch gradient descent written once against an array namespace ``xp`` (NumPy or CuPy).

The ``cupy`` backend runs this code with CuPy, so each product is one cuBLAS
GEMM and each elementwise line one CUDA kernel; :class:`NumpyXpTrainer` runs
the very same lines with NumPy, which is how the tests check the CuPy code
path on machines without a GPU. The algorithm and its buffer discipline are
those of the ``numpy`` backend (``numpy_blas.py``): every buffer allocated
once per batch size, the minibatch gathered into a preallocated buffer on the
device, elementwise work in place, η/B folded into δ so each weight matrix
sees one GEMM into a preallocated buffer and one in-place subtraction.

Only operations that NumPy and CuPy both provide with the same signature are
used (``matmul``/``take``/``subtract``/``sum`` with ``out=``, in-place
operators); the sigmoid comes from the namespace's SciPy (``scipy.special`` /
``cupyx.scipy.special``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from pgdbench.core.model import Parameters, batch_bounds
from pgdbench.core.protocol import Parallelism, Trainer, validate_batch


@dataclass(frozen=True)
class Namespace:
    """What the step needs from an array library beyond the array API."""

    xp: object                          # numpy or cupy
    expit: Callable                     # σ as a ufunc accepting out=
    to_host: Callable                   # device array -> new NumPy array
    synchronize: Callable[[], None]     # wait for queued device work


def numpy_namespace() -> Namespace:
    from scipy.special import expit

    return Namespace(np, expit, lambda a: np.array(a), lambda: None)


class XpTrainer(Trainer):
    """Base of array-namespace backends; a subclass says which namespace in :meth:`namespace`."""

    parallelism = Parallelism.DEVICE
    device = "gpu"
    serial_counterpart = "numpy"
    uses_threads = False

    def namespace(self) -> Namespace:
        raise NotImplementedError

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        self.ns = self.namespace()
        xp = self.xp = self.ns.xp
        self.W = [xp.asarray(np.ascontiguousarray(w, dtype=self.dtype)) for w in params.weights]
        self.b = [xp.asarray(np.asarray(b, dtype=self.dtype)) for b in params.biases]
        self._capacity = 0
        self.X = self.Y = None

    # -- buffers ----------------------------------------------------------
    def _ensure_buffers(self, batch_size: int) -> None:
        if batch_size <= self._capacity:
            return
        xp, dt, widths = self.xp, self.dtype, self.spec.layers
        self._x = xp.empty((batch_size, widths[0]), dt)
        self._y = xp.empty((batch_size, widths[-1]), dt)
        self._act = [xp.empty((batch_size, n), dt) for n in widths[1:]]
        self._delta = [xp.empty((batch_size, n), dt) for n in widths[1:]]
        self._scratch = xp.empty((batch_size, max(widths[1:])), dt)
        self._bias_grad = [xp.empty(n, dt) for n in widths[1:]]
        self._weight_grad = [xp.empty(shape, dt) for shape in self.spec.shapes]
        self._capacity = batch_size

    def load_data(self, X, Y):
        validate_batch(X, Y, self.spec)
        self.X = self.xp.asarray(np.ascontiguousarray(X, dtype=self.dtype))
        self.Y = self.xp.asarray(np.ascontiguousarray(Y, dtype=self.dtype))
        self.ns.synchronize()

    # -- the step ---------------------------------------------------------
    def _forward(self, x):
        n = len(x)
        acts = [x]
        for W, b, buf in zip(self.W, self.b, self._act):
            z = buf[:n]
            self.xp.matmul(acts[-1], W, out=z)
            z += b
            self.ns.expit(z, out=z)
            acts.append(z)
        return acts

    def _times_sigmoid_prime(self, d, a) -> None:
        """d ← d ∘ a ∘ (1 − a), σ'(z) from the stored activation."""
        one_minus_a = self._scratch[: a.shape[0], : a.shape[1]]
        self.xp.subtract(1, a, out=one_minus_a)
        d *= a
        d *= one_minus_a

    def _deltas(self, acts, y):
        n = len(y)
        deltas = [None] * len(self.W)
        d = self._delta[-1][:n]
        self.xp.subtract(acts[-1], y, out=d)
        self._times_sigmoid_prime(d, acts[-1])
        deltas[-1] = d
        for layer in range(len(self.W) - 1, 0, -1):
            below = self._delta[layer - 1][:n]
            self.xp.matmul(deltas[layer], self.W[layer].T, out=below)
            self._times_sigmoid_prime(below, acts[layer])
            deltas[layer - 1] = below
        return deltas

    def _step(self, idx, learning_rate: float) -> None:
        xp, n = self.xp, len(idx)
        x, y = self._x[:n], self._y[:n]
        xp.take(self.X, idx, axis=0, out=x)       # gather on the device: idx is a device array
        xp.take(self.Y, idx, axis=0, out=y)
        acts = self._forward(x)
        deltas = self._deltas(acts, y)            # all deltas first: they need the old weights
        scale = learning_rate / n
        for layer, (W, b, d) in enumerate(zip(self.W, self.b, deltas)):
            d *= scale
            gW = self._weight_grad[layer]
            xp.matmul(acts[layer].T, d, out=gW)
            W -= gW
            gb = self._bias_grad[layer]
            xp.sum(d, axis=0, out=gb)
            b -= gb

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        self._ensure_buffers(batch_size)
        order_dev = self.xp.asarray(np.asarray(order, dtype=np.int64))   # one upload per epoch
        for start, stop in batch_bounds(len(order), batch_size):
            self._step(order_dev[start:stop], learning_rate)
            if progress is not None:
                progress(stop - start)
        self.ns.synchronize()

    # -- state and checks ---------------------------------------------------
    def get_params(self):
        return Parameters([self.ns.to_host(w) for w in self.W], [self.ns.to_host(b) for b in self.b])

    def set_params(self, params):
        params.check_against(self.spec)
        for dst, src in zip(self.W + self.b, params.weights + params.biases):
            dst[...] = self.xp.asarray(np.asarray(src, dtype=self.dtype))

    def loss_and_gradients(self, X, Y):
        validate_batch(X, Y, self.spec)
        n = len(X)
        self._ensure_buffers(n)
        x = self.xp.asarray(np.asarray(X, self.dtype))
        y = self.xp.asarray(np.asarray(Y, self.dtype))
        acts = self._forward(x)
        aL = self.ns.to_host(acts[-1]).astype(np.float64)
        loss = float(0.5 * np.sum((aL - np.asarray(Y, np.float64)) ** 2) / n)
        deltas = self._deltas(acts, y)
        grads = Parameters([self.ns.to_host(acts[k].T @ d / n) for k, d in enumerate(deltas)],
                           [self.ns.to_host(d.sum(axis=0) / n) for d in deltas])
        return loss, grads

    def predict(self, X):
        X = np.asarray(X, self.dtype)
        chunk = max(self._capacity, 1024)
        self._ensure_buffers(chunk)
        out = np.empty((len(X), self.spec.n_outputs), self.dtype)
        for start, stop in batch_bounds(len(X), chunk):
            out[start:stop] = self.ns.to_host(self._forward(self.xp.asarray(X[start:stop]))[-1])
        return out


class NumpyXpTrainer(XpTrainer):
    """The ``cupy`` backend's code run with NumPy: how the tests exercise it without a GPU.

    Not registered as a backend (``numpy`` is the NumPy backend); the tests
    hold it to the conformance kit like any registered one.
    """

    name = "numpy-xp"
    description = "the cupy backend's array code run with NumPy (tests only)"
    device = "cpu"

    def namespace(self):
        return numpy_namespace()

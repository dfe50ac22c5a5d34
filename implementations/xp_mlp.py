"""Backends whose arrays live in an array namespace ``xp`` (NumPy or CuPy): the ``cupy`` backend's base.

The step is :class:`pgdbench.core.backprop.Backprop`, the ``numpy`` backend's,
run with the namespace's arrays: with CuPy each product is one cuBLAS GEMM and
each elementwise line one CUDA kernel. :class:`NumpyXpTrainer` runs the very
same lines with NumPy, which is how the tests check the CuPy code path on
machines without a GPU. The buffer discipline is the same on both: every
buffer allocated once per batch size, the minibatch gathered into a
preallocated buffer on the device (the epoch's order is uploaded once),
elementwise work in place, η/B folded into δ so each weight matrix sees one
GEMM into a preallocated buffer and one in-place subtraction.

Only operations that NumPy and CuPy both provide with the same signature are
used (``matmul``/``take``/``subtract`` with ``out=``, in-place operators); the
namespace supplies the sigmoid, the column sum and the copy to the host.
"""
from __future__ import annotations

import numpy as np

from pgdbench.core.backprop import NUMPY, ArrayNamespace, Backprop
from pgdbench.core.model import Parameters, batch_bounds
from pgdbench.core.protocol import Parallelism, Trainer, validate_batch


class XpTrainer(Trainer):
    """Base of array-namespace backends; a subclass says which namespace in :meth:`namespace`."""

    parallelism = Parallelism.DEVICE
    device = "gpu"
    serial_counterpart = "numpy"
    uses_threads = False

    def namespace(self) -> ArrayNamespace:
        raise NotImplementedError

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        self.ns = self.namespace()
        xp = self.xp = self.ns.xp
        self.W = [xp.asarray(np.ascontiguousarray(w, dtype=self.dtype)) for w in params.weights]
        self.b = [xp.asarray(np.asarray(b, dtype=self.dtype)) for b in params.biases]
        self.backprop = Backprop(spec, self.dtype, namespace=self.ns)
        self.X = self.Y = None

    def load_data(self, X, Y):
        validate_batch(X, Y, self.spec)
        self.X = self.xp.asarray(np.ascontiguousarray(X, dtype=self.dtype))
        self.Y = self.xp.asarray(np.ascontiguousarray(Y, dtype=self.dtype))
        self.ns.synchronize()

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        self.backprop.ensure(batch_size)
        order_dev = self.xp.asarray(np.asarray(order, dtype=np.int64))   # one upload per epoch
        for start, stop in batch_bounds(len(order), batch_size):
            self.backprop.step(self.W, self.b, self.X, self.Y, order_dev[start:stop], learning_rate)
            if progress is not None:
                progress(stop - start)
        self.ns.synchronize()

    # -- state and checks ---------------------------------------------------
    def get_weights(self):
        return Parameters([self.ns.to_host(w) for w in self.W], [self.ns.to_host(b) for b in self.b])

    def set_weights(self, params):
        params.check_against(self.spec)
        for dst, src in zip(self.W + self.b, params.weights + params.biases):
            dst[...] = self.xp.asarray(np.asarray(src, dtype=self.dtype))

    def loss_and_gradients(self, X, Y):
        validate_batch(X, Y, self.spec)
        return self.backprop.loss_and_gradients(self.W, self.b, X, Y)

    def predict(self, X):
        return self.backprop.predict(self.W, self.b, X)


class NumpyXpTrainer(XpTrainer):
    """The ``cupy`` backend's code run with NumPy: how the tests exercise it without a GPU.

    Not registered as a backend (``numpy`` is the NumPy backend); the tests
    hold it to the conformance kit like any registered one.
    """

    name = "numpy-xp"
    description = "the cupy backend's array code run with NumPy (tests only)"
    device = "cpu"

    def namespace(self):
        return NUMPY

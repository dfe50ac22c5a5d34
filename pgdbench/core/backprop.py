"""The buffered training step of a sigmoid MLP: forward and backward propagation of a minibatch.

One implementation serves the ``numpy`` backend, the example workers of
``threads`` and ``hybrid``, the replicas of ``averaging``, the ranks of ``mpi``
and ``mpi-averaging``, and, written against an array namespace, the ``cupy``
backend (see :class:`ArrayNamespace`). What makes it fast:

* every buffer (the gathered minibatch, activations, deltas, σ′ scratch) is
  allocated when the batch size grows, never during a step, and all
  elementwise work is done in place (``out=``): a step allocates nothing;
* the step size η/B is folded into the output layer's δ (B × n_out): every δ
  below is linear in it, so all come out scaled, no pass over a large array
  applies η/B, and each weight matrix sees one GEMM into a preallocated
  buffer and one in-place subtraction;
* the matrix products go through a GEMM provider (:mod:`pgdbench.core.gemm`:
  NumPy's OpenBLAS called directly, oneMKL, or ``np.matmul``); where the
  provider can accumulate (β = 1), :meth:`Backprop.step` folds the weight
  update into the gradient's GEMM, W ← W − aᵀδ, and no gradient matrix is
  written at all;
* the elementwise passes (bias + σ, the output δ, σ′) come from an
  elementwise strategy (:mod:`pgdbench.core.elementwise`: NumPy ufuncs, or
  one compiled, vectorised pass each), and run through ``elementwise(fn,
  arrays, *shared)``, so a backend decides how they run: :func:`serial`, or
  split in blocks of rows over a thread pool (the ``numpy`` backend with T > 1).

The arithmetic is Kamra et al.'s (*Parallel Gradient Descent*) Algorithms 3 and 4 with examples as rows, the same
as :mod:`pgdbench.core.reference` (σ′(z) taken from the stored activation as
a(1 − a)); only the order of floating-point operations differs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from pgdbench.core import gemm as gemm_providers
from pgdbench.core.elementwise import XpElementwise
from pgdbench.core.model import NetSpec, Parameters, batch_bounds, sigmoid_


@dataclass(frozen=True)
class ArrayNamespace:
    """What the step needs from an array library: NumPy (:data:`NUMPY`) or CuPy (the ``cupy`` backend)."""

    xp: object                                 # numpy or cupy
    sigmoid: Callable                          # sigmoid(z, bias): z ← σ(z + bias) in place
    column_sum: Callable                       # column_sum(d, out): out ← Σ over the rows of d
    to_host: Callable                          # array → a new NumPy array
    synchronize: Callable[[], None] = lambda: None   # wait for queued device work


NUMPY = ArrayNamespace(np, sigmoid_, lambda d, out: np.add.reduce(d, axis=0, out=out), np.array)


class XpGemm(gemm_providers.Gemm):
    """The products of another array namespace (CuPy: cuBLAS): its ``matmul``, no β = 1."""

    def __init__(self, xp):
        self.xp = xp
        self.name = f"{xp.__name__}.matmul"

    def matmul(self, a, b, out):
        self.xp.matmul(a, b, out=out)

    def info(self):
        return {"provider": self.name, "fused_update": False}


def serial(fn: Callable, arrays: Sequence, *shared) -> None:
    """Run an elementwise pass in the calling thread: ``fn(*arrays, *shared)``."""
    fn(*arrays, *shared)


class Backprop:
    """Forward and backward propagation over preallocated buffers, for one worker (or the whole backend).

    The parameters are not kept here: every method takes the weights ``W`` and
    biases ``b`` (lists of arrays, input side first), so that example workers
    share one set and replicas keep their own. :meth:`gradient` leaves
    ``scale`` · Σ∇ of a minibatch in :attr:`gW` and :attr:`gb`; a backend may
    replace those lists by views of its own (one flat buffer reduced by a
    single Allreduce, say) before the first step.
    """

    def __init__(self, spec: NetSpec, dtype, *, namespace: ArrayNamespace = NUMPY,
                 elementwise: Callable = serial, gemm: Optional[gemm_providers.Gemm] = None, kernels=None):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.ns = namespace
        self.xp = namespace.xp
        self.elementwise = elementwise
        #: the matrix products (:mod:`pgdbench.core.gemm`); any namespace's own ``matmul`` by default
        self.gemm = gemm if gemm is not None else (gemm_providers.Gemm() if namespace.xp is np
                                                   else XpGemm(namespace.xp))
        #: the elementwise passes (:mod:`pgdbench.core.elementwise`); the namespace's ufuncs by default
        self.kernels = kernels if kernels is not None else XpElementwise(namespace.xp, namespace.sigmoid)
        self.capacity = 0
        #: scale · Σ∇ of the last minibatch (weights, biases), summed over its examples
        self.gW = [self.xp.empty(shape, self.dtype) for shape in spec.shapes]
        self.gb = [self.xp.empty(n, self.dtype) for _, n in spec.shapes]

    def ensure(self, capacity: int) -> None:
        """Buffers for minibatches of up to ``capacity`` examples (allocated only when it grows)."""
        if capacity <= self.capacity:
            return
        xp, dt, widths = self.xp, self.dtype, self.spec.layers
        self._x = xp.empty((capacity, widths[0]), dt)
        self._y = xp.empty((capacity, widths[-1]), dt)
        self._act = [xp.empty((capacity, n), dt) for n in widths[1:]]
        self._delta = [xp.empty((capacity, n), dt) for n in widths[1:]]
        self._scratch = xp.empty((capacity, max(widths[1:])), dt)
        self.capacity = capacity

    def bind(self, x, y, acts: list, deltas: list, scratch) -> None:
        """Work in the given arrays instead of buffers of its own: ``x``, ``y`` (rows × n_0, rows × n_L), the
        activations and deltas of every layer (rows × n_l) and a scratch of the widest layer. Example workers
        bind to consecutive blocks of rows of one set of batch-wide arrays, so that a single GEMM can then span
        the whole minibatch."""
        self._x, self._y, self._act, self._delta, self._scratch = x, y, list(acts), list(deltas), scratch
        self.capacity = len(x)

    # -- the step ------------------------------------------------------------------
    def forward(self, W, b, x) -> list:
        """Activations a_0 = x, a_1, ..., a_L of the rows of ``x`` (at most ``capacity``), in the buffers."""
        n = len(x)
        acts = [x]
        for W_l, b_l, buf in zip(W, b, self._act):
            z = buf[:n]
            self.gemm.matmul(acts[-1], W_l, z)
            self.elementwise(self.kernels.bias_sigmoid, (z,), b_l)      # a = σ(z + b), in place
            acts.append(z)
        return acts

    def deltas(self, W, acts, y, scale: float = 1.0) -> list:
        """``scale`` · δ_l of every layer at weights ``W``: scaling the output δ (rows × n_out) scales them all."""
        n = len(y)
        out = [None] * len(W)
        d = self._delta[-1][:n]
        # scale · (a − y) ∘ a ∘ (1 − a): ∂(½‖a − y‖²)/∂z, σ′(z) from the stored activation as in the paper
        self.elementwise(self.kernels.output_delta, (d, acts[-1], y, self._scratch[:n, :d.shape[1]]), scale)
        out[-1] = d
        for layer in range(len(W) - 1, 0, -1):
            below = self._delta[layer - 1][:n]
            self.gemm.matmul(out[layer], W[layer].T, below)
            a = acts[layer]
            self.elementwise(self.kernels.times_sigmoid_prime, (below, a, self._scratch[:n, :a.shape[1]]))
            out[layer - 1] = below
        return out

    def gather(self, X, Y, idx):
        """The rows ``idx`` of the training inputs and targets, copied into the minibatch buffers."""
        n = len(idx)
        x, y = self._x[:n], self._y[:n]
        self.xp.take(X, idx, axis=0, out=x)
        self.xp.take(Y, idx, axis=0, out=y)
        return x, y

    def gradient(self, W, b, X, Y, idx, scale: float) -> None:
        """gW, gb ← ``scale`` · Σ_{i ∈ idx} ∂(½‖y_i − a_L(x_i)‖²)/∂θ at parameters (W, b)."""
        acts, deltas = self.propagate(W, b, X, Y, idx, scale)
        for layer, d in enumerate(deltas):
            self.gemm.matmul(acts[layer].T, d, self.gW[layer])   # scale · Σ_i a_{l-1} δ_lᵀ
            self.ns.column_sum(d, self.gb[layer])

    def propagate(self, W, b, X, Y, idx, scale: float):
        """Activations and ``scale``·δ of every layer for the examples ``idx`` at parameters (W, b)."""
        x, y = self.gather(X, Y, idx)
        acts = self.forward(W, b, x)
        return acts, self.deltas(W, acts, y, scale)           # all δ first: they need the old weights

    def update(self, W, b) -> None:
        """θ ← θ − (gW, gb): the last gradient, already multiplied by the step size, applied in place."""
        for W_l, gW, b_l, gb in zip(W, self.gW, b, self.gb):
            W_l -= gW
            b_l -= gb

    def step(self, W, b, X, Y, idx, learning_rate: float) -> None:
        """One step of minibatch gradient descent on the examples ``idx``: θ ← θ − (η/B) Σ∇.

        With a provider that accumulates, each weight matrix gets one GEMM,
        W ← W − aᵀ((η/B)·δ) (β = 1), and no gradient matrix is written; else
        the gradient is formed (:meth:`gradient`) and subtracted (:meth:`update`).
        """
        if not self.gemm.fused_update:
            self.gradient(W, b, X, Y, idx, learning_rate / len(idx))
            self.update(W, b)
            return
        acts, deltas = self.propagate(W, b, X, Y, idx, learning_rate / len(idx))
        for layer, (W_l, b_l, d) in enumerate(zip(W, b, deltas)):
            self.gemm.update(acts[layer].T, d, W_l, -1.0, self.gW[layer])
            self.ns.column_sum(d, self.gb[layer])
            b_l -= self.gb[layer]

    # -- for the checks and evaluation (off the clock) ------------------------------------
    def loss_and_gradients(self, W, b, X, Y) -> tuple[float, Parameters]:
        """Loss (1/(2B)) Σ‖y − a_L‖² of a whole batch and its gradient, as NumPy arrays."""
        n = len(X)
        self.ensure(n)
        to_host = self.ns.to_host
        y_host = np.asarray(Y, self.dtype)
        acts = self.forward(W, b, self.xp.asarray(np.asarray(X, self.dtype)))
        loss = float(0.5 * np.sum((to_host(acts[-1]).astype(np.float64) - y_host) ** 2) / n)
        deltas = self.deltas(W, acts, self.xp.asarray(y_host), 1 / n)
        return loss, Parameters([to_host(acts[k].T @ d) for k, d in enumerate(deltas)],
                                [to_host(d.sum(axis=0)) for d in deltas])

    def predict(self, W, b, X, chunk: Optional[int] = None) -> np.ndarray:
        """Output activations a_L of ``X`` as a NumPy array, in chunks of the buffers' size (at least 1024)."""
        X = np.asarray(X, self.dtype)
        chunk = chunk or max(self.capacity, 1024)
        self.ensure(chunk)
        out = np.empty((len(X), self.spec.n_outputs), self.dtype)
        for start, stop in batch_bounds(len(X), chunk):
            out[start:stop] = self.ns.to_host(self.forward(W, b, self.xp.asarray(X[start:stop]))[-1])
        return out

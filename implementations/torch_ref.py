"""``torch``: PyTorch as the reference framework (Kamra et al., *Parallel Gradient Descent* compared against
Theano; PyTorch is today's).

Same initial parameters as every other backend (handed over by the core), the
same loss (1/(2B))Σ‖y − a_L‖² and plain SGD θ ← θ − η∂L/∂θ. On the CPU it runs
with ``torch.set_num_threads(threads)`` for the duration of each call (the
previous setting is restored afterwards, so the backend does not leak its
setting into the rest of the process); with ``device=cuda`` (or ``auto`` on a
machine with a GPU) everything stays on the GPU and ``train_epoch``
synchronises before returning.

Backward pass: written out with matrix products under ``torch.no_grad()``
rather than taken from autograd. Every other backend of the suite does explicit
backpropagation (Algorithm 4), so this compares the frameworks' kernels and
not autograd's bookkeeping; and it lets the step allocate nothing:

* the minibatch is gathered with ``index_select(out=)`` into preallocated
  buffers, activations and deltas live in buffers sized once per batch size,
  σ'(z) = a(1 − a) is applied in place as d ← d·a − (d·a)·a (``addcmul_``);
* the weight update is one GEMM with β = 1: ``W.addmm_(aᵀ, δ, alpha=−η/B)``,
  so no gradient matrix is ever materialised (NumPy cannot express that);
* the bias update is ``b.addmv_(δᵀ, 1, alpha=−η/B)`` with a preallocated ones vector.

``loss_and_gradients`` uses autograd on purpose: it is an independent second
route to the gradient, and the shared checks compare it with finite differences.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from pgdbench.core.model import Parameters, batch_bounds
from pgdbench.core.protocol import Option, Parallelism, Trainer, validate_batch
from pgdbench.errors import BackendUnavailable


def resolve_device(torch, option: str, backend: str):
    """The torch.device of ``-o device=auto|cpu|cuda`` (auto: CUDA when torch sees a GPU)."""
    device = ("cuda" if torch.cuda.is_available() else "cpu") if option == "auto" else option
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"backend {backend!r}: device=cuda asked for, but torch sees no CUDA GPU")
    return torch.device(device)


@contextmanager
def torch_threads(torch, threads: int, grad: bool = False):
    """torch.set_num_threads(T) for the duration of a call, the process's setting restored after; autograd off
    unless ``grad`` (the explicit step needs no graph)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.set_grad_enabled(grad):
            yield
    finally:
        torch.set_num_threads(before)


def cpu_blas(torch) -> str:
    return "mkl" if torch.backends.mkl.is_available() else "other"


class TorchTrainer(Trainer):
    description = "PyTorch reference framework (explicit backprop, plain SGD); CPU threads or CUDA"
    parallelism = Parallelism.MATRIX
    serial_counterpart = "torch"
    requires = ("torch",)
    options = {"device": Option("auto", choices=("auto", "cpu", "cuda"))}

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        import torch

        self.torch = torch
        self.device = resolve_device(torch, self.opts["device"], self.name)
        self.tdtype = torch.float32 if self.dtype == np.float32 else torch.float64
        self.W = [self._tensor(w) for w in params.weights]
        self.b = [self._tensor(b) for b in params.biases]
        self._capacity = 0

    def _tensor(self, array):
        # a copy, so that the caller's arrays are never aliased
        return self.torch.tensor(np.asarray(array, dtype=self.dtype), device=self.device)

    def _threads(self):
        return torch_threads(self.torch, self.threads)

    def _sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    # -- buffers ----------------------------------------------------------
    def _ensure_buffers(self, batch_size: int) -> None:
        if batch_size <= self._capacity:
            return
        t, widths = self.torch, self.spec.layers
        new = lambda *shape: t.empty(shape, dtype=self.tdtype, device=self.device)  # noqa: E731
        self._x = new(batch_size, widths[0])
        self._y = new(batch_size, widths[-1])
        self._act = [new(batch_size, n) for n in widths[1:]]
        self._delta = [new(batch_size, n) for n in widths[1:]]
        self._ones = t.ones(batch_size, dtype=self.tdtype, device=self.device)
        self._capacity = batch_size

    def load_data(self, X, Y):
        validate_batch(X, Y, self.spec)
        self.X = self._tensor(X)
        self.Y = self._tensor(Y)
        self._sync()

    # -- the step ---------------------------------------------------------
    def _forward(self, x):
        n = x.shape[0]
        acts = [x]
        for W, b, buf in zip(self.W, self.b, self._act):
            z = buf[:n]
            self.torch.addmm(b, acts[-1], W, out=z)   # z = a W + b
            z.sigmoid_()
            acts.append(z)
        return acts

    @staticmethod
    def _times_sigmoid_prime(d, a):
        d.mul_(a)                     # d·a
        d.addcmul_(d, a, value=-1.0)  # d·a − d·a·a = d·a(1 − a)

    def _deltas(self, acts, y):
        n = y.shape[0]
        deltas = [None] * len(self.W)
        d = self._delta[-1][:n]
        self.torch.sub(acts[-1], y, out=d)
        self._times_sigmoid_prime(d, acts[-1])
        deltas[-1] = d
        for layer in range(len(self.W) - 1, 0, -1):
            below = self._delta[layer - 1][:n]
            self.torch.mm(deltas[layer], self.W[layer].t(), out=below)
            self._times_sigmoid_prime(below, acts[layer])
            deltas[layer - 1] = below
        return deltas

    def _step(self, idx, learning_rate):
        n = idx.shape[0]
        x, y = self._x[:n], self._y[:n]
        self.torch.index_select(self.X, 0, idx, out=x)
        self.torch.index_select(self.Y, 0, idx, out=y)
        acts = self._forward(x)
        deltas = self._deltas(acts, y)               # all deltas first: they need the old weights
        alpha = -learning_rate / n
        ones = self._ones[:n]
        for layer, (W, b, d) in enumerate(zip(self.W, self.b, deltas)):
            W.addmm_(acts[layer].t(), d, alpha=alpha)  # W ← W − (η/B) aᵀδ, one GEMM with β = 1
            b.addmv_(d.t(), ones, alpha=alpha)

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        self._ensure_buffers(batch_size)
        # one host-to-device copy of the epoch's order; minibatches are views of it
        order_t = self.torch.as_tensor(np.asarray(order, dtype=np.int64)).to(self.device)
        with self._threads():
            for start, stop in batch_bounds(len(order), batch_size):
                self._step(order_t[start:stop], learning_rate)
                if progress is not None:
                    progress(stop - start)
            self._sync()

    # -- state and checks ---------------------------------------------------
    def get_weights(self):
        return Parameters([w.cpu().numpy().copy() for w in self.W], [b.cpu().numpy().copy() for b in self.b])

    def set_weights(self, params):
        params.check_against(self.spec)
        with self.torch.no_grad():
            for dst, src in zip(self.W + self.b, params.weights + params.biases):
                dst.copy_(self.torch.as_tensor(np.asarray(src, dtype=self.dtype)))

    def loss_and_gradients(self, X, Y):
        validate_batch(X, Y, self.spec)
        t = self.torch
        x, y = self._tensor(X), self._tensor(Y)
        Ws = [w.detach().clone().requires_grad_(True) for w in self.W]
        bs = [b.detach().clone().requires_grad_(True) for b in self.b]
        with self._threads(), t.enable_grad():   # enable_grad overrides _threads' no_grad inside
            a = x
            for W, b in zip(Ws, bs):
                a = t.sigmoid(a @ W + b)
            loss = 0.5 * ((y - a) ** 2).sum() / x.shape[0]
            grads = t.autograd.grad(loss, Ws + bs)
        k = len(Ws)
        to_np = lambda g: g.detach().cpu().numpy()  # noqa: E731
        return float(loss.item()), Parameters([to_np(g) for g in grads[:k]], [to_np(g) for g in grads[k:]])

    def predict(self, X):
        X = np.asarray(X, self.dtype)
        chunk = max(self._capacity, 1024)
        self._ensure_buffers(chunk)
        out = np.empty((len(X), self.spec.n_outputs), self.dtype)
        with self._threads():
            for start, stop in batch_bounds(len(X), chunk):
                x = self._tensor(X[start:stop])
                out[start:stop] = self._forward(x)[-1].cpu().numpy()
        return out

    def metadata(self):
        t = self.torch
        meta = {"torch": t.__version__, "device": str(self.device), "backward": "explicit matmuls (no autograd)",
                "device_kind": "gpu" if self.device.type == "cuda" else "cpu"}   # what the run used (report)
        if self.device.type == "cuda":
            meta["gpu"] = t.cuda.get_device_name(self.device)
        else:
            meta["intra_op_threads"] = self.threads
            meta["blas"] = cpu_blas(t)
        return meta

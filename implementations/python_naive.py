"""``python``: Kamra et al.'s (*Parallel Gradient Descent*) *Naive Serial* implementation, in pure Python.

Forward propagation (Algorithm 3) and backpropagation (Algorithm 4) run one
example at a time on lists of Python floats through :mod:`implementations.linalglib`,
the suite's hand-written LINALGLIB; the gradients of a minibatch's examples are
summed, divided by B, and the parameters updated (Algorithm 2). No NumPy runs
inside :meth:`PythonTrainer.train_epoch`: NumPy arrays are converted to and
from lists only where they cross the trainer protocol (parameters, gradients),
and the training data are read through a flat ``memoryview`` of the loaded
array, which yields Python floats without calling NumPy. The one exception is
:meth:`PythonTrainer.predict`, i.e. evaluation, which is off the clock: it
runs the float64 reference's forward pass on this backend's parameters, because
in pure Python it would take longer than the training being timed.

It is slow by nature (one interpreted multiply-add per weight per example,
three times per step), so benchmarks time a fixed number of examples and
report the epoch time as *projected* (``projected = True``). It is
nevertheless held to the same float64 checks as every other backend.

Arithmetic is always IEEE binary64 (that is what a Python float is): with
``dtype=float32`` the parameters and predictions are handed over as float32
arrays, but the computation itself is not rounded to single precision.
"""
from __future__ import annotations

import numpy as np

from implementations import linalglib as la
from pgdbench.core import reference
from pgdbench.core.model import Parameters, batch_bounds
from pgdbench.core.protocol import Parallelism, Trainer, validate_batch


class PythonTrainer(Trainer):
    description = "pure Python, one example at a time (the paper's Naive Serial); epoch times projected"
    parallelism = Parallelism.NONE
    serial_counterpart = "python"
    projected = True
    uses_threads = False

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        self.set_weights(params)
        self._X = None

    # -- protocol boundary: NumPy <-> lists ---------------------------------
    def load_data(self, X, Y):
        validate_batch(X, Y, self.spec)
        # flat views of contiguous copies: slicing a memoryview and calling tolist()
        # gives one example's Python floats with no NumPy call in the training loop
        self._X = memoryview(np.ascontiguousarray(X, dtype=np.float64).reshape(-1))
        self._Y = memoryview(np.ascontiguousarray(Y, dtype=np.float64).reshape(-1))

    def get_weights(self):
        return Parameters([np.array(W, dtype=self.dtype) for W in self.W],
                          [np.array(b, dtype=self.dtype) for b in self.b])

    def set_weights(self, params):
        params.check_against(self.spec)
        self.W = [np.asarray(W, np.float64).tolist() for W in params.weights]
        self.b = [np.asarray(b, np.float64).tolist() for b in params.biases]

    def metadata(self):
        return {"arithmetic": "binary64 (Python float)"}

    # -- Algorithms 3 and 4, one example ------------------------------------
    def _forward(self, x: list) -> list:
        """a_0 = x, a_1, ..., a_L."""
        acts = [x]
        for W, b in zip(self.W, self.b):
            acts.append(la.sigmoid(la.add(la.vecmat(acts[-1], W), b)))
        return acts

    def _backprop_add(self, x: list, y: list, gW: list, gb: list) -> float:
        """Add this example's ∂(½‖y−a_L‖²)/∂θ to (gW, gb); return ‖y−a_L‖²."""
        acts = self._forward(x)
        err = la.sub(acts[-1], y)
        delta = la.hadamard(err, la.sigmoid_prime_from_output(acts[-1]))   # δ_L
        for layer in range(len(self.W) - 1, -1, -1):
            la.add_outer_inplace(gW[layer], acts[layer], delta)           # += a_{l-1} δ_lᵀ
            la.axpy_inplace(gb[layer], 1.0, delta)
            if layer > 0:                                                  # δ_{l-1} = (W_l δ_l) ∘ σ'(z_{l-1})
                delta = la.hadamard(la.matvec(self.W[layer], delta), la.sigmoid_prime_from_output(acts[layer]))
        return la.sum_of_squares(err)

    def _zero_gradients(self):
        return ([la.zeros_matrix(n_in, n_out) for n_in, n_out in self.spec.shapes],
                [la.zeros(n_out) for _, n_out in self.spec.shapes])

    def _example(self, i: int) -> tuple[list, list]:
        n_in, n_out = self.spec.n_inputs, self.spec.n_outputs
        return self._X[i * n_in:(i + 1) * n_in].tolist(), self._Y[i * n_out:(i + 1) * n_out].tolist()

    # -- Algorithm 2 ----------------------------------------------------------
    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        self._train(np.asarray(order, np.int64).tolist(), batch_size, learning_rate, progress)  # last NumPy call

    def _train(self, order: list, batch_size: int, learning_rate: float, progress=None) -> None:
        for start, stop in batch_bounds(len(order), batch_size):
            gW, gb = self._zero_gradients()
            for i in order[start:stop]:
                x, y = self._example(i)
                self._backprop_add(x, y, gW, gb)
            step = -learning_rate / (stop - start)        # θ ← θ − η (Σ_i ∂L_i/∂θ) / B
            for W, b, g_W, g_b in zip(self.W, self.b, gW, gb):
                for row, g_row in zip(W, g_W):
                    la.axpy_inplace(row, step, g_row)
                la.axpy_inplace(b, step, g_b)
            if progress is not None:
                progress(stop - start)

    # -- checks and evaluation -------------------------------------------------
    def loss_and_gradients(self, X, Y):
        validate_batch(X, Y, self.spec)
        gW, gb = self._zero_gradients()
        total = 0.0
        for x, y in zip(np.asarray(X, np.float64).tolist(), np.asarray(Y, np.float64).tolist()):
            total += self._backprop_add(x, y, gW, gb)
        n = len(X)
        for g_W, g_b in zip(gW, gb):
            for row in g_W:
                la.scale_inplace(row, 1.0 / n)
            la.scale_inplace(g_b, 1.0 / n)
        return 0.5 * total / n, Parameters([np.array(g, dtype=self.dtype) for g in gW],
                                           [np.array(g, dtype=self.dtype) for g in gb])

    def predict(self, X):
        # Evaluation is off the clock, and in pure Python it would take longer than the
        # timed training itself (≈ 20 minutes for MNIST's 10,000 + 10,000 held-out digits on
        # Net-1h), so it uses the float64 reference's forward pass on these parameters.
        # Training (and loss_and_gradients, used by the checks) never does.
        return reference.forward(self.get_weights(), X)[-1].astype(self.dtype)

    def predict_pure_python(self, X) -> np.ndarray:
        """The same outputs through LINALGLIB, one example at a time (slow; for tests)."""
        out = np.empty((len(X), self.spec.n_outputs), self.dtype)
        for k, row in enumerate(np.asarray(X, np.float64)):
            out[k] = self._forward(row.tolist())[-1]
        return out

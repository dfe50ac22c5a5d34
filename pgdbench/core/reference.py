"""Kamra et al.'s (*Parallel Gradient Descent*) algorithms written out plainly in float64: the oracle of the shared
checks.

Nothing here is fast. It is a line-by-line transcription of Algorithm 3
(forward), Algorithm 4 (backpropagation) and Algorithm 2 (minibatch update),
with examples as rows, so that a reader can check it against the paper.
The ``numpy`` backend is the suite's fast reference implementation and is
itself checked against this module.
"""
from __future__ import annotations

import numpy as np

from pgdbench.core.model import Parameters, batch_bounds


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def forward(params: Parameters, X) -> list[np.ndarray]:
    """Activations a_0 = X, a_1, ..., a_L (Algorithm 3)."""
    a = [np.asarray(X, np.float64)]
    for W, b in zip(params.weights, params.biases):
        a.append(sigmoid(a[-1] @ np.asarray(W, np.float64) + np.asarray(b, np.float64)))
    return a


def loss(params: Parameters, X, Y) -> float:
    """L = (1/(2B)) Σ_i ‖y_i − a_L(x_i)‖²."""
    aL = forward(params, X)[-1]
    return float(0.5 * np.sum((np.asarray(Y, np.float64) - aL) ** 2) / len(X))


def gradients(params: Parameters, X, Y) -> tuple[float, Parameters]:
    """Loss and ∂L/∂θ by backpropagation (Algorithm 4), averaged over the batch."""
    a = forward(params, X)
    B = len(X)
    Y = np.asarray(Y, np.float64)
    loss_value = float(0.5 * np.sum((Y - a[-1]) ** 2) / B)
    delta = (a[-1] - Y) * a[-1] * (1 - a[-1])          # δ_L = ∂L/∂a_L ∘ σ'(z_L), σ' = a(1−a)
    gW, gb = [], []
    for layer in range(len(params.weights) - 1, -1, -1):
        gW.append(a[layer].T @ delta / B)                # ∂L/∂W_l = a_{l-1} δ_lᵀ, summed, / B
        gb.append(delta.sum(axis=0) / B)
        if layer > 0:
            W = np.asarray(params.weights[layer], np.float64)
            delta = (delta @ W.T) * a[layer] * (1 - a[layer])   # δ_{l-1} = (W_l δ_l) ∘ σ'(z_{l-1})
    return loss_value, Parameters(gW[::-1], gb[::-1])


def train_epoch(params: Parameters, X, Y, order, batch_size: int, learning_rate: float) -> Parameters:
    """Minibatch gradient descent over ``order`` (Algorithm 2); returns new float64 parameters."""
    p = params.copy(np.float64)
    for s, e in batch_bounds(len(order), batch_size):
        idx = order[s:e]
        _, g = gradients(p, X[idx], Y[idx])
        for k in range(len(p.weights)):
            p.weights[k] -= learning_rate * g.weights[k]
            p.biases[k] -= learning_rate * g.biases[k]
    return p


def finite_difference_gradients(loss_fn, params: Parameters, eps: float = 1e-6) -> Parameters:
    """Central differences (L(θ+ε) − L(θ−ε)) / 2ε of ``loss_fn(params)`` for every parameter."""
    p = params.copy(np.float64)
    grads = Parameters([np.zeros_like(w) for w in p.weights], [np.zeros_like(b) for b in p.biases])
    for arr, g in zip(p.arrays(), grads.arrays()):
        flat, gflat = arr.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = loss_fn(p)
            flat[i] = old - eps
            down = loss_fn(p)
            flat[i] = old
            gflat[i] = (up - down) / (2 * eps)
    return grads

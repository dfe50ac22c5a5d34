"""The oracle itself: the float64 reference against finite differences and against hand-worked numbers."""
from __future__ import annotations

import numpy as np

from pgdbench.core import reference
from pgdbench.core.model import NetSpec, Parameters, glorot_uniform
from pgdbench.core.testing import small_problem


def test_reference_gradients_match_finite_differences():
    spec, params, X, Y = small_problem(seed=3)
    _, grads = reference.gradients(params, X[:9], Y[:9])
    fd = reference.finite_difference_gradients(lambda p: reference.loss(p, X[:9], Y[:9]), params)
    assert grads.max_abs_diff(fd) < 1e-9
    assert max(np.abs(a).max() for a in grads.arrays()) > 1e-3  # not trivially zero


def test_one_neuron_by_hand():
    # 1 input, 1 output: a = σ(w x + b); L = ½(y − a)²; ∂L/∂w = (a − y) a (1 − a) x
    p = Parameters([np.array([[0.3]])], [np.array([-0.1])])
    x, y = np.array([[2.0]]), np.array([[1.0]])
    a = 1 / (1 + np.exp(-(0.3 * 2.0 - 0.1)))
    loss, g = reference.gradients(p, x, y)
    assert np.isclose(loss, 0.5 * (1 - a) ** 2)
    assert np.isclose(g.weights[0][0, 0], (a - 1) * a * (1 - a) * 2.0)
    assert np.isclose(g.biases[0][0], (a - 1) * a * (1 - a))


def test_batch_gradient_is_mean_of_example_gradients():
    spec, params, X, Y = small_problem(seed=4)
    _, whole = reference.gradients(params, X[:6], Y[:6])
    parts = [reference.gradients(params, X[i:i + 1], Y[i:i + 1])[1] for i in range(6)]
    for k in range(len(whole.weights)):
        np.testing.assert_allclose(whole.weights[k], sum(p.weights[k] for p in parts) / 6, atol=1e-15)


def test_glorot_uniform_bounds_and_zero_biases():
    spec = NetSpec((784, 1024, 10))
    p = glorot_uniform(spec, seed=0)
    limit = np.sqrt(6 / (784 + 1024))
    assert np.abs(p.weights[0]).max() <= limit
    assert np.abs(p.weights[0]).max() > 0.99 * limit
    assert abs(p.weights[0].std() - limit / np.sqrt(3)) < 1e-3
    assert all(np.all(b == 0) for b in p.biases)
    assert glorot_uniform(spec, 0).max_abs_diff(p) == 0 and glorot_uniform(spec, 1).max_abs_diff(p) > 0

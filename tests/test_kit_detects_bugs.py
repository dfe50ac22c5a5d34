"""The conformance kit must fail on broken backends: each check is shown to be able to fail.

Each broken trainer below is the numpy backend with one realistic bug.
"""
from __future__ import annotations

import numpy as np
import pytest

from pgdbench.core import registry, testing
from pgdbench.errors import UsageError

NumpyTrainer = registry.get("numpy")


class ForgetsBiasGradient(NumpyTrainer):
    name = "broken-bias"

    def loss_and_gradients(self, X, Y):
        loss, g = super().loss_and_gradients(X, Y)
        g.biases[0][...] = 0
        return loss, g

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        saved = [b.copy() for b in self.b]
        super().train_epoch(order, batch_size, learning_rate, progress)
        self.b[0][...] = saved[0]  # the first layer's bias is never updated


class DividesByFullBatchSize(NumpyTrainer):
    """Scales the last, smaller minibatch of an epoch by the nominal batch size: a classic."""
    name = "broken-last-batch"

    def _step(self, idx, learning_rate):
        nominal = getattr(self, "_nominal", len(idx))
        super()._step(idx, learning_rate * len(idx) / nominal)

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        self._nominal = batch_size
        super().train_epoch(order, batch_size, learning_rate, progress)


class FloatSigmoidTooCoarse(NumpyTrainer):
    """Rounds activations to 3 decimals: fine to the eye, wrong for the float32 tolerance."""
    name = "broken-rounding"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        forward = self.backprop.forward

        def coarse(W, b, x):
            acts = forward(W, b, x)
            for a in acts[1:]:
                np.round(a, 3, out=a)
            return acts

        self.backprop.forward = coarse


class IgnoresThreadsCheck(NumpyTrainer):
    name = "broken-threads"

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        threads = max(threads, 1)
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)


class ReturnsLiveParams(NumpyTrainer):
    name = "broken-get-params"

    def get_weights(self):
        from pgdbench.core.model import Parameters
        return Parameters(self.W, self.b)


class NeverLearns(NumpyTrainer):
    name = "broken-learning"

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        super().train_epoch(order, batch_size, learning_rate * 1e-4, progress)


def test_gradient_check_catches_missing_bias_gradient():
    with pytest.raises(AssertionError, match="finite differences"):
        testing.check_gradients(ForgetsBiasGradient)


def test_training_check_catches_missing_bias_update():
    with pytest.raises(AssertionError, match="differ from the reference"):
        testing.check_training_steps(ForgetsBiasGradient, 1, np.float64)


def test_training_check_catches_wrong_last_batch_scaling():
    with pytest.raises(AssertionError, match="differ from the reference"):
        testing.check_training_steps(DividesByFullBatchSize, 1, np.float64)


def test_float32_tolerance_catches_coarse_arithmetic():
    with pytest.raises(AssertionError, match="float32 parameters differ"):
        testing.check_training_steps(FloatSigmoidTooCoarse, 1, np.float32)


def test_protocol_check_catches_thread_validation_and_aliasing():
    with pytest.raises(AssertionError, match="threads=0 must raise UsageError"):
        testing.check_protocol(IgnoresThreadsCheck)
    with pytest.raises(AssertionError, match="must return a copy"):
        testing.check_protocol(ReturnsLiveParams)


def test_convergence_check_catches_a_backend_that_does_not_learn():
    with pytest.raises(AssertionError, match="validation accuracy"):
        testing.check_convergence(NeverLearns)


def test_run_checks_reports_instead_of_raising():
    results = {r.name: r.status for r in testing.run_checks(ForgetsBiasGradient)}
    assert results["protocol"] == "passed"
    assert results["gradients[threads=1]"] == "failed"
    with pytest.raises(AssertionError, match="gradients"):
        testing.check_backend(ForgetsBiasGradient)


def test_options_are_declared_data():
    class WithOption(NumpyTrainer):
        name = "with-option"
        options = {"tile": 16, "fused": True}

    spec, params, _, _ = testing.small_problem()
    t = WithOption(spec, params, options={"tile": "32", "fused": "false"})
    assert t.opts == {"tile": 32, "fused": False}
    with pytest.raises(UsageError, match="has no option colour"):
        WithOption(spec, params, options={"colour": "red"})
    with pytest.raises(UsageError, match="expected an integer"):
        WithOption(spec, params, options={"tile": "big"})

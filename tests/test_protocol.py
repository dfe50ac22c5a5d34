"""The protocol's facts declared as data (name, requires, options) and the renamed state methods."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from pgdbench import BackendUnavailable, Parameters, Trainer, UsageError, batch_bounds, check_backend, validate_batch
from pgdbench.core import registry, testing
from pgdbench.core.protocol import Option, Parallelism, resolve_options


def test_a_backend_is_named_once_by_its_entry_point():
    cls = registry.get("numpy")
    assert "name" not in vars(cls) and cls.name == "numpy"
    spec, params, _, _ = testing.small_problem()
    with testing.make(cls, spec, params) as t:
        assert t.name == "numpy"

    class Unregistered(cls):
        pass

    assert Unregistered.name == ""


def test_requires_makes_a_backend_unavailable_with_the_reason():
    class NeedsAPackage(registry.get("numpy")):
        name = "needs-a-package"
        requires = ("numpy", "no_such_package_pgdbench")

    avail = NeedsAPackage.availability()
    assert not avail and "'no_such_package_pgdbench' is not installed" in avail.reason
    spec, params, _, _ = testing.small_problem()
    with pytest.raises(BackendUnavailable, match="needs-a-package.*no_such_package_pgdbench"):
        NeedsAPackage(spec, params)


class Declares:
    name = "declares"
    options = {"rule": Option("mean", choices=("mean", "sum")), "period": Option(0, minimum=0, zero="once per epoch"),
               "tile": Option(8, minimum=1), "colour": "red"}


@pytest.mark.parametrize("given, message", [
    ({"rule": "median"}, "option rule must be one of mean, sum, got 'median'"),
    ({"period": "-1"}, r"option period must be 0 \(once per epoch\) or positive, got -1"),
    ({"tile": "0"}, "option tile must be at least 1, got 0"),
    ({"tile": "big"}, "option tile='big': expected an integer"),
    ({"size": 3}, "backend 'declares' has no option size; its options: rule .default 'mean'."),
])
def test_declared_options_are_checked_in_one_place_with_errors_naming_what_is_accepted(given, message):
    with pytest.raises(UsageError, match=message):
        resolve_options(Declares, given)


def test_declared_options_resolve_to_their_defaults_and_converted_values():
    assert resolve_options(Declares, {}) == {"rule": "mean", "period": 0, "tile": 8, "colour": "red"}
    assert resolve_options(Declares, {"rule": "sum", "period": "3", "colour": "blue"}) == {
        "rule": "sum", "period": 3, "tile": 8, "colour": "blue"}


with warnings.catch_warnings():  # (the warning at class creation is tested below)
    warnings.simplefilter("ignore", DeprecationWarning)

    class OldNamesTrainer(Trainer):
        """A plugin written for pgdbench 0.1: its state methods are get_params/set_params, its storage its own."""

        description = "plain NumPy with the 0.1 method names"
        parallelism = Parallelism.NONE
        serial_counterpart = "numpy"
        uses_threads = False

        def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
            super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
            self.p = params.copy(self.dtype)

        def load_data(self, X, Y):
            validate_batch(X, Y, self.spec)
            self.data = X.astype(self.dtype), Y.astype(self.dtype)

        def _forward(self, X):
            acts = [X]
            for W, b in zip(self.p.weights, self.p.biases):
                acts.append(1 / (1 + np.exp(-(acts[-1] @ W + b))))
            return acts

        def loss_and_gradients(self, X, Y):
            acts = self._forward(np.asarray(X, self.dtype))
            n = len(X)
            delta = (acts[-1] - Y) * acts[-1] * (1 - acts[-1])
            gW, gb = [], []
            for k in range(len(self.p.weights) - 1, -1, -1):
                gW.insert(0, acts[k].T @ delta / n)
                gb.insert(0, delta.sum(axis=0) / n)
                if k:
                    delta = (delta @ self.p.weights[k].T) * acts[k] * (1 - acts[k])
            return float(0.5 * np.sum((Y - acts[-1]) ** 2) / n), Parameters(gW, gb)

        def train_epoch(self, order, batch_size, learning_rate, progress=None):
            X, Y = self.data
            for start, stop in batch_bounds(len(order), batch_size):
                idx = order[start:stop]
                _, g = self.loss_and_gradients(X[idx], Y[idx])
                for mine, grad in zip(self.p.arrays(), g.arrays()):
                    mine -= learning_rate * grad

        def get_params(self):
            return self.p.copy()

        def set_params(self, params):
            self.p = params.copy(self.dtype)

        def predict(self, X):
            return self._forward(np.asarray(X, self.dtype))[-1]


def test_a_plugin_with_the_old_method_names_warns_and_passes_the_kit():
    with pytest.warns(DeprecationWarning) as caught:
        class Again(OldNamesTrainer):
            name = "old-names"
            get_params = OldNamesTrainer.get_params   # defined on this class too: warns again
            set_params = OldNamesTrainer.set_params
    messages = [str(w.message) for w in caught]
    assert any("get_params() is deprecated: name it get_weights()" in m for m in messages), messages
    assert any("set_params() is deprecated: name it set_weights()" in m for m in messages), messages

    check_backend(Again)
    spec, params, _, _ = testing.small_problem()
    with Again(spec, params, dtype=np.float64) as t:
        assert t.get_weights().max_abs_diff(params) == 0.0
        moved = params.copy()
        moved.biases[0] += 1.0
        t.set_weights(moved)                           # the core's name reaches the plugin's set_params
        assert t.get_params().max_abs_diff(moved) == 0.0


def test_the_old_names_still_work_on_a_backend_with_the_new_ones():
    spec, params, _, _ = testing.small_problem()
    with testing.make(registry.get("numpy"), spec, params) as t:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = t.get_params()
        assert got.max_abs_diff(params) == 0.0
        assert any(issubclass(w.category, DeprecationWarning) for w in caught)

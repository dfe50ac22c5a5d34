"""The conformance kit, run on every registered backend.

Backends join these tests by being registered under the entry-point group
``pgdbench.implementations``; nothing here names a backend. An unavailable
backend is skipped with its reason.
"""
from __future__ import annotations

import numpy as np
import pytest

from pgdbench.core import testing
from tests.conftest import available_backend, backend_params


def run_or_skip(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except testing.CheckSkipped as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", backend_params())
def test_protocol(name):
    run_or_skip(testing.check_protocol, available_backend(name))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", backend_params())
def test_gradients_match_finite_differences(name, threads):
    cls = available_backend(name)
    if threads not in testing.thread_counts(cls):
        pytest.skip(f"{name} does not run with {threads} threads here")
    run_or_skip(testing.check_gradients, cls, threads)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", backend_params())
def test_training_steps_match_reference(name, threads, dtype):
    cls = available_backend(name)
    if threads not in testing.thread_counts(cls):
        pytest.skip(f"{name} does not run with {threads} threads here")
    run_or_skip(testing.check_training_steps, cls, threads, np.dtype(dtype))


@pytest.mark.parametrize("name", backend_params())
def test_learns_real_digits(name):
    cls = available_backend(name)
    run_or_skip(testing.check_convergence, cls, testing.thread_counts(cls)[-1])

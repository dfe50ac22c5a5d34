"""The ``numpy`` backend's row-split elementwise passes (threads > 1) against the float64 reference.

The conformance kit's problems are too small to reach the split (it starts at
SPLIT_MIN_ELEMENTS_PER_THREAD elements per thread), so the threshold is lowered
here: every sigmoid and σ' pass of a 2-thread run is then split, including the
uneven blocks of a batch of 7 and the 1 + 1 rows of the last batch of 2.
"""
from __future__ import annotations

import numpy as np
import pytest

from pgdbench.core import testing
from pgdbench.core.protocol import usable_cpus

numpy_blas = pytest.importorskip("implementations.numpy_blas")
cpu_workers = pytest.importorskip("implementations.cpu_workers")

pytestmark = pytest.mark.skipif(usable_cpus() < 2, reason="needs 2 usable CPUs to run 2 threads")


@pytest.fixture
def split_everything(monkeypatch):
    runs = []
    real_run = cpu_workers.WorkerPool.run

    def counting_run(pool, task):
        runs.append(pool.size)
        return real_run(pool, task)

    monkeypatch.setattr(cpu_workers, "SPLIT_MIN_ELEMENTS_PER_THREAD", 1)
    monkeypatch.setattr(cpu_workers.WorkerPool, "run", counting_run)
    return runs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_split_elementwise_training_equals_the_reference(split_everything, dtype):
    testing.check_training_steps(numpy_blas.NumpyBlasTrainer, threads=2, dtype=dtype)
    assert split_everything and set(split_everything) == {2}


def test_split_elementwise_gradients_match_finite_differences(split_everything):
    testing.check_gradients(numpy_blas.NumpyBlasTrainer, threads=2)
    assert split_everything


def test_small_passes_are_not_split():
    spec, params, X, Y = testing.small_problem()
    with testing.make(numpy_blas.NumpyBlasTrainer, spec, params, threads=2) as t:
        calls = []
        t.rows.pool.run = lambda task: calls.append(task)   # would lose the work: the check below notices
        t.load_data(X, Y)
        t.train_epoch(np.arange(len(X)), 7, 0.5)
    assert calls == []


def test_close_stops_the_pool_threads():
    spec, params, _, _ = testing.small_problem()
    t = testing.make(numpy_blas.NumpyBlasTrainer, spec, params, threads=2)
    assert t.rows.pool.alive() == 1
    t.close()
    assert t.rows.pool.alive() == 0

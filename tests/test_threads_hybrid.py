"""The thread-pool backends: uneven splits, errors, the pool's life cycle, hybrid splits, option sweeps."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from implementations.cpu_workers import WorkerPool, split
from implementations.hybrid import HybridTrainer, auto_example_workers
from implementations.threads import ThreadsTrainer
from pgdbench.core import reference
from pgdbench.core.model import NetSpec, epoch_order, glorot_uniform
from pgdbench.errors import UsageError
from pgdbench.harness.grid import best_options, option_grid

SPEC = NetSpec((11, 7, 5, 3))


def problem(n=23, seed=3):
    rng = np.random.default_rng(seed)
    return glorot_uniform(SPEC, seed, np.float64), rng.random((n, 11)), np.eye(3)[rng.integers(0, 3, n)]


@pytest.fixture
def four_threads(monkeypatch):
    monkeypatch.setenv("PGDBENCH_MAX_THREADS", "4")   # oversubscribes a 2-core machine: fine for correctness


def test_split_is_contiguous_and_even():
    assert split(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert split(2, 4) == [(0, 1), (1, 2), (2, 2), (2, 2)]
    for n in range(12):
        for parts in range(1, 5):
            sizes = [e - s for s, e in split(n, parts)]
            assert sum(sizes) == n and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("reduce", ["main", "parallel"])
@pytest.mark.parametrize("threads,batch", [(2, 5), (3, 4), (4, 6)])
def test_uneven_thread_batches_match_the_reference(four_threads, threads, batch, reduce):
    """23 examples: thread-batches of unequal size, and a last minibatch that leaves workers idle."""
    params, X, Y = problem()
    expected = params.copy()
    with ThreadsTrainer(SPEC, params, dtype=np.float64, threads=threads, options={"reduce": reduce}) as t:
        t.load_data(X, Y)
        for epoch in range(2):
            order = epoch_order(len(X), 1, epoch)
            t.train_epoch(order, batch, 0.7)
            expected = reference.train_epoch(expected, X, Y, order, batch, 0.7)
        assert t.get_weights().max_abs_diff(expected) < 1e-12


def test_more_threads_than_examples_per_batch_is_refused(four_threads):
    params, X, Y = problem()
    with ThreadsTrainer(SPEC, params, dtype=np.float64, threads=4) as t:
        t.load_data(X, Y)
        with pytest.raises(UsageError, match="batch size 3 is smaller than the 4 example workers"):
            t.train_epoch(np.arange(len(X)), 3, 0.1)


def test_bad_reduce_option_is_refused():
    params, _, _ = problem()
    with pytest.raises(UsageError, match="reduce must be one of main, parallel"):
        ThreadsTrainer(SPEC, params, options={"reduce": "tree"})


def helper_threads(prefix):
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def test_pool_is_persistent_and_shut_down_on_close(four_threads):
    params, X, Y = problem()
    before = len(helper_threads("pgdbench-threads"))
    t = ThreadsTrainer(SPEC, params, threads=3)
    pool_threads = helper_threads("pgdbench-threads")
    assert len(pool_threads) == before + 2          # the caller is worker 0
    t.load_data(X, Y)
    t.train_epoch(np.arange(len(X)), 6, 0.1)
    t.train_epoch(np.arange(len(X)), 6, 0.1)
    assert helper_threads("pgdbench-threads") == pool_threads   # the same threads, none created per step
    t.close()
    assert t.pool.alive() == 0 and len(helper_threads("pgdbench-threads")) == before
    t.close()                                        # idempotent


def test_one_thread_creates_no_helper_threads():
    params, _, _ = problem()
    with ThreadsTrainer(SPEC, params, threads=1) as t:
        assert t.pool.alive() == 0 and t.pool._threads == []


def test_worker_errors_reach_the_caller_and_the_pool_survives():
    pool = WorkerPool(3, name="pgdbench-test")
    try:
        def task(k):
            if k == 2:
                raise ValueError("boom in worker 2")
        with pytest.raises(ValueError, match="boom in worker 2"):
            pool.run(task)
        ran = []
        pool.run(ran.append)
        assert sorted(ran) == [0, 1, 2]
    finally:
        pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.run(print)


def test_hybrid_auto_split():
    assert [auto_example_workers(t) for t in (1, 2, 3, 4, 6, 8, 16, 32)] == [1, 1, 1, 2, 2, 2, 4, 4]


@pytest.mark.parametrize("threads,requested,split_", [(1, 0, (1, 1)), (2, 0, (1, 2)), (2, 2, (2, 1)),
                                                      (1, 4, (1, 1)), (4, 0, (2, 2)), (4, 4, (4, 1))])
def test_hybrid_splits(four_threads, threads, requested, split_):
    params, X, Y = problem()
    with HybridTrainer(SPEC, params, dtype=np.float64, threads=threads,
                       options={"example_workers": requested}) as t:
        assert (t.example_workers, t.blas_threads) == split_
        assert t.metadata()["example_workers"] == split_[0]
        order = epoch_order(len(X), 0, 0)
        t.load_data(X, Y)
        t.train_epoch(order, 5, 0.5)
        assert t.get_weights().max_abs_diff(reference.train_epoch(params, X, Y, order, 5, 0.5)) < 1e-12


@pytest.mark.parametrize("threads,requested,message", [
    (4, 3, "example_workers=3 does not divide threads=4"),
    (2, -1, "example_workers must be 0 \\(auto\\) or positive"),
])
def test_hybrid_split_errors(four_threads, threads, requested, message):
    params, _, _ = problem()
    with pytest.raises(UsageError, match=message):
        HybridTrainer(SPEC, params, threads=threads, options={"example_workers": requested})


def test_option_grid_expands_comma_lists():
    assert option_grid({}) == [{}]
    assert option_grid({"example_workers": "1,2", "reduce": "main"}) == [
        {"example_workers": "1", "reduce": "main"}, {"example_workers": "2", "reduce": "main"}]
    assert len(option_grid({"a": "1,2,3", "b": "x,y"})) == 6


def test_best_options_names_the_fastest_per_point():
    def rec(ew, tpe, threads=2):
        return {"status": "ok", "backend": "hybrid", "net": "net1h", "batch_size": 64, "threads": threads,
                "dtype": "float32", "options": {"example_workers": ew}, "seconds_per_epoch": tpe}
    best = best_options([rec("1", 3.0), rec("2", 2.0), rec("1", 5.0, threads=1),
                         {"status": "error", "backend": "hybrid"}])
    assert len(best) == 1 and best[0]["options"] == {"example_workers": "2"}
    assert [a["seconds_per_epoch"] for a in best[0]["alternatives"]] == [3.0]


def test_bench_sweeps_hybrid_splits_and_names_the_best(tmp_path, capsys):
    from pgdbench.cli import main
    from pgdbench.core.protocol import usable_cpus

    if usable_cpus() < 2:
        pytest.skip("a 2-thread split needs 2 usable CPUs")
    results = tmp_path / "bench.jsonl"
    assert main(["bench", "--backend", "hybrid", "--threads", "2", "--net", "net1h", "--batch-size", "16",
                 "--dataset", "synthetic:256", "--max-examples", "64", "-o", "example_workers=1,2",
                 "--results", str(results), "--quiet"]) == 0
    out = capsys.readouterr().out
    best = out[out.index("best option set per point"):].splitlines()[1:]
    two_thread = [line for line in best if "T=2" in line]
    assert len(two_thread) == 1 and "others: example_workers=" in two_thread[0]
    assert "split 2×1" in two_thread[0] or "split 1×2" in two_thread[0]
    records = [json.loads(line) for line in results.read_text().splitlines()]
    splits = {(r["threads"], r["options"].get("example_workers"),
               r["backend_metadata"]["example_workers"], r["backend_metadata"]["blas_threads"])
              for r in records if r.get("kind") == "bench" and r["backend"] == "hybrid"}
    assert splits == {(2, "1", 1, 2), (2, "2", 2, 1), (1, "1", 1, 1), (1, "2", 1, 1)}

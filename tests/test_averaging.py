"""The replica-averaging backend (Ott, *Training Neural Networks in Parallel*) against by-hand NumPy computations,
and its study command."""
from __future__ import annotations

import json

import numpy as np
import pytest

from implementations.averaging import AveragingTrainer
from pgdbench.core import reference
from pgdbench.core.model import NetSpec, Parameters, epoch_order, glorot_uniform
from pgdbench.errors import UsageError

SPEC = NetSpec((9, 6, 4))


def problem(n, seed=4):
    rng = np.random.default_rng(seed)
    return glorot_uniform(SPEC, seed, np.float64), rng.random((n, 9)), np.eye(4)[rng.integers(0, 4, n)]


def train(params, X, Y, order, batch, lr, threads=1, **options):
    with AveragingTrainer(SPEC, params, dtype=np.float64, threads=threads, options=options) as t:
        t.load_data(X, Y)
        t.train_epoch(order, batch, lr)
        return t.get_weights()


def gd(params, X, Y, order, batch, lr):
    return reference.train_epoch(params, X, Y, np.asarray(order), batch, lr)


def combine(ps, how):
    total = Parameters([sum(p.weights[k] for p in ps) for k in range(2)],
                       [sum(p.biases[k] for p in ps) for k in range(2)])
    if how == "average":
        total = Parameters([w / len(ps) for w in total.weights], [b / len(ps) for b in total.biases])
    return total


@pytest.mark.parametrize("options", [{}, {"combine": "sum"}, {"sync_every": 2}])
def test_one_replica_is_minibatch_gd(options):
    params, X, Y = problem(17)
    order = epoch_order(17, 0, 0)
    got = train(params, X, Y, order, 4, 0.9, replicas=1, **options)
    assert got.max_abs_diff(gd(params, X, Y, order, 4, 0.9)) < 1e-12


@pytest.mark.parametrize("how", ["average", "sum"])
def test_two_replicas_combined_once(how):
    """13 examples: replica 0 trains on the first 7 of the order, replica 1 on the last 6, then combine."""
    params, X, Y = problem(13)
    order = epoch_order(13, 0, 1)
    expected = combine([gd(params, X, Y, order[:7], 3, 0.8), gd(params, X, Y, order[7:], 3, 0.8)], how)
    got = train(params, X, Y, order, 3, 0.8, replicas=2, combine=how)
    assert got.max_abs_diff(expected) < 1e-12
    other = combine([gd(params, X, Y, order[:7], 3, 0.8), gd(params, X, Y, order[7:], 3, 0.8)],
                    "sum" if how == "average" else "average")
    assert got.max_abs_diff(other) > 0.1   # the two rules really differ


def test_sync_every_minibatch_average_is_gd_on_the_rounds_examples():
    """Synced after every minibatch, averaging = one GD step on the n·B examples of each round."""
    params, X, Y = problem(12)
    order = epoch_order(12, 0, 2)
    s0, s1 = order[:6], order[6:]
    rounds = np.concatenate([np.concatenate([s0[j:j + 3], s1[j:j + 3]]) for j in (0, 3)])
    got = train(params, X, Y, order, 3, 0.8, replicas=2, sync_every=1)
    assert got.max_abs_diff(gd(params, X, Y, rounds, 6, 0.8)) < 1e-12
    once = train(params, X, Y, order, 3, 0.8, replicas=2, sync_every=0)
    assert got.max_abs_diff(once) > 1e-3


def test_sync_period_with_a_replica_out_of_minibatches():
    """13 examples, batch 3, sync every 2: shares of 7 (3+3+1) and 6 (3+3). Round 2: only replica 0 moves."""
    params, X, Y = problem(13)
    order = epoch_order(13, 0, 3)
    s0, s1 = order[:7], order[7:]
    theta = combine([gd(params, X, Y, s0[:6], 3, 0.8), gd(params, X, Y, s1, 3, 0.8)], "average")
    expected = combine([gd(theta, X, Y, s0[6:], 3, 0.8), theta], "average")
    got = train(params, X, Y, order, 3, 0.8, replicas=2, sync_every=2)
    assert got.max_abs_diff(expected) < 1e-12


def test_more_replicas_than_threads_gives_the_same_numbers():
    params, X, Y = problem(19)
    order = epoch_order(19, 0, 4)
    one = train(params, X, Y, order, 2, 0.5, threads=1, replicas=3, sync_every=2)
    two = train(params, X, Y, order, 2, 0.5, threads=2, replicas=3, sync_every=2)
    assert one.max_abs_diff(two) == 0.0
    shares = (order[:7], order[7:13], order[13:])
    # by hand: 7 examples = 4 minibatches of 2 (two rounds), 6 = 3 (two rounds, one idle in the second)
    theta = combine([gd(params, X, Y, s[:4], 2, 0.5) for s in shares], "average")
    theta = combine([gd(theta, X, Y, s[4:], 2, 0.5) for s in shares], "average")
    assert one.max_abs_diff(theta) < 1e-12


def test_default_replicas_follow_threads():
    params, _, _ = problem(4)
    with AveragingTrainer(SPEC, params, threads=2) as t:
        assert t.metadata()["replicas"] == 2 and t.metadata()["replica_threads"] == 2
        assert t.pool.alive() == 1
    assert t.pool.alive() == 0


@pytest.mark.parametrize("options,message", [
    ({"combine": "median"}, "combine must be one of average, sum"),
    ({"replicas": -1}, "replicas must be 0"),
    ({"sync_every": -2}, "sync_every must be 0"),
])
def test_bad_options_are_refused(options, message):
    params, _, _ = problem(4)
    with pytest.raises(UsageError, match=message):
        AveragingTrainer(SPEC, params, options=options)


def test_more_replicas_than_examples_is_refused():
    params, X, Y = problem(4)
    with AveragingTrainer(SPEC, params, options={"replicas": 5}) as t:
        t.load_data(X, Y)
        with pytest.raises(UsageError, match="5 replicas need at least 5 examples"):
            t.train_epoch(np.arange(4), 2, 0.1)


def test_study_command(tmp_path, capsys):
    from pgdbench.cli import main
    from pgdbench.core.protocol import usable_cpus

    if usable_cpus() < 2:
        pytest.skip("the study runs one thread per replica: 2 replicas need 2 usable CPUs")
    results = tmp_path / "study.jsonl"
    assert main(["averaging-study", "--dataset", "mnist-sample", "--layers", "784,16,10", "--replicas", "1,2",
                 "--batch-size", "20", "--lr", "2", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    table = out[out.index("combine  replicas"):]
    rows = [line.split() for line in table.splitlines()[2:6]]
    assert [r[:2] for r in rows] == [["average", "1"], ["average", "2"], ["sum", "1"], ["sum", "2"]]
    assert rows[1][2] == "2000"                         # each of 2 replicas sees half of the 4,000 digits
    records = [json.loads(line) for line in results.read_text().splitlines()]
    study = [r for r in records if r["kind"] == "averaging-study"]
    assert [(r["replicas"], r["combine"]) for r in study] == [(1, "none (1 replica)"), (2, "average"), (2, "sum")]
    assert all(r["status"] == "ok" and 0.5 < r["val_accuracy"] <= 1 for r in study)
    assert records[-1]["kind"] == "run_end" and records[-1]["status"] == "complete"


def test_study_refuses_unknown_rule():
    from pgdbench.cli import main

    assert main(["averaging-study", "--dataset", "mnist-sample", "--combine", "max"]) == 2

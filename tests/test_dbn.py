"""De Filippo De Grazia et al.'s (*Parallelization of Deep Networks*) DBN: the CD-1 step, the stopping rule,
learning on real digits, and the MPI runs of `pgdbench dbn`."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from pgdbench.studies import dbn, dbn_scaling
from tests.mpi_jobs import mpiexec_or_skip, run_job


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_cd1_step_matches_direct_numpy():
    """One CD-1 step on a 5×3 RBM, batch of 4, fixed uniforms, against the formulas written out with loops."""
    rng = np.random.default_rng(3)
    rbm = dbn.RBM(5, 3, np.float64)
    rbm.W[...] = rng.normal(0, 0.5, (5, 3))
    rbm.b[...] = rng.normal(0, 0.5, 5)
    rbm.c[...] = rng.normal(0, 0.5, 3)
    W0, b0, c0 = rbm.W.copy(), rbm.b.copy(), rbm.c.copy()
    v0 = rng.random((4, 5))
    u = rng.random((4, 3))
    lr = 0.3

    dW, db, dc, err = np.zeros((5, 3)), np.zeros(5), np.zeros(3), 0.0
    for n, v in enumerate(v0):                            # example by example, unit by unit
        hp = np.array([sigmoid(sum(v[i] * W0[i, j] for i in range(5)) + c0[j]) for j in range(3)])
        s = np.array([1.0 if u[n, j] < hp[j] else 0.0 for j in range(3)])
        vn = np.array([sigmoid(sum(s[j] * W0[i, j] for j in range(3)) + b0[i]) for i in range(5)])
        hn = np.array([sigmoid(sum(vn[i] * W0[i, j] for i in range(5)) + c0[j]) for j in range(3)])
        for i in range(5):
            for j in range(3):
                dW[i, j] += v[i] * hp[j] - vn[i] * hn[j]
        db += v - vn
        dc += hp - hn
        err += float(np.sum((v - vn) ** 2))

    got_err = dbn.CD1(rbm, 4, np.random.default_rng(0)).step(v0, lr, uniforms=u)
    np.testing.assert_allclose(rbm.W, W0 + lr / 4 * dW, rtol=0, atol=1e-14)
    np.testing.assert_allclose(rbm.b, b0 + lr / 4 * db, rtol=0, atol=1e-14)
    np.testing.assert_allclose(rbm.c, c0 + lr / 4 * dc, rtol=0, atol=1e-14)
    assert got_err == pytest.approx(err, rel=1e-12)
    assert np.abs(rbm.W - W0).max() > 1e-3                # the step moved the weights


def test_cd1_smaller_last_batch_and_float32():
    """A batch smaller than the buffers (the last of an epoch) uses the same formulas; float32 stays float32."""
    rng = np.random.default_rng(4)
    rbm = dbn.RBM.random(6, 4, 1, np.float32)
    W0 = rbm.W.astype(np.float64)
    v0 = rng.random((2, 6)).astype(np.float32)
    u = rng.random((2, 4)).astype(np.float32)
    dbn.CD1(rbm, 5, np.random.default_rng(0)).step(v0, 0.1, uniforms=u)
    hp = sigmoid(v0 @ W0)
    s = (u < hp).astype(np.float64)
    vn = sigmoid(s @ W0.T)
    hn = sigmoid(vn @ W0)
    assert rbm.W.dtype == np.float32
    np.testing.assert_allclose(rbm.W, W0 + 0.1 / 2 * (v0.T @ hp - vn.T @ hn), atol=1e-6)


@pytest.mark.parametrize("errors, stop", [
    ([1.0, 0.9, 0.8, 0.7], False),             # falling steadily
    ([1.0, 0.9, 0.9, 0.9, 0.9], True),         # three epochs without progress
    ([1.0, 0.9, 0.9, 0.9], False),             # only two
    ([1.0, 0.9, 0.9, 0.8, 0.8, 0.8], False),   # the streak was broken
    ([1.0, 0.9, 0.95, 0.94, 0.93], True),      # a rise counts as no progress; small falls ≤ τ too
    ([1.0, 0.9, 0.88, 0.86, 0.84], False),     # falls of 0.02 > τ
    ([1.0, 1.0, 1.0], False),                  # too short to decide
])
def test_convergence_rule(errors, stop):
    assert dbn.converged(errors, tau=0.015) is stop


def test_convergence_rule_fall_of_exactly_tau_is_no_progress():
    assert dbn.converged([2.0, 1.75, 1.5, 1.25], tau=0.25)          # fell by τ, not by more than τ
    assert not dbn.converged([2.0, 1.75, 1.5, 1.125], tau=0.25)
    assert dbn.converged([5.0, 1.0, 1.0, 1.0, 1.0], tau=0.0, patience=3)


def test_reconstruction_error_falls_on_real_digits():
    """Single process, real handwritten digits: the epoch's reconstruction error falls, and held-out digits are
    reconstructed far better than by the initial weights."""
    from pgdbench.data.embedded import load_mnist_sample

    data = load_mnist_sample()
    rbms, reports = dbn.pretrain(dbn.Comm1(), data.X_train[:1500], [32], epochs=4, batch_size=25, lr=0.1, seed=0)
    errors = reports[0].reconstruction_errors
    assert len(errors) == 4 and errors[-1] < 0.8 * errors[0], errors
    before = dbn.RBM.random(784, 32, [0, 1, 4]).reconstruction_error(data.X_test)
    after = rbms[0].reconstruction_error(data.X_test)
    assert after < 0.5 * before, (before, after)


def test_convergence_stops_pretraining():
    from pgdbench.data.embedded import load_mnist_sample

    X = load_mnist_sample().X_train[:500]
    _, reports = dbn.pretrain(dbn.Comm1(), X, [16], epochs=40, batch_size=50, lr=0.1, tau=0.01, seed=0)
    assert reports[0].stopped_by == "convergence" and 4 <= reports[0].epochs < 40
    assert dbn.converged(reports[0].reconstruction_errors, 0.01)
    assert not dbn.converged(reports[0].reconstruction_errors[:-1], 0.01)  # and not one epoch earlier


def test_pretraining_helps_fine_tuning():
    """De Filippo De Grazia et al.'s (*Parallelization of Deep Networks*) premise on real digits: the same deep
    sigmoid net, fine-tuned with the same budget, classifies
    far better when its hidden layers come from the RBMs than from Glorot-random weights."""
    from pgdbench.data.embedded import load_mnist_sample
    from pgdbench.core.model import NetSpec, glorot_uniform

    data = load_mnist_sample()
    hidden = [32, 32, 64]
    rbms, _ = dbn.pretrain(dbn.Comm1(), data.X_train, hidden, epochs=3, batch_size=25, lr=0.1, seed=0)
    pre, _, _ = dbn.fine_tune(rbms, data, epochs=4, batch_size=125, lr=2.0, tau_rms=None)
    random = glorot_uniform(NetSpec((784, *hidden)), 0)
    stand_ins = []
    for W in random.weights:
        r = dbn.RBM(*W.shape)
        r.W[...] = W
        stand_ins.append(r)
    scratch, _, _ = dbn.fine_tune(stand_ins, data, epochs=4, batch_size=125, lr=2.0, tau_rms=None)
    assert pre.test_error < 0.6 and pre.test_error < scratch.test_error - 0.2, (pre.test_error, scratch.test_error)
    assert pre.rms_errors[-1] < pre.rms_errors[0]


def test_power_law_exponent():
    assert dbn_scaling.power_law_exponent([1, 2, 4, 8], [100 * k ** -0.86 for k in (1, 2, 4, 8)]) == pytest.approx(-0.86)


# -- under MPI ---------------------------------------------------------------





def test_two_ranks_follow_table_1(tmp_path):
    """2 ranks, one layer, 2 epochs: the result equals the master's averaging of the two ranks' epoch updates,
    recomputed here in one process from the same shards and random streams."""
    mpiexec = mpiexec_or_skip()
    script = (
        "import numpy as np; from pgdbench.core import mpi; from pgdbench.studies import dbn; from pgdbench.data.embedded import load_mnist_sample; "
        "c = mpi.comm(); X = load_mnist_sample().X_train[:301] if c.Get_rank() == 0 else None; "
        "rbms, rep = dbn.pretrain(c, X, [8], epochs=2, batch_size=20, lr=0.1, seed=5); "
        f"c.Get_rank() == 0 and np.save({str(tmp_path / 'flat.npy')!r}, rbms[0].flat)")
    proc = run_job([mpiexec, "-n", "2", sys.executable, "-c", script], timeout=90, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = np.load(tmp_path / "flat.npy")

    from pgdbench.data.embedded import load_mnist_sample
    from pgdbench.core.mpi import share
    X = load_mnist_sample().X_train[:301][np.random.default_rng([5, 4004]).permutation(301)]
    shards = [X[slice(*share(301, r, 2))] for r in range(2)]
    common = dbn.RBM.random(784, 8, [5, 1, 4])
    copies = [dbn.RBM(784, 8) for _ in range(2)]
    rngs = [np.random.default_rng([5, 1, r, 5]) for r in range(2)]
    steppers = [dbn.CD1(copies[r], 20, rngs[r]) for r in range(2)]
    for _ in range(2):
        deltas = []
        for r in range(2):
            copies[r].flat[...] = common.flat
            order = rngs[r].permutation(len(shards[r]))
            for s in range(0, len(order), 20):
                steppers[r].step(shards[r][order[s:s + 20]], 0.1)
            deltas.append(copies[r].flat - common.flat)
        common.flat += (deltas[0] + deltas[1]) / 2
    np.testing.assert_allclose(got, common.flat, rtol=0, atol=1e-5)
    one_rank = dbn.pretrain(dbn.Comm1(), load_mnist_sample().X_train[:301], [8], epochs=2, batch_size=20, lr=0.1,
                            seed=5)[0][0]
    assert np.abs(one_rank.flat - got).max() > 1e-3        # 2 ranks really differ from 1 rank


def test_dbn_command_scaling_study(tmp_path):
    """`pgdbench dbn --scaling 1,2` at CI size: one job per rank count, a table, an exponent, records of both."""
    mpiexec_or_skip()
    out = tmp_path / "dbn.jsonl"
    proc = run_job([sys.executable, "-m", "pgdbench.cli", "dbn", "--scaling", "1,2", "--dataset", "mnist-sample",
                    "--hidden", "32,32,64", "--epochs", "2", "--examples", "1000", "--finetune-epochs", "2",
                    "--results", str(out), "--quiet"], timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "power-law exponent" in proc.stdout and "-0.86" in proc.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    summaries = [r for r in records if r.get("kind") == "dbn"]
    assert sorted(r["ranks"] for r in summaries) == [1, 2]
    for r in summaries:
        assert r["n_train"] == 1000 and r["layer_epochs"] == [2, 2, 2] and 0 <= r["test_error"] <= 1
        assert len(r["rms_errors"]) == 2 and r["rms_errors"][1] < r["rms_errors"][0]  # fine-tuning learns
    assert len([r for r in records if r.get("kind") == "dbn_layer"]) == 6
    study = next(r for r in records if r.get("kind") == "dbn_scaling")
    assert study["ranks"] == [1, 2] and study["exponent"] is not None


def test_dbn_rejects_more_ranks_than_examples(tmp_path):
    """Bad input is refused on the master with one line, and the whole job ends."""
    mpiexec = mpiexec_or_skip()
    proc = run_job([mpiexec, "-n", "2", sys.executable, "-m", "pgdbench.cli", "dbn", "--dataset", "mnist-sample",
                    "--examples", "1", "--hidden", "4", "--epochs", "1", "--finetune-epochs", "0",
                    "--results", str(tmp_path / "x.jsonl")], timeout=60, cwd=tmp_path)
    assert proc.returncode != 0
    assert "cannot be split over 2 ranks" in proc.stderr, proc.stderr

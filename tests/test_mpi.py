"""The MPI backends under a real `mpiexec -n 2` (mpich or Open MPI from PyPI), launched as subprocesses."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pgdbench.core import reference
from pgdbench.core.model import NetSpec, Parameters, epoch_order, glorot_uniform
from pgdbench.core.protocol import module_missing
from tests.mpi_jobs import mpiexec_or_skip as mpiexec, run_job

pytestmark = pytest.mark.skipif(module_missing("mpi4py") is not None,
                                reason="mpi4py not installed (pip install -e '.[mpi]')")

TINY = ["--layers", "784,16,10", "--dataset", "mnist-sample", "--dtype", "float64", "--quiet", "--lr", "0.5"]






def launch(ranks: int, *argv: str, timeout: float = 60, **kw):
    return run_job([mpiexec(), "-n", str(ranks), sys.executable, "-m", "pgdbench.cli", *argv], timeout, **kw)


def test_modules_do_not_import_mpi4py():
    code = ("import sys, implementations.mpi_allreduce, implementations.mpi_averaging, pgdbench.studies.dbn, "
            "pgdbench.core.mpi, pgdbench.harness.mpi_jobs, pgdbench.cli, pgdbench.cli.commands.dbn, "
            "pgdbench.cli.commands.mpi_bench; from pgdbench.core import registry; [registry.get(n) for n in ('mpi', 'mpi-averaging')]; "
            "assert 'mpi4py' not in sys.modules, 'mpi4py imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("local", ["numpy", "torch"])
def test_two_ranks_equal_single_process(tmp_path, local):
    """2-rank `mpi` training equals single-process numpy training in float64 (batch 37: uneven halves, last batch 4),
    with the built-in local gradient and with another registered backend computing it (-o local=torch)."""
    from pgdbench.core import registry
    from pgdbench.data.embedded import load_mnist_sample
    from pgdbench.core.registry import get
    from pgdbench.core.training import Settings, fit

    avail = registry.entries()[local].availability()
    if not avail:
        pytest.skip(f"local backend {local} unavailable: {avail.reason}")
    args = ["train", "--backend", "mpi", *TINY, "--epochs", "2", "--batch-size", "37", "-o", f"local={local}",
            "--save", str(tmp_path / "mpi.npz"), "--results", str(tmp_path / "r.jsonl")]
    proc = launch(2, *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = Parameters.load(tmp_path / "mpi.npz")

    data = load_mnist_sample()
    spec = NetSpec((784, 16, 10))
    expected = fit(get("numpy"), spec, data, Settings(batch_size=37, learning_rate=0.5, dtype="float64"), epochs=2,
                   evaluate_every_epoch=False).params
    assert expected.max_abs_diff(glorot_uniform(spec, 0, np.float64)) > 1e-2  # the training really moved
    assert got.max_abs_diff(expected) < 1e-10

    # only rank 0 printed and wrote: one header, one run in the results file
    assert proc.stdout.count("backend mpi (processes)") == 1, proc.stdout
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records].count("run_start") == 1
    assert any(r["kind"] == "train" for r in records)


def test_averaging_two_ranks_is_the_mean_of_shard_training(tmp_path):
    """`mpi-averaging` at 2 ranks: each epoch = minibatch GD on each half of the order, then the mean (De Filippo
    De Grazia et al., *Parallelization of Deep Networks*)."""
    from pgdbench.data.embedded import load_mnist_sample

    n = 600
    np.savez(tmp_path / "d.npz", **_small_npz(load_mnist_sample(), n))
    proc = launch(2, "train", "--backend", "mpi-averaging", *TINY[:2], "--dataset", f"npz:{tmp_path / 'd.npz'}",
                  "--dtype", "float64", "--quiet", "--lr", "0.5", "--epochs", "2", "--batch-size", "25",
                  "--save", str(tmp_path / "avg.npz"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = Parameters.load(tmp_path / "avg.npz")

    d = np.load(tmp_path / "d.npz")
    X, Y = d["X_train"].astype(np.float64), np.eye(10)[d["y_train"]]
    params = glorot_uniform(NetSpec((784, 16, 10)), 0, np.float64)
    for epoch in (1, 2):
        order = epoch_order(n, 0, epoch)
        halves = [reference.train_epoch(params, X, Y, part, 25, 0.5) for part in (order[:n // 2], order[n // 2:])]
        params = Parameters([(a + b) / 2 for a, b in zip(halves[0].weights, halves[1].weights)],
                            [(a + b) / 2 for a, b in zip(halves[0].biases, halves[1].biases)])
    assert got.max_abs_diff(params) < 1e-10
    # and it is not plain minibatch GD (the check above could not pass by accident)
    plain = glorot_uniform(NetSpec((784, 16, 10)), 0, np.float64)
    for epoch in (1, 2):
        plain = reference.train_epoch(plain, X, Y, epoch_order(n, 0, epoch), 25, 0.5)
    assert got.max_abs_diff(plain) > 1e-3


def _small_npz(data, n):
    return {"X_train": data.X_train[:n], "y_train": data.y_train[:n], "X_val": data.X_val[:50],
            "y_val": data.y_val[:50], "X_test": data.X_test[:50], "y_test": data.y_test[:50]}


def test_failing_rank_aborts_the_job(tmp_path):
    """Bad input on rank 1 only (a missing data file): the job ends non-zero, fast, naming the rank and the cause."""
    script = ("import os, sys; from pgdbench.cli import main; "
              "bad = os.environ.get('PMI_RANK', os.environ.get('OMPI_COMM_WORLD_RANK')) == '1'; "
              f"sys.exit(main(['train', '--backend', 'mpi', '--layers', '784,16,10', '--epochs', '200', '--quiet', "
              f"'--save', {str(tmp_path / 'x.npz')!r}, "
              "'--dataset', 'npz:/nonexistent/data.npz' if bad else 'mnist-sample']))")
    start = time.monotonic()
    proc = run_job([mpiexec(), "-n", "2", sys.executable, "-c", script], timeout=60, cwd=tmp_path)
    assert proc.returncode != 0
    assert time.monotonic() - start < 30
    assert "rank 1 of 2 failed" in proc.stderr and "data.npz" in proc.stderr, proc.stderr
    assert not (tmp_path / "x.npz").exists()


def test_killed_rank_ends_the_job(tmp_path):
    """SIGKILL on rank 1 mid-training: mpiexec ends the job with a non-zero status within 30 s."""
    import psutil

    cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "pgdbench.cli", "train", "--backend", "mpi",
           "--layers", "784,32,10", "--dataset", "mnist-sample", "--epochs", "1000", "--batch-size", "10",
           "--quiet", "--save", str(tmp_path / "k.npz")]
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                           start_new_session=True)
    try:
        assert "epoch   1" in job.stdout.readline() + job.stdout.readline() + job.stdout.readline()
        victim = None
        for p in psutil.Process(job.pid).children(recursive=True):
            try:
                env = p.environ()
            except psutil.Error:
                continue
            if env.get("PMI_RANK", env.get("OMPI_COMM_WORLD_RANK")) == "1":
                victim = p
        assert victim is not None, "rank 1 not found among mpiexec's children"
        victim.send_signal(signal.SIGKILL)
        start = time.monotonic()
        job.wait(timeout=30)
        assert time.monotonic() - start < 30
        assert job.returncode != 0
        assert not (tmp_path / "k.npz").exists()
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.communicate()


def test_mpi_bench_over_ranks(tmp_path):
    """`pgdbench mpi-bench` spawns one job per rank count and records ranks and parallel efficiency."""
    out = tmp_path / "mb.jsonl"
    proc = run_job([sys.executable, "-m", "pgdbench.cli", "mpi-bench", "--ranks", "1,2", "--net", "net1h",
                    "--batch-size", "128", "--dataset", "synthetic:600", "--epochs", "1", "--results", str(out),
                    "--quiet"], timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    bench = [r for r in records if r.get("kind") == "bench"]
    assert sorted(r["ranks"] for r in bench) == [1, 2] and all(r["status"] == "ok" for r in bench), bench
    two = next(r for r in bench if r["ranks"] == 2)
    assert two["backend_metadata"]["ranks"] == 2 and two["parallel_efficiency"] > 0
    assert "efficiency" in proc.stdout


def test_backend_refuses_different_data_on_ranks(tmp_path):
    """Ranks given data of different shapes stop with a clear error instead of training different nets."""
    script = ("import os, sys, numpy as np; from pgdbench.core.registry import get; from pgdbench.core.model import *; "
              "r = int(os.environ.get('PMI_RANK', os.environ.get('OMPI_COMM_WORLD_RANK', 0))); "
              "s = NetSpec((5, 3, 2)); t = get('mpi')(s, glorot_uniform(s, 0)); "
              "t.load_data(np.zeros((10 + r, 5), np.float32), np.zeros((10 + r, 2), np.float32))")
    proc = run_job([mpiexec(), "-n", "2", sys.executable, "-c", script], timeout=60)
    assert proc.returncode != 0
    assert "different training data shapes" in proc.stderr, proc.stderr



@pytest.mark.parametrize("local", ["threads", "torch"])
def test_any_registered_backend_as_local_passes_the_kit(local):
    """One rank, in process: the protocol-driven local path is held to the same float64 checks as the fast path."""
    from pgdbench.core import registry, testing

    avail = registry.entries()[local].availability()
    if not avail:
        pytest.skip(f"local backend {local} unavailable: {avail.reason}")

    class WithLocal(registry.get("mpi")):
        reference_options = {"local": local}

    testing.check_gradients(WithLocal)
    testing.check_training_steps(WithLocal, 1, np.float64)
    testing.check_training_steps(WithLocal, 1, np.float32)


def test_local_backend_cannot_be_mpi():
    from pgdbench.core import registry
    from pgdbench.errors import UsageError
    from pgdbench.core.testing import small_problem

    spec, params, _, _ = small_problem()
    with pytest.raises(UsageError, match="cannot itself be an MPI backend"):
        registry.get("mpi")(spec, params, options={"local": "mpi-averaging"})

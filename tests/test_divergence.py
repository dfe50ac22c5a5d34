"""A run that learns nothing because its sigmoids saturated is diverged, like one whose loss became NaN.

Before, `--lr 1e30` left the loss at 0.5 and the accuracy at chance, and `train` reported a time as if all were
well, `bench` recorded `ok` and `tune` chose it. The rule (pgdbench.core.training.no_learning) must not cry wolf:
a small learning rate that learns slowly is not flagged.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from pgdbench.core.registry import get
from pgdbench.core.model import NetSpec
from pgdbench.core.training import Settings, fit
from pgdbench.data.embedded import load_mnist_sample
from pgdbench.harness.results import read_records

CLI = [sys.executable, "-m", "pgdbench.cli"]
SMALL = ["--layers", "784,32,10", "--epochs", "1", "--quiet"]


def _cli(*args, cwd=None):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=180, cwd=cwd)


def test_train_with_saturated_sigmoids_reports_diverged():
    proc = _cli("train", "--lr", "1e30", *SMALL)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "diverged in epoch 1" in err[0] and "saturated" in err[0], err
    assert "test accuracy" not in proc.stdout and "time/epoch" not in proc.stdout


def test_bench_records_saturation_as_diverged_without_a_time(tmp_path):
    results = tmp_path / "b.jsonl"
    proc = _cli("bench", "--backend", "numpy", "--net", "784,32,10", "--batch-size", "32", "--threads", "1",
                "--dataset", "mnist-sample", "--lr", "1e30", "--quiet", "--results", str(results))
    assert proc.returncode == 0, proc.stderr
    bench = [r for r in read_records(results)[0] if r.get("kind") == "bench"]
    assert bench and all(r["status"] == "diverged" for r in bench), bench
    assert all("seconds_per_epoch" not in r and "saturated" in r["reason"] for r in bench)


def test_tune_never_chooses_a_saturating_rate():
    """1e-4 learns almost nothing in one epoch (7.8 % here) and 1e30 saturates at chance (10.4 %): main chose 1e30."""
    proc = _cli("tune", "--grid", "0.0001,1e30", "--layers", "784,32,10", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    assert "best learning rate: 0.0001" in proc.stdout, proc.stdout
    assert any(line.startswith("1e+30") and "diverged" in line for line in proc.stdout.splitlines()), proc.stdout


def test_slow_learning_is_not_flagged():
    """The README's slow learners: lr 0.01 for one epoch (val accuracy about 18 %), and the tune grid's smallest
    rates at batch 128 for two epochs (about chance, but the loss falls)."""
    data, spec, numpy = load_mnist_sample(), NetSpec((784, 1024, 10)), get("numpy")
    for lr, batch, epochs in [(0.01, 32, 1), (0.001, 128, 2), (0.002, 128, 2)]:
        result = fit(numpy, spec, data, Settings(batch, lr), epochs=epochs)
        assert not result.diverged and len(result.epochs) == epochs


def test_no_learning_rule():
    from pgdbench.core.training import no_learning

    labels = np.array([0, 1, 2, 2])
    start = lambda: 1.0  # noqa: E731
    saturated = np.array([[1.0, 0, 0]] * 4)
    assert "saturated" in no_learning(saturated, labels, 0.5, start)            # at chance (1/4 < 2/4), saturated
    soft = np.full((4, 3), 0.3)
    soft[:, 0] = 0.4
    assert "not below its starting value" in no_learning(soft, labels, 1.0, start)
    assert no_learning(soft, labels, 0.9, start) == ""                         # at chance, but the loss fell
    right = np.eye(3)[labels]                                                   # saturated, but right
    assert no_learning(right, labels, 0.0, start) == ""
    asked = []
    no_learning(saturated, labels, 0.5, lambda: asked.append(1) or 1.0)        # the start loss is not needed
    assert asked == []

"""The command line through a subprocess, as a user runs it: output, exit codes, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pgdbench.core.model import Parameters


def pgdbench(*args, ok=True, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "pgdbench.cli", *args], capture_output=True, text=True,
                          timeout=timeout)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_list_shows_numpy_available():
    out = pgdbench("list").stdout
    assert any(line.split()[:2] == ["numpy", "matrix"] and line.rstrip().endswith("yes") for line in out.splitlines())


def test_train_on_the_embedded_default(tmp_path):
    params = tmp_path / "p.npz"
    results = tmp_path / "r.jsonl"
    out = pgdbench("train", "--backend", "numpy", "--layers", "784,64,10", "--epochs", "2", "--batch-size", "20",
                   "--lr", "2", "--save", str(params), "--results", str(results)).stdout
    assert "mnist-sample: 4000 train" in out
    lines = [l for l in out.splitlines() if l.startswith("epoch")]
    assert len(lines) == 2 and "GFLOP/s" in lines[0] and "time/epoch" in lines[0]
    test_acc = float(out.split("test accuracy ")[1].split("%")[0])
    assert test_acc > 80
    p = Parameters.load(params)
    assert [w.shape for w in p.weights] == [(784, 64), (64, 10)]
    records = [json.loads(l) for l in results.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["run_start", "epoch", "epoch", "train", "run_end"]
    assert records[-1]["status"] == "complete" and records[0]["machine"]["cpu_model"]


def test_train_max_examples_is_labelled_projected():
    out = pgdbench("train", "--layers", "784,32,10", "--epochs", "1", "--max-examples", "500").stdout
    assert "(projected)" in out


@pytest.mark.parametrize("args,message", [
    (["train", "--backend", "nope"], "unknown backend 'nope'"),
    (["train", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["train", "--batch-size", "4001"], "batch size 4001 is larger than the 4000 training examples"),
    (["train", "--threads", "0"], "--threads: must be at least 1"),
    (["train", "--threads", "4096"], "4096 threads is more than"),
    (["train", "--lr", "nan"], "--lr: must be a positive finite number"),
    (["train", "--lr", "-1"], "--lr: must be a positive finite number"),
    (["train", "--layers", "784,10,3"], "layers 784-10-3 do not match the data"),
    (["train", "--net", "net9h"], "unknown net 'net9h'"),
    (["train", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["train", "--dataset", "mnist", "--data-dir", "/nonexistent"], "no such directory"),
    (["train", "-o", "tile=3"], "backend 'numpy' has no option tile"),
    (["train", "-o", "tile"], "--option expects KEY=VALUE"),
    (["bench", "--backend", "nope"], "unknown backend 'nope'"),
    (["check", "nope"], "unknown backend 'nope'"),
    (["tune", "--grid", "0.1,abc"], "expected a number"),
    (["peak", "--threads", "0"], "must be at least 1"),
])
def test_bad_arguments_give_one_line_errors(args, message):
    proc = pgdbench(*args, ok=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_missing_real_data_offline(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = pgdbench("train", "--dataset", "mnist", "--data-dir", str(tmp_path / "empty"), ok=False)
    assert proc.returncode == 2 and "not found locally" in proc.stderr and "Traceback" not in proc.stderr


def test_nan_data_file(tmp_path):
    X = np.random.default_rng(0).random((30, 4))
    X[0, 0] = np.nan
    np.savez(tmp_path / "d.npz", X_train=X, y_train=np.arange(30) % 2, X_test=X[:3], y_test=np.zeros(3, int))
    proc = pgdbench("train", "--dataset", f"npz:{tmp_path / 'd.npz'}", "--layers", "4,3,2", ok=False)
    assert proc.returncode == 2 and "NaN or infinite" in proc.stderr


def test_check_command_reports_every_check():
    out = pgdbench("check", "numpy").stdout
    assert "PASSED  protocol" in out and "PASSED  gradients[threads=1]" in out
    assert "PASSED  training-steps[float32,threads=1]" in out and "PASSED  convergence" in out


def test_tune_picks_the_best_rate_and_records_its_arguments(tmp_path):
    results = tmp_path / "t.jsonl"
    out = pgdbench("tune", "--layers", "784,32,10", "--epochs", "1", "--batch-size", "50",
                   "--grid", "0.001,2", "--results", str(results)).stdout
    assert "best learning rate: 2" in out
    start = json.loads(results.read_text().splitlines()[0])
    assert start["kind"] == "run_start" and start["config"]["grid"] == [0.001, 2.0]
    assert start["config"]["batch_size"] == 50 and "run" not in start["config"]


def test_bench_table_and_results(tmp_path):
    results = tmp_path / "b.jsonl"
    out = pgdbench("bench", "--dataset", "synthetic:600", "--net", "net1h", "--batch-size", "64,128",
                   "--threads", "1", "--results", str(results), "--quiet").stdout
    assert "vs serial" in out and out.count("numpy") >= 2
    records = [json.loads(l) for l in results.read_text().splitlines()]
    bench = [r for r in records if r["kind"] == "bench"]
    assert len(bench) == 2 and all(r["status"] == "ok" and r["seconds_per_epoch"] > 0 for r in bench)
    assert records[-1] == {**records[-1], "kind": "run_end", "status": "complete", "records": 2}


def test_peak_measures_and_stores(tmp_path):
    out = pgdbench("peak", "--threads", "1", "--size", "256", "--repeats", "2").stdout
    assert "float32  1" in out and "float64  1" in out and "stored in" in out


def test_help_documents_every_command():
    out = pgdbench("--help").stdout
    from pgdbench.cli import COMMANDS
    for name in COMMANDS:
        assert name in out
        assert pgdbench(name, "--help").returncode == 0

"""The benchmark suites (asv, pytest-benchmark): their points, the probe they measure through, their workflows.

The pytest-benchmark workflow runs for real in subprocesses on a one-point
grid: autosave, compare against it, then compare-fail against a saved
baseline edited to be 10× faster (the legit way to prove the failure path
without waiting for a real regression).
"""
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent


def _suite(name):
    sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module(f"benchmarks.{name}")
    finally:
        sys.path.remove(str(ROOT))


def test_asv_suite_covers_the_history_table_and_times_one_step():
    bench = _suite("bench_training")
    labels = bench.TimeTraining.params[0]
    assert "numpy net1h B=32 T=1" in labels and "python 784-32-10 B=4 T=1" in labels
    assert all(bench.POINTS[label].threads == 1 for label in labels)
    # asv starts a process per point of every benchmark: the history grid stays small (≤ 60 s per commit)
    assert len(labels) <= 24
    # peak memory at each backend's largest batch only
    assert "numpy net1h B=512 T=1" in bench.PeakMemTraining.params[0]
    assert "numpy net1h B=32 T=1" not in bench.PeakMemTraining.params[0]
    timer = bench.TimeTraining()
    timer.setup("numpy net1h B=32 T=1")
    try:
        timer.time_step("numpy net1h B=32 T=1")
        timer.time_step("numpy net1h B=32 T=1")
        assert timer.stepper._next == 2
    finally:
        timer.teardown("numpy net1h B=32 T=1")


def test_asv_suite_skips_a_point_that_cannot_run_here_with_the_reason(monkeypatch):
    bench = _suite("bench_training")
    monkeypatch.setitem(bench.POINTS, "nope net1h B=32 T=1", bench.probe.Point("nope"))
    with pytest.raises(NotImplementedError, match="not registered"):   # asv records it as n/a, prints the reason
        bench.TimeTraining().setup("nope net1h B=32 T=1")
    monkeypatch.setitem(bench.POINTS, "numpy net1h B=32 T=4096", bench.probe.Point("numpy", threads=4096))
    with pytest.raises(NotImplementedError, match="CPUs"):
        bench.TimeTraining().setup("numpy net1h B=32 T=4096")


def test_benchmark_suites_import_neither_pgdbench_nor_a_backend():
    """asv imports benchmarks/ in environments of old commits, anew in a process per point: the suites must not
    depend on the installed pgdbench's layout (they load the probe by path), and importing them must stay cheap."""
    code = ("import sys; import benchmarks.bench_training, benchmarks.test_bench_training; "
            "mine = sorted(m for m in sys.modules if m.split('.')[0] in ('pgdbench', 'implementations', 'scipy', "
            "'torch', 'numba')); assert not mine, mine")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_probe_measures_the_first_revision_with_the_trainer_protocol(tmp_path):
    """The oldest commit asv's history (and the gate) may meet: the probe runs its numpy backend from its own tree."""
    first = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if first.returncode != 0 or not first.stdout.strip():
        pytest.skip("not a git checkout with history: cannot export the first commit")
    commit = first.stdout.split()[0]
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"cannot export {commit}: {archive.stderr.decode().strip()}")
    tree = tmp_path / "tree"
    tree.mkdir()
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    assert not (tree / "pgdbench" / "harness").exists()   # really an old layout
    requests = [{"op": "info"}, {"op": "setup", "backend": "numpy", "net": "784-32-10", "batch_size": 8,
                                 "examples": 16}, {"op": "sample"}]
    probe = ROOT / "pgdbench" / "harness" / "probe.py"
    out = subprocess.run([sys.executable, str(probe), "--tree", str(tree)], cwd=tree, capture_output=True, text=True,
                         input="".join(json.dumps(r) + "\n" for r in requests), timeout=120,
                         env={**os.environ, "PYTHONPATH": str(tree)})
    info, setup, sample = [json.loads(line) for line in out.stdout.splitlines()]
    assert info["backends"] == ["numpy"], info
    assert all(str(tree) in p for p in info["files"]["pgdbench"])
    assert setup["status"] == "ok" and sample["seconds"][0] > 0, (setup, out.stderr)


def test_asv_check_discovers_the_suite(tmp_path):
    # beside this interpreter first: CI runs .venv/bin/python without activating the venv
    beside = Path(sys.executable).parent / "asv"
    asv = str(beside) if beside.exists() else shutil.which("asv")
    if asv is None:
        pytest.skip("asv is not installed (pip install asv)")
    out = subprocess.run([asv, "check", "--python=same"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No problems found" in out.stdout


def _pytest_bench(tmp_path, *extra):
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "benchmarks"), "-p", "no:cacheprovider", "-q",
           "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), "--backend", "numpy,python", "--net", "net1h",
           "--batch-size", "64,128", "--threads", "1", "--benchmark-max-time=0.05", "--benchmark-storage=store",
           *extra]
    # run from tmp_path: pytest-benchmark wants its storage below the working directory
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_pytest_benchmark_autosave_compare_and_compare_fail(tmp_path):
    first = _pytest_bench(tmp_path, "--benchmark-autosave", f"--benchmark-json={tmp_path}/run.json")
    assert first.returncode == 0, first.stdout + first.stderr
    saved = sorted((tmp_path / "store").rglob("0001_*.json"))
    assert len(saved) == 1
    data = json.loads(saved[0].read_text())
    names = {b["name"] for b in data["benchmarks"]}
    assert "test_train_step[numpy-net1h-B=64-T=1]" in names and "test_train_step[numpy-net1h-B=128-T=1]" in names
    numpy64 = next(b for b in data["benchmarks"] if b["name"] == "test_train_step[numpy-net1h-B=64-T=1]")
    # rounds calibrated by time, not a fixed number
    assert numpy64["stats"]["rounds"] >= 5
    info = numpy64["extra_info"]
    for key in ("gflops", "threads", "dtype", "projected", "seconds_per_epoch", "date"):
        assert key in info, key
    assert info["projected"] is True and info["gflops"] > 0
    assert info["seconds_per_epoch"] == pytest.approx(numpy64["stats"]["median"] * 50_000 / 64)
    # groups: by net and batch size; the pure-Python backend (its own small net) alone in its group
    groups = {b["name"]: b["group"] for b in data["benchmarks"]}
    assert groups["test_train_step[numpy-net1h-B=64-T=1]"] == "net1h B=64"
    # (the pure-Python backend keeps its own table of points.toml, whatever --net and --batch-size say)
    python = [g for n, g in groups.items() if n.startswith("test_train_step[python")]
    assert python == ["784-32-10 B=4"]
    # machine_info holds only what stays the same on this machine: no date, no commit, no current clock speed
    mi = data["machine_info"]
    assert mi["pgdbench"]["blas"] and "numba_threading_layer" in mi["pgdbench"]
    assert "date" not in mi["pgdbench"] and "git_commit" not in mi["pgdbench"] and "hz_actual" not in mi["cpu"]

    # compare against the saved run: the machine is the same (no warning), each saved row beside its new row
    ok = _pytest_bench(tmp_path, "--benchmark-compare=0001", "--benchmark-compare-fail=median:1000%")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "machine_info is different" not in ok.stdout + ok.stderr
    rows = [line.split()[0] for line in ok.stdout.splitlines() if line.startswith("test_train_step[")]
    for k in range(0, len(rows) - 1, 2):
        assert rows[k].split("(")[0] == rows[k + 1].split("(")[0], rows

    # a baseline ten times faster than reality: compare-fail on the median must trigger
    for b in data["benchmarks"]:
        for k in ("min", "max", "mean", "median", "stddev", "iqr", "q1", "q3", "total"):
            b["stats"][k] /= 10
    saved[0].write_text(json.dumps(data))
    bad = _pytest_bench(tmp_path, "--benchmark-compare=0001", "--benchmark-compare-fail=median:10%")
    assert bad.returncode != 0, bad.stdout
    assert "Performance has regressed" in bad.stdout + bad.stderr

    # and the report reads pytest-benchmark JSON
    rep = subprocess.run([sys.executable, "-m", "pgdbench.cli", "report", f"{tmp_path}/run.json", "--out",
                          str(tmp_path / "rep")], capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    assert "| net1h | numpy T=1 | 64 |" in (tmp_path / "rep" / "report.md").read_text()


def test_pytest_tests_does_not_collect_the_benchmarks():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)  # testpaths: what `pytest` runs
    assert out.returncode == 0, out.stdout + out.stderr
    assert "test_harness.py" in out.stdout
    assert "test_train_step" not in out.stdout and "benchmarks/" not in out.stdout
    cfg = (ROOT / "pyproject.toml").read_text()
    assert 'testpaths = ["tests"]' in cfg

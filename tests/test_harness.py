"""The benchmark harness: the shared grid, the asv suite and the pytest-benchmark workflow.

The pytest-benchmark workflow runs for real in subprocesses on a one-point
grid: autosave, compare against it, then compare-fail against a saved
baseline edited to be 10× faster (the legit way to prove the failure path
without waiting for a real regression).
"""
import importlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pgdbench.harness import grid, workload
from pgdbench.harness.grid import Config
from pgdbench.harness.workload import NotApplicable, Workload

ROOT = Path(__file__).resolve().parent.parent


def test_harness_axes_defaults_cover_every_registered_backend():
    from pgdbench.core import registry

    axes = workload.harness_axes(environ={})
    assert axes["backends"] == registry.names()
    assert axes["nets"] == list(grid.NETS) and axes["batch_sizes"] == list(grid.BATCH_SIZES)
    assert axes["threads"][0] == 1


def test_harness_axes_environment_and_explicit_values():
    env = {"PGDBENCH_GRID_BACKENDS": "numpy", "PGDBENCH_GRID_BATCH_SIZES": "64, 256", "PGDBENCH_GRID_THREADS": "1"}
    axes = workload.harness_axes(environ=env)
    assert axes["backends"] == ["numpy"] and axes["batch_sizes"] == [64, 256] and axes["threads"] == [1]
    assert workload.harness_axes(nets=["net2h"], environ=env)["nets"] == ["net2h"]
    with pytest.raises(Exception, match="PGDBENCH_GRID_BATCH_SIZES"):
        workload.harness_axes(environ={"PGDBENCH_GRID_BATCH_SIZES": "many"})


def test_points_that_cannot_run_are_not_applicable_with_a_reason():
    with pytest.raises(NotApplicable, match="unknown backend"):
        workload.check_applicable(Config("no-such-backend"))
    with pytest.raises(NotApplicable, match="CPUs"):
        workload.check_applicable(Config("numpy", threads=4096))


def test_workload_times_a_slice_and_projects_it():
    work = Workload(Config("numpy", "net1h", 32, 1), examples=64)
    try:
        seconds = work.time(1)
        assert work.examples == 64 and len(work.order) == 64
        assert work.projected_seconds(seconds) == pytest.approx(seconds * workload.EPOCH_EXAMPLES / 64)
        assert work.gflops(seconds) == pytest.approx(work.spec.flops_per_epoch(64) / seconds / 1e9)
    finally:
        work.close()
    rec = workload.harness_record(Config("numpy", "net1h", 32, 1), repeats=1, examples=64)
    assert rec["status"] == "ok" and rec["projected"] and rec["gflops"] > 0
    assert workload.harness_record(Config("numpy", threads=4096))["status"] == "skipped"


def _reload_asv_suite(monkeypatch, **axes):
    """benchmarks/bench_training.py imported anew with the grid narrowed (keys of workload.GRID_ENV)."""
    for key, value in axes.items():
        monkeypatch.setenv(workload.GRID_ENV[key], value)
    sys.path.insert(0, str(ROOT))
    try:
        return importlib.reload(importlib.import_module("benchmarks.bench_training"))
    finally:
        sys.path.remove(str(ROOT))


def test_asv_suite_skips_inapplicable_points_and_tracks_derived_figures(monkeypatch):
    bench = _reload_asv_suite(monkeypatch, backends="numpy", nets="net1h", batch_sizes="64", threads="1",
                              examples="64")
    assert bench.PARAMS == [["numpy"], ["net1h"], [64], [1]]
    timer = bench.TimeTraining()
    timer.setup("numpy", "net1h", 64, 1)
    timer.time_train_slice("numpy", "net1h", 64, 1)
    timer.teardown("numpy", "net1h", 64, 1)
    with pytest.raises(NotImplementedError, match="CPUs"):  # asv records NotImplementedError in setup as skipped
        bench.TimeTraining().setup("numpy", "net1h", 64, 4096)
    track = bench.TrackTraining()
    cache = track.setup_cache()
    track.setup(cache, "numpy", "net1h", 64, 1)
    assert track.track_gflops(cache, "numpy", "net1h", 64, 1) > 0
    assert track.track_speedup_vs_serial(cache, "numpy", "net1h", 64, 1) == pytest.approx(1.0)
    assert track.track_epoch_seconds_projected(cache, "numpy", "net1h", 64, 1) > 0
    with pytest.raises(NotImplementedError):
        track.setup(cache, "numpy", "net1h", 64, 2)  # not in the measured grid


def test_asv_track_and_peakmem_cover_the_largest_batch_only_with_what_their_speedups_need(monkeypatch):
    # averaging's serial counterpart (numpy) is not on the backend axis: setup_cache must still measure it
    bench = _reload_asv_suite(monkeypatch, backends="averaging,python", nets="net1h", batch_sizes="32,64",
                              threads="1,4096", examples="64")
    assert bench.PARAMS == [["averaging", "python"], ["net1h"], [32, 64], [1, 4096]]
    assert bench.TimeTraining.params == bench.PARAMS  # time per slice: the whole grid
    assert bench.HEADLINE_PARAMS == [["averaging", "python"], ["net1h"], [64], [1, 4096]]
    assert bench.TrackTraining.params == bench.PeakMemTraining.params == bench.HEADLINE_PARAMS
    track = bench.TrackTraining()
    cache = track.setup_cache()
    assert set(cache) == {Config(b, "net1h", 64, t) for b in ("averaging", "python") for t in (1, 4096)} | {
        Config("numpy", "net1h", 64, 1)}
    assert cache[Config("numpy", "net1h", 64, 1)]["status"] == "ok"
    point = ("averaging", "net1h", 64, 1)
    track.setup(cache, *point)
    assert track.track_speedup_vs_serial(cache, *point) > 0  # against numpy, measured for it
    assert track.track_speedup_vs_1thread(cache, *point) == pytest.approx(1.0)
    assert 0 < track.track_fraction_of_peak(cache, *point) < 10
    track.setup(cache, "python", "net1h", 64, 1)  # projected: measured at the largest batch size, where this is
    assert track.track_gflops(cache, "python", "net1h", 64, 1) > 0
    # a point that cannot run says why, in the cache the track benchmarks read
    with pytest.raises(NotImplementedError, match="skipped: .*CPUs"):
        track.setup(cache, "averaging", "net1h", 64, 4096)
    with pytest.raises(NotImplementedError, match="skipped: python is serial"):
        track.setup(cache, "python", "net1h", 64, 4096)
    with pytest.raises(NotImplementedError, match="not part of the measured grid"):
        track.setup(cache, "averaging", "net1h", 32, 1)


def test_asv_default_grid_point_counts(monkeypatch):
    """asv starts a process per point of every benchmark: the derived figures cover one batch size of the grid."""
    bench = _reload_asv_suite(monkeypatch)
    axes = workload.harness_axes()
    full = len(axes["backends"]) * len(axes["nets"]) * len(axes["batch_sizes"]) * len(axes["threads"])
    headline = full // len(axes["batch_sizes"])
    assert [max(axes["batch_sizes"])] == bench.HEADLINE_PARAMS[2]

    def points(params):
        return len(list(itertools.product(*params)))

    assert points(bench.TimeTraining.params) == full
    assert points(bench.TrackTraining.params) == points(bench.PeakMemTraining.params) == headline
    tracks = [name for name in vars(bench.TrackTraining) if name.startswith("track_")]
    assert len(tracks) == 5


def test_examples_asked_for_explicitly_or_by_environment_get_the_same_caps():
    env = {workload.GRID_ENV["examples"]: "512"}
    for backend, batch in (("python", 64), ("numpy", 32), ("numpy", 1024)):
        assert workload.harness_examples(backend, batch, base=512, environ={}) == workload.harness_examples(backend, batch, env)
    assert workload.harness_examples("python", 64, base=512) == workload.HARNESS_PROJECTED_EXAMPLES  # slow backend: capped
    assert workload.harness_examples("numpy", 1024, base=512) == 1024                            # a whole minibatch


def test_projected_backends_are_measured_at_the_largest_batch_size():
    assert workload.projected_once("python", 64, [32, 64]) is None
    assert "measured at batch size 64 only" in workload.projected_once("python", 32, [32, 64])
    assert workload.projected_once("numpy", 32, [32, 64]) is None
    configs = workload.harness_configs(workload.headline_axes({"backends": ["python"], "nets": ["net1h"],
                                                       "batch_sizes": [32, 64], "threads": [1]}))
    assert configs == [Config("python", "net1h", 64, 1)]


def test_asv_suite_imports_no_backend_and_no_scipy():
    """asv imports benchmarks/bench_training.py anew in a process per grid point: that import must stay cheap."""
    code = ("import sys; import benchmarks.bench_training as b; from pgdbench import registry; "
            "assert len(b.PARAMS[0]) == len(registry.names()) > 5, b.PARAMS; "
            "heavy = sorted(m for m in sys.modules if m.startswith(('implementations.', 'scipy', 'torch', 'numba'))); "
            "assert not heavy, heavy; "
            "registry.get('torch'); loaded = sorted(m for m in sys.modules if m.startswith('implementations.')); "
            "assert loaded == ['implementations.torch_ref'], loaded")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


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
           "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), "--backend", "numpy", "--net", "net1h", "--batch-size", "64,128", "--threads", "1",
           "--bench-examples", "128", "--bench-rounds", "3", "--benchmark-storage=store", *extra]
    # run from tmp_path: pytest-benchmark wants its storage below the working directory
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_pytest_benchmark_autosave_compare_and_compare_fail(tmp_path):
    first = _pytest_bench(tmp_path, "--benchmark-autosave", f"--benchmark-json={tmp_path}/run.json")
    assert first.returncode == 0, first.stdout + first.stderr
    saved = sorted((tmp_path / "store").rglob("0001_*.json"))
    assert len(saved) == 1
    data = json.loads(saved[0].read_text())
    names = {b["name"] for b in data["benchmarks"]}
    assert names == {"test_train_slice[numpy-net1h-B64-T1]", "test_train_slice[numpy-net1h-B128-T1]"}
    info = data["benchmarks"][0]["extra_info"]
    for key in ("gflops", "speedup_vs_serial", "threads", "dtype", "projected", "seconds_per_epoch"):
        assert key in info, key
    assert info["projected"] is True and info["gflops"] > 0 and info["speedup_vs_serial"] == pytest.approx(1.0)
    assert data["machine_info"]["pgdbench"]["blas"], "machine_info lacks the BLAS facts"
    assert "numba_threading_layer" in data["machine_info"]["pgdbench"]

    # compare against the saved run, grouped by batch size: a generous threshold passes
    ok = _pytest_bench(tmp_path, "--benchmark-compare=0001", "--benchmark-compare-fail=mean:1000%",
                       "--benchmark-group-by=param:batch_size")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "batch_size=64" in ok.stdout and "batch_size=128" in ok.stdout
    assert "0001" in ok.stdout  # the saved run appears in the comparison table

    # a baseline ten times faster than reality: compare-fail must trigger
    for b in data["benchmarks"]:
        for k in ("min", "max", "mean", "median", "stddev", "iqr", "q1", "q3", "total"):
            b["stats"][k] /= 10
        if "data" in b["stats"]:  # only with --benchmark-save-data
            b["stats"]["data"] = [v / 10 for v in b["stats"]["data"]]
    saved[0].write_text(json.dumps(data))
    bad = _pytest_bench(tmp_path, "--benchmark-compare=0001", "--benchmark-compare-fail=mean:10%")
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
    assert "test_train_slice" not in out.stdout and "benchmarks/" not in out.stdout
    cfg = (ROOT / "pyproject.toml").read_text()
    assert 'testpaths = ["tests"]' in cfg

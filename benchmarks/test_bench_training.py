"""pytest-benchmark suite: the harness grid of pgdbench.harness.workload, one test per grid point.

Run with ``pytest benchmarks`` (``pytest tests`` never collects it). The grid
options (--backend, --net, --batch-size, --threads, --bench-examples,
--bench-rounds) are registered in the top-level conftest.py; see
docs/benchmarks.md for the autosave / compare / compare-fail workflow.

Each round trains a fixed slice of examples (not a whole epoch);
``extra_info`` carries the GFLOP/s, the projected time per 50,000-example
epoch, the speedup over the serial counterpart (when that point ran earlier
in the same session: 1-thread points are ordered first), threads and dtype.

No module-level ``import pytest``: asv imports every module of benchmarks/
while discovering its own benchmarks, and its environments have no pytest.
"""
import math

from pgdbench.harness.grid import Config
from pgdbench.harness.speedups import add_speedups
from pgdbench.harness.workload import NotApplicable, Workload, harness_axes, harness_configs

_MEASURED = {}  # Config -> its record, for speedups within one session


def _split(values, convert=str):
    """Repeatable options that also take comma-separated lists: --batch-size 32 --batch-size 128,512."""
    if not values:
        return None
    return [convert(v.strip()) for item in values for v in str(item).split(",") if v.strip()]


def pytest_generate_tests(metafunc):
    if "batch_size" not in metafunc.fixturenames:
        return
    opt = metafunc.config.getoption
    axes = harness_axes(_split(opt("--backend")), _split(opt("--net")), _split(opt("--batch-size"), int),
                        _split(opt("--threads"), int))
    configs = harness_configs(axes)  # a projected backend only at the largest batch size (its time is per example)
    # 1-thread points first (serial counterparts before the others), so speedups can be computed as we go
    serials = {c.backend for c in configs if c.threads == 1}
    configs.sort(key=lambda c: (c.threads != 1, c.backend not in serials, c.net, c.batch_size))
    metafunc.parametrize(["backend", "net", "batch_size", "threads"],
                         [(c.backend, c.net, c.batch_size, c.threads) for c in configs],
                         ids=[f"{c.backend}-{c.net}-B{c.batch_size}-T{c.threads}" for c in configs])


def test_train_slice(benchmark, request, backend, net, batch_size, threads):
    import pytest

    config = Config(backend, net, batch_size, threads)
    try:
        work = Workload(config, request.config.getoption("--bench-examples"))
    except NotApplicable as exc:
        pytest.skip(str(exc))
    try:
        benchmark.group = f"{net}"
        rounds = 1 if work.trainer.projected else request.config.getoption("--bench-rounds")  # minutes per call
        benchmark.pedantic(work.run, rounds=rounds, iterations=1, warmup_rounds=0)
        params = work.trainer.get_weights()
    finally:
        work.close()
    if not all(math.isfinite(float(a.sum())) for a in params.arrays()):
        pytest.fail(f"{config.label()} diverged (NaN or infinite parameters): not a valid timing")
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable: the code ran once, untimed
        return
    median = stats.stats.median
    record = _MEASURED[config] = {
        "backend": backend, "net": net, "batch_size": batch_size, "threads": threads, "dtype": config.dtype,
        "options": {}, "examples_timed": work.examples, "gflops": work.gflops(median),
        "seconds_per_epoch": work.projected_seconds(median), "projected": True,
        "serial_counterpart": work.serial_counterpart,
    }
    add_speedups(list(_MEASURED.values()))  # slices of different sizes compare through seconds_per_epoch
    benchmark.extra_info.update({k: v for k, v in record.items() if k not in ("options", "efficiency")})

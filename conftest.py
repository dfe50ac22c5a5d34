"""Top-level pytest configuration shared by tests/ and benchmarks/.

The benchmark options below only shape the pytest-benchmark suite in
``benchmarks/`` (``pytest benchmarks``); ``pytest tests`` ignores them.
"""
from pgdbench.harness.openblas_env import prefer_sleeping_blas_threads

prefer_sleeping_blas_threads()  # as the pgdbench command does; a no-op if a plugin already loaded NumPy

import pytest  # noqa: E402


def pytest_addoption(parser):
    group = parser.getgroup("pgdbench", "pgdbench benchmark points (pytest benchmarks): replace axes of the [gate] "
                                        "table of pgdbench/harness/points.toml")
    group.addoption("--backend", action="append", default=None,
                    help="backend (repeatable; default: every backend installed here)")
    group.addoption("--net", action="append", default=None,
                    help="net preset or widths like 784-32-10 (repeatable; default: net1h)")
    group.addoption("--batch-size", action="append", default=None,
                    help="batch size (repeatable or comma-separated; default: 32, 512)")
    group.addoption("--threads", action="append", default=None,
                    help="thread count (repeatable or comma-separated; default: 1 and all usable CPUs)")
    group.addoption("--gate-against", metavar="REV", default=None,
                    help="also run pgdbench gate REV HEAD on the same points first, and fail each test whose point "
                         "HEAD confidently slowed down by more than --gate-threshold")
    group.addoption("--gate-threshold", type=float, default=0.05, help="the gate's threshold (default 0.05)")
    group.addoption("--gate-budget", type=float, default=270.0, help="the gate's time budget, seconds (default 270)")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # A comparison table lists each point's saved and new rows next to each other (pytest-benchmark sorts by
    # the fastest time otherwise, which scatters them), unless --benchmark-sort was given.
    if hasattr(config.option, "benchmark_sort") and not any(
            str(a).startswith("--benchmark-sort") for a in config.invocation_params.args):
        config.option.benchmark_sort = "fullname"


#: Facts of pytest-benchmark's machine_info that change between runs on the same machine: a comparison would
#: warn that the machine differs. They are not lost: each benchmark's extra_info has the date and load.
VOLATILE_CPU_KEYS = ("hz_actual", "hz_actual_friendly")


@pytest.hookimpl(optionalhook=True)  # only called when pytest-benchmark is installed
def pytest_benchmark_update_machine_info(config, machine_info):
    from pgdbench.harness.machine import stable_machine_info

    for key in VOLATILE_CPU_KEYS:
        machine_info.get("cpu", {}).pop(key, None)
    machine_info["pgdbench"] = stable_machine_info()

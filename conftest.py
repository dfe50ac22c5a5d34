"""Top-level pytest configuration shared by tests/ and benchmarks/.

The benchmark options below only shape the pytest-benchmark suite in
``benchmarks/`` (``pytest benchmarks``); ``pytest tests`` ignores them.
"""
from pgdbench.harness.openblas_env import prefer_sleeping_blas_threads

prefer_sleeping_blas_threads()  # as the pgdbench command does; a no-op if a plugin already loaded NumPy

import pytest  # noqa: E402


def pytest_addoption(parser):
    group = parser.getgroup("pgdbench", "pgdbench benchmark grid (pytest benchmarks)")
    group.addoption("--backend", action="append", default=None,
                    help="backend to benchmark (repeatable; default: every registered backend)")
    group.addoption("--net", action="append", default=None, help="net preset (repeatable; default: net1h, net2h)")
    group.addoption("--batch-size", action="append", default=None,
                    help="batch size (repeatable or comma-separated; default: 32,128,512,1024)")
    group.addoption("--threads", action="append", default=None,
                    help="thread count (repeatable or comma-separated; default: 1 and all usable CPUs)")
    group.addoption("--bench-examples", type=int, default=None,
                    help="examples per timed call (default pgdbench.harness.workload.HARNESS_EXAMPLES; fewer for projected backends)")
    group.addoption("--bench-rounds", type=int, default=3, help="timed calls per grid point (default 3)")


@pytest.hookimpl(optionalhook=True)  # only called when pytest-benchmark is installed
def pytest_benchmark_update_machine_info(config, machine_info):
    from pgdbench.harness.machine import benchmark_machine_info

    machine_info["pgdbench"] = dict(benchmark_machine_info())  # a copy: the cached one stays as measured

"""pytest-benchmark suite: one minibatch step of each point of the gate's point set.

``pytest benchmarks`` (``pytest tests`` never collects it). The points are the
``[gate]`` table of ``pgdbench/harness/points.toml`` — every backend installed
here at 1 thread and at all CPUs, Net-1h, batches 32 and 512 — narrowed or
replaced by ``--backend``, ``--net``, ``--batch-size``, ``--threads`` (options
in the top-level conftest.py; a backend's own table in the file still wins). pytest-benchmark calibrates the rounds by time
(at least ``--benchmark-min-rounds``, as many as fit in
``--benchmark-max-time``): a 3 ms step gets hundreds of rounds, a 30 ms step
dozens. Tables are grouped by net and batch size; the pure-Python backend,
timed on its own small net, lands in a group of its own.

``extra_info`` holds what the report needs (backend, net, batch size,
threads, GFLOP/s at the median, seconds per 50,000-example epoch projected
from the median step) and the facts that change from run to run (date,
commit, load), which ``machine_info`` leaves out so that comparisons of runs
on one machine do not warn that the machine differs.

To gate on it, ``--gate-against REV`` first runs ``pgdbench gate REV HEAD`` on
the same points (interleaved, paired rounds) and fails each test whose point
regressed: two pytest-benchmark runs made minutes apart cannot tell a
slowdown from a change in the machine's load (docs/benchmarks.md measures
how often they cry wolf).

Measured through the same probe as ``pgdbench gate`` and asv
(:mod:`benchmarks.common`); no module-level ``import pytest`` or pgdbench:
asv imports every module of benchmarks/ in environments of old commits.
"""
import datetime
import os

from .common import SLICE_BATCHES, Stepper, probe, usable_cpus


def _split(values, convert=str):
    """Repeatable options that also take comma-separated lists: --batch-size 32 --batch-size 128,512."""
    if not values:
        return None
    return [convert(v.strip()) for item in values for v in str(item).split(",") if v.strip()]


def selected_points(config) -> list:
    """The [gate] table with the options' axes in place of the file's general ones (a backend's own table, such as
    the pure-Python backend's small net, still applies to it: measured otherwise it would take minutes)."""
    from .common import POINTS_FILE

    table = probe.read_table(str(POINTS_FILE), "gate")
    given = {"backends": _split(config.getoption("--backend")), "nets": _split(config.getoption("--net")),
             "batch_sizes": _split(config.getoption("--batch-size"), int),
             "threads": _split(config.getoption("--threads"), int)}
    table.update({axis: values for axis, values in given.items() if values})   # per-backend tables still win
    return probe.expand_table(table, probe.registered_backends(), usable_cpus())


_GATE = {}


def gate_verdicts(config) -> dict:
    """label → the gate's PointResult, when --gate-against REV asks for it (run once, before the first test):
    the paired, interleaved comparison that pytest-benchmark's own compare of two separate runs cannot make."""
    rev = config.getoption("--gate-against")
    if not rev:
        return {}
    if "results" not in _GATE:
        from pathlib import Path

        from pgdbench.harness.gate import Gate, GateSettings, prepare_revisions, report_lines, repository_root

        settings = GateSettings(threshold=config.getoption("--gate-threshold"), budget=config.getoption("--gate-budget"))
        settings.check()
        base, head = prepare_revisions(repository_root(Path.cwd()), rev, "HEAD")
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        say = (lambda text: reporter.write_line(text)) if reporter else print
        say(f"pgdbench gate {base.name} ({base.short}) → HEAD ({head.short}), before the benchmarks:")
        gate = Gate(base, head, selected_points(config), settings, say)
        gate.run()
        for line in report_lines(gate):
            say(line)
        _GATE["results"] = {r.point.label: r for r in gate.results}
        _GATE["gate"] = gate
    return _GATE["results"]


def pytest_generate_tests(metafunc):
    if "point" in metafunc.fixturenames:
        points = selected_points(metafunc.config)
        metafunc.parametrize("point", points, ids=[p.label.replace(" ", "-") for p in points])


def test_train_step(benchmark, point, request):
    import pytest                                  # here: asv's environments have no pytest
    from pgdbench.core.model import NetSpec        # here: asv imports this module against old commits

    verdicts = gate_verdicts(request.config)
    try:
        stepper = Stepper(point)
    except probe.Skip as exc:
        pytest.skip(str(exc))
    try:
        benchmark.group = f"{point.net} B={point.batch_size}"
        benchmark(stepper.step)
    finally:
        stepper.close()
    gated = verdicts.get(point.label)
    if gated is not None and gated.interval is not None:
        benchmark.extra_info.update({"gate_ratio": gated.interval.ratio, "gate_low": gated.interval.low,
                                     "gate_high": gated.interval.high, "gate_verdict": gated.verdict.value,
                                     "gate_gating": gated.gating})
    if gated is not None and gated in _GATE["gate"].regressions():
        pytest.fail(f"{point.label}: HEAD is slower than {request.config.getoption('--gate-against')}: ratio "
                    f"{gated.interval.text() if gated.interval else gated.reason}", pytrace=False)
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable: the step ran once, untimed
        return
    median = stats.stats.median
    flops = NetSpec(point.layers()).flops_per_example() * point.batch_size
    benchmark.extra_info.update({
        "backend": point.backend, "net": point.net, "batch_size": point.batch_size, "threads": point.threads,
        "dtype": point.dtype, "examples_timed": point.batch_size, "examples_per_step": point.batch_size,
        "slice_batches": SLICE_BATCHES, "gflops": flops / median / 1e9,
        "seconds_per_epoch": median * probe.EPOCH_EXAMPLES / point.batch_size, "projected": True,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    })

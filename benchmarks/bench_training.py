"""airspeed velocity (asv) benchmarks: training throughput over backend × net × batch size × threads.

In the style of numpy's and scipy's suites: parametrized classes, cheap
``setup``, and a grid point that cannot run here (backend not installed, no
GPU, serial backend asked for 2 threads, more threads than CPUs) raises
``NotImplementedError`` in ``setup``, which asv records as skipped (n/a),
never as a result.

The grid is :func:`pgdbench.harness.workload.harness_axes`: every registered backend,
both nets of Kamra et al., *Parallel Gradient Descent*, batch sizes 32..1024, threads 1 and all CPUs; narrow
it with environment variables, e.g.
``PGDBENCH_GRID_BACKENDS=numpy,torch PGDBENCH_GRID_NETS=net1h asv run ...``.
``TimeTraining`` covers the whole grid; ``PeakMemTraining`` and
``TrackTraining`` only its largest batch size (:func:`pgdbench.harness.workload.headline_axes`):
asv starts a process for every point of every benchmark, so five derived
figures over the whole grid would cost five times as many processes as the
timings themselves.

Importing this module is cheap on purpose (NumPy, no backend): asv imports it
anew in each of those processes.

Each call trains a fixed slice of examples (``HARNESS_EXAMPLES``; fewer for
projected backends), not a whole epoch, so ``asv run --quick`` of the whole
suite stays short. Per-epoch figures (``track_epoch_seconds_projected``) are
extrapolated to a 50,000-example epoch and say so in their name and unit.
"""
from pgdbench.harness.openblas_env import prefer_sleeping_blas_threads

prefer_sleeping_blas_threads()  # before NumPy loads, as the pgdbench command does

import itertools  # noqa: E402

from pgdbench.harness.grid import Config
from pgdbench.harness.speedups import add_speedups
from pgdbench.harness.workload import (NotApplicable, Workload, harness_axes, harness_configs, harness_record,
                                       headline_axes, projected_once)

_AXES = harness_axes()
_HEADLINE = headline_axes(_AXES)
_AXIS_KEYS = ("backends", "nets", "batch_sizes", "threads")
PARAMS = [_AXES[k] for k in _AXIS_KEYS]
HEADLINE_PARAMS = [_HEADLINE[k] for k in _AXIS_KEYS]
PARAM_NAMES = ["backend", "net", "batch_size", "threads"]


def _workload(backend, net, batch_size, threads):
    once = projected_once(backend, int(batch_size), _AXES["batch_sizes"])
    if once:
        raise NotImplementedError(once)
    try:
        return Workload(Config(backend, net, int(batch_size), int(threads)))
    except NotApplicable as exc:
        raise NotImplementedError(str(exc)) from None


class _Slice:
    params = PARAMS
    param_names = PARAM_NAMES
    timeout = 300

    def setup(self, backend, net, batch_size, threads):
        self.work = _workload(backend, net, batch_size, threads)

    def teardown(self, backend, net, batch_size, threads):
        work = getattr(self, "work", None)
        if work is not None:
            work.close()


class TimeTraining(_Slice):
    """Wall time of one pass of minibatch GD over a fixed slice of examples (see HARNESS_EXAMPLES)."""

    number = 1            # one call is already dozens of minibatch steps
    repeat = (1, 5, 20.0)

    def time_train_slice(self, backend, net, batch_size, threads):
        self.work.run()


class PeakMemTraining(_Slice):
    """Peak resident memory of a process that builds a trainer, loads the data and trains the slice.

    Only at the grid's largest batch size (``HEADLINE_PARAMS``): buffers grow with the batch, so that is
    each backend's peak (and it keeps `asv run --quick` of the whole suite short).
    """

    params = HEADLINE_PARAMS

    def peakmem_train_slice(self, backend, net, batch_size, threads):
        self.work.run()


class TrackTraining:
    """Derived figures at the grid's largest batch size, every backend × net × threads (``HEADLINE_PARAMS``).

    ``setup_cache`` measures those points once (best of 2 calls each), plus
    what their speedups need: the same backend at 1 thread
    (``speedup_vs_1thread``) and its serial counterpart at 1 thread
    (``speedup_vs_serial``, the paper's SUP), per example, in the same
    process. Each track benchmark then only looks its point up, so the
    processes asv starts per point are cheap.
    """

    params = HEADLINE_PARAMS
    param_names = PARAM_NAMES
    timeout = 3600  # setup_cache times every backend at the headline points (numba JIT, MPI start-up, GPUs)

    def setup_cache(self):
        points = [Config(b, n, int(bs), int(t)) for b, n, bs, t in itertools.product(*HEADLINE_PARAMS)]
        # the points themselves too: one that cannot run gets its record (skipped, with the reason) here
        configs = dict.fromkeys(harness_configs(_HEADLINE) + points)
        records = {c: harness_record(c) for c in configs}
        add_speedups(list(records.values()))  # slices of different sizes compare through seconds_per_epoch
        return records

    def setup(self, cache, backend, net, batch_size, threads):
        record = cache.get(Config(backend, net, int(batch_size), int(threads)))
        if record is None:
            raise NotImplementedError("not part of the measured grid")
        if record["status"] != "ok":
            raise NotImplementedError(f"{record['status']}: {record.get('reason', '')}")
        self.record = record

    def _value(self, key):
        value = self.record.get(key)
        if value is None:
            raise NotImplementedError(f"{key} not available for this point")
        return value

    def track_gflops(self, cache, backend, net, batch_size, threads):
        return self._value("gflops")

    track_gflops.unit = "GFLOP/s"

    def track_speedup_vs_serial(self, cache, backend, net, batch_size, threads):
        return self._value("speedup_vs_serial")

    track_speedup_vs_serial.unit = "x"

    def track_speedup_vs_1thread(self, cache, backend, net, batch_size, threads):
        return self._value("speedup_vs_1thread")

    track_speedup_vs_1thread.unit = "x"

    def track_fraction_of_peak(self, cache, backend, net, batch_size, threads):
        return self._value("fraction_of_peak")

    track_fraction_of_peak.unit = "fraction of GEMM peak"

    def track_epoch_seconds_projected(self, cache, backend, net, batch_size, threads):
        return self._value("seconds_per_epoch")

    track_epoch_seconds_projected.unit = "seconds per 50,000-example epoch (projected)"

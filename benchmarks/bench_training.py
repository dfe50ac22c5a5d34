"""airspeed velocity (asv) benchmarks: the history of one minibatch step, commit after commit.

asv runs the benchmarks of *this* checkout against the package installed from
each commit it replays, so the code here must work with every revision of
pgdbench back to the first one: it measures through
``pgdbench/harness/probe.py`` (loaded by path from this checkout), which
needs nothing from the revision but the trainer protocol (entry points,
``NetSpec``/``Parameters``, ``train_epoch``) — unchanged since the first
commit. Nothing here imports pgdbench.

The points are the ``[history]`` table of ``pgdbench/harness/points.toml``:
the suite's backends at 1 thread, Net-1h, batches 32 and 512 (the pure-Python
backend on a small net), one parameter ``point`` labelled like
``numpy net1h B=32 T=1``. A point that cannot run here (backend not
installed or not registered at that commit, no GPU) raises
``NotImplementedError`` in ``setup`` with the reason, which asv records as
n/a and prints with ``asv run --show-stderr`` (``-e``).

Every figure is lower-is-better, as asv assumes for all of them: seconds per
minibatch step and peak memory. GFLOP/s, speedups and the fraction of the
peak, where higher is better, are derived from the same timings by
``pgdbench report`` (which reads asv's results), not judged by asv.

To measure part of the history grid, select points with ``-b``, which keeps
the stored results of the others (asv merges by parameter)::

    asv run -b "time_step\\('numpy" ...
"""
import importlib.util
import os
import sys
from pathlib import Path

# As every pgdbench command does (pgdbench.harness.openblas_env), before NumPy and its OpenBLAS load.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

_HARNESS = Path(__file__).resolve().parent.parent / "pgdbench" / "harness"


def _load(name, filename):
    """A module of this checkout's harness, by path: the installed pgdbench is the revision under test."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _HARNESS / filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


probe = _load("pgdbench_probe", "probe.py")


def _history_points():
    """The [history] table, read here with the standard library (this module must not import pgdbench)."""
    import tomllib

    with open(_HARNESS / "points.toml", "rb") as f:
        table = tomllib.load(f)["history"]
    points = []
    for backend in table["backends"]:
        axes = {**table, **table.get("backend", {}).get(backend, {})}
        for net in axes["nets"]:
            for batch in axes["batch_sizes"]:
                for threads in axes["threads"]:
                    points.append(probe.Point(backend, net, int(batch), int(threads), table.get("dtype", "float32")))
    return points


POINTS = {p.label: p for p in _history_points()}
#: Batches the step cycles through: the gathered rows differ from step to step, as in an epoch.
SLICE_BATCHES = 4


class _Point:
    params = [list(POINTS)]
    param_names = ["point"]
    timeout = 600   # the first run in a new environment compiles numba kernels

    def setup(self, label):
        point = POINTS[label]
        try:
            self.prepared = probe.prepare(probe.Point(**{**point.__dict__, "examples": SLICE_BATCHES * point.batch_size}))
        except probe.Skip as exc:
            raise NotImplementedError(str(exc)) from None
        self._next = 0

    def teardown(self, label):
        prepared = getattr(self, "prepared", None)
        if prepared is not None:
            prepared.close()

    def _step(self):
        """One minibatch step: the next batch of the slice (the weights drift; a step's work does not)."""
        point = self.prepared.point
        start = (self._next % SLICE_BATCHES) * point.batch_size
        self._next += 1
        self.prepared.trainer.train_epoch(self.prepared.order[start:start + point.batch_size], point.batch_size,
                                          probe.LEARNING_RATE)


class TimeTraining(_Point):
    """Seconds per minibatch step (B examples: forward, backward and update) of each history point."""

    pretty_name = "seconds per minibatch step"
    number = 0                # asv calibrates how many steps one sample times
    sample_time = 0.05
    repeat = (5, 10, 1.0)     # at least 5 samples, then up to 10 within 1 s per round
    rounds = 2                # asv continuous alternates its rounds between the two commits
    warmup_time = 0.2

    def time_step(self, label):
        self._step()


class PeakMemTraining(_Point):
    """Peak resident memory (bytes) of a process that built the trainer, loaded the data and took a step."""

    pretty_name = "peak memory of a process that trains (bytes)"
    params = [[label for label, p in POINTS.items() if p.batch_size == max(q.batch_size for q in POINTS.values()
                                                                           if q.backend == p.backend)]]

    def peakmem_step(self, label):
        self._step()

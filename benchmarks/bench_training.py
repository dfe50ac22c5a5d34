"""airspeed velocity (asv) benchmarks: the history of one minibatch step, commit after commit.

asv runs the benchmarks of *this* checkout against the package installed from
each commit it replays, so this suite measures through the probe
(:mod:`benchmarks.common`), which works with every revision of pgdbench back
to the first one.

The points are the ``[history]`` table of ``pgdbench/harness/points.toml``:
the suite's CPU backends at 1 thread, Net-1h, batches 32 and 512 (the
pure-Python backend on a small net), one parameter ``point`` labelled like
``numpy net1h B=32 T=1``. A point that cannot run here (backend not
installed, or not registered at that commit, no GPU) raises
``NotImplementedError`` in ``setup`` with the reason, which asv records as
n/a and prints with ``asv run --show-stderr`` (``-e``).

Every figure is lower-is-better, as asv assumes for all of them: CPU seconds
per minibatch step and peak memory. GFLOP/s, speedups and the fraction of the
peak, where higher is better, come from ``pgdbench bench`` and
``pgdbench report``, which know their direction.

To measure part of the grid, select points with ``-b``; asv keeps the stored
results of the others (it merges by parameter)::

    asv run -b "time_step\\('numpy" ...
"""
import time

from .common import Stepper, points, probe

POINTS = {p.label: p for p in points("history")}
_LARGEST = {p.backend: p.batch_size for p in sorted(POINTS.values(), key=lambda p: p.batch_size)}


class _Point:
    params = [list(POINTS)]
    param_names = ["point"]
    timeout = 600   # the first run in a new environment compiles numba kernels

    def setup(self, label):
        try:
            self.stepper = Stepper(POINTS[label])
        except probe.Skip as exc:
            raise NotImplementedError(str(exc)) from None

    def teardown(self, label):
        if getattr(self, "stepper", None) is not None:
            self.stepper.close()


class TimeTraining(_Point):
    """CPU seconds per minibatch step (B examples: forward, backward and update) of each 1-thread point.

    Timed with the process's CPU time, not the wall clock: on a machine other
    jobs share, a step is often preempted, and the wall clock counts the wait
    (measured: per-round spread of identical code 0.08 on the wall clock,
    0.045 on the CPU clock). At 1 thread the two agree when nothing else runs.
    """

    pretty_name = "CPU seconds per minibatch step"
    timer = time.process_time
    number = 0                # asv calibrates how many steps one sample times
    sample_time = 0.05
    repeat = (5, 10, 0.5)     # at least 5 samples, then up to 10 within 0.5 s
    # One round (one process) per point and commit keeps a commit of history short (97 s with the build on an
    # idle 2-core machine); asv continuous is run with `-a rounds=4`, so that its rounds alternate between the
    # two commits (docs/benchmarks.md).
    rounds = 1
    warmup_time = 0.1

    def time_step(self, label):
        self.stepper.step()


class PeakMemTraining(_Point):
    """Peak resident memory (bytes) of a process that built the trainer, loaded the data and took a step.

    At each backend's largest batch of the history grid: buffers grow with the batch."""

    pretty_name = "peak memory of a process that trains (bytes)"
    params = [[label for label, p in POINTS.items() if p.batch_size == _LARGEST[p.backend]]]

    def peakmem_step(self, label):
        self.stepper.step()

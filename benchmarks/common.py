"""What both benchmark suites share: this checkout's probe and point sets, loaded without importing pgdbench.

asv runs the suites of *this* checkout against the package installed from
each commit it replays (and imports every module of ``benchmarks/`` to find
its benchmarks), so nothing here may import pgdbench: the probe
(``pgdbench/harness/probe.py``) and the points file are loaded by path, and
they need nothing from the revision under test but the trainer protocol.
"""
import importlib.util
import os
import sys
from pathlib import Path

# As every pgdbench command does (pgdbench.harness.openblas_env), before NumPy and its OpenBLAS load.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

HARNESS = Path(__file__).resolve().parent.parent / "pgdbench" / "harness"
POINTS_FILE = HARNESS / "points.toml"


def _load_probe():
    name = "pgdbench_benchmark_probe"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HARNESS / "probe.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module   # before exec: dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


probe = _load_probe()
#: Batches a step cycles through: the gathered rows differ from step to step, as in an epoch.
SLICE_BATCHES = 4


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def points(table: str) -> list:
    """The points of a table of the points file; ``available`` backends are those the installed pgdbench declares."""
    return probe.expand_table(probe.read_table(str(POINTS_FILE), table), probe.registered_backends(), usable_cpus())


class Stepper:
    """A prepared point and one minibatch step at a time, cycling through its slice."""

    def __init__(self, point):
        point = probe.Point(**{**point.__dict__, "examples": SLICE_BATCHES * point.batch_size})
        self.prepared = probe.prepare(point)   # raises probe.Skip with the reason
        self.point = point
        self._next = 0

    def step(self) -> None:
        b = self.point.batch_size
        start = (self._next % SLICE_BATCHES) * b
        self._next += 1
        self.prepared.trainer.train_epoch(self.prepared.order[start:start + b], b, probe.LEARNING_RATE)

    def close(self) -> None:
        self.prepared.close()

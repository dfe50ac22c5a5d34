"""The harness grid: what the asv and pytest-benchmark suites iterate, and the Workload they time.

The asv and pytest-benchmark suites time a fixed number of examples per call
(not whole epochs), so that a quick run of the whole suite stays short on a
laptop; figures per epoch derived from them are *projected* to a full MNIST
training split and labelled so.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict
from typing import Optional

import numpy as np

from pgdbench.core import registry
from pgdbench.core.model import epoch_order, resolve_net
from pgdbench.core.protocol import check_threads, usable_cpus
from pgdbench.core.training import Settings, start
from pgdbench.data.synthetic import make_synthetic
from pgdbench.errors import PgdbenchError
from pgdbench.harness import peak
from pgdbench.harness.grid import BATCH_SIZES, NETS, Config, expand


#: Examples timed per call by the asv and pytest-benchmark suites.
HARNESS_EXAMPLES = 512


#: Examples timed per call for backends marked ``projected`` (the pure-Python one).
HARNESS_PROJECTED_EXAMPLES = 2


#: What a timed slice is projected to: the MNIST training split of Kamra et al., *Parallel Gradient Descent*.
EPOCH_EXAMPLES = 50_000


#: Environment variables that narrow the asv grid (asv has no command-line parameters for benchmarks):
#: comma-separated values, e.g. ``PGDBENCH_GRID_BACKENDS=numpy,torch PGDBENCH_GRID_BATCH_SIZES=128``.
GRID_ENV = {"backends": "PGDBENCH_GRID_BACKENDS", "nets": "PGDBENCH_GRID_NETS",
            "batch_sizes": "PGDBENCH_GRID_BATCH_SIZES", "threads": "PGDBENCH_GRID_THREADS",
            "examples": "PGDBENCH_GRID_EXAMPLES"}


class NotApplicable(PgdbenchError):
    """A grid point that cannot be measured here (backend unavailable, serial backend at T > 1, too many threads)."""


def default_threads() -> list[int]:
    """1 and every CPU this process may use: the paper's serial and fully parallel points."""
    return sorted({1, usable_cpus()})


def harness_axes(backends=None, nets=None, batch_sizes=None, threads=None, environ=None) -> dict:
    """The four axes of the harness grid: explicit values, else the environment (see GRID_ENV), else defaults.

    Default backends are *all registered* backends (available or not: an
    unavailable one is skipped with its reason by each suite, never dropped
    silently).
    """

    env = os.environ if environ is None else environ

    def pick(given, key, default, convert):
        if given:
            return [convert(v) for v in given]
        text = env.get(GRID_ENV[key], "").strip()
        if text:
            try:
                return [convert(v.strip()) for v in text.split(",") if v.strip()]
            except ValueError:
                raise PgdbenchError(f"{GRID_ENV[key]}={text!r}: expected comma-separated values") from None
        return list(default)

    return {"backends": pick(backends, "backends", registry.names(), str),
            "nets": pick(nets, "nets", NETS, str),
            "batch_sizes": pick(batch_sizes, "batch_sizes", BATCH_SIZES, int),
            "threads": pick(threads, "threads", default_threads(), int)}


def harness_examples(backend: str, batch_size: int, environ=None, base: Optional[int] = None) -> int:
    """Examples timed per call for one grid point: at least one whole minibatch, fewer for projected backends.

    ``base`` (else the environment's PGDBENCH_GRID_EXAMPLES, else HARNESS_EXAMPLES)
    is the count asked for. A projected (serial, per-example) backend's time per
    example does not depend on the batch size, so it may time less than one
    minibatch, and never more than HARNESS_PROJECTED_EXAMPLES.
    """

    env = os.environ if environ is None else environ
    base = int(base or env.get(GRID_ENV["examples"], 0) or HARNESS_EXAMPLES)
    if registry.get(backend).projected:
        return min(batch_size, HARNESS_PROJECTED_EXAMPLES, base)
    return max(base, batch_size)


def projected_once(backend: str, batch_size: int, batch_sizes) -> Optional[str]:
    """Why a projected backend is not timed at ``batch_size``, or None.

    A projected backend times fewer examples than one minibatch, so every
    batch size would time the very same work: the harness measures it once,
    at the largest batch size of the grid (where the derived figures and the
    peak memory are taken, see :func:`headline_axes`), and skips the others
    with this reason.
    """

    try:
        cls = registry.get(backend)
    except PgdbenchError:
        return None
    largest = max(batch_sizes)
    if cls.projected and batch_size != largest:
        return (f"{backend} is projected: it times {HARNESS_PROJECTED_EXAMPLES} examples whatever the batch size, "
                f"so it is measured at batch size {largest} only")
    return None


def headline_axes(axes: dict) -> dict:
    """The part of the grid where the derived figures and the peak memory are taken: the largest batch size.

    Every backend, net and thread count of ``axes`` at its largest batch size
    (buffers, and so memory, grow with the batch; the paper's speedups are
    quoted at large batches). The asv suite reports GFLOP/s, speedups, fraction
    of peak, projected epoch time and peak memory there only, so that
    ``asv run --quick`` (a process per point) stays short; time per slice
    covers the whole grid.
    """
    return {**axes, "batch_sizes": [max(axes["batch_sizes"])]}


def check_applicable(config: Config) -> type:
    """The backend class of ``config``; raises :class:`NotApplicable` with the reason if it cannot run here."""

    try:
        cls = registry.get_available(config.backend)
    except PgdbenchError as exc:
        raise NotApplicable(str(exc)) from None
    if not cls.uses_threads and config.threads != 1:
        raise NotApplicable(f"{config.backend} is serial: threads={config.threads} does not apply")
    try:
        check_threads(config.threads, cls.uses_threads, config.backend)
    except PgdbenchError as exc:
        raise NotApplicable(str(exc)) from None
    return cls


class Workload:
    """One grid point ready to be timed: trainer built, data loaded, warmed up.

    ``run()`` trains ``examples`` examples once (one pass over a fixed slice);
    that is what the asv ``time_`` benchmarks and the pytest-benchmark tests
    time. ``projected_seconds(t)`` turns a measured time into a time per
    :data:`EPOCH_EXAMPLES`-example epoch. Raises :class:`NotApplicable` if
    the point cannot run here.
    """

    def __init__(self, config: Config, examples: Optional[int] = None, *, learning_rate: float = 0.1,
                 seed: int = 0, warmup_batches: int = 2):
        cls = check_applicable(config)
        self.config = config
        self.examples = harness_examples(config.backend, config.batch_size, base=examples)
        data = make_synthetic(max(self.examples, config.batch_size), seed=seed)
        self.spec = resolve_net(config.net, None, data.n_features, data.n_classes)
        # the set-up and warm-up of training.fit; a projected backend is plain Python with nothing to warm
        # up, and too slow to waste examples on
        self.settings = Settings(config.batch_size, learning_rate, config.threads, config.dtype, seed,
                                 options=config.options_dict, warmup_batches=0 if cls.projected else warmup_batches)
        started = start(cls, self.spec, data, self.settings)
        self.trainer, self.initial = started.trainer, started.initial
        self.order = epoch_order(len(data.X_train), seed, 1)[: self.examples]
        self.flops = self.spec.flops_per_epoch(self.examples)
        self.serial_counterpart = cls.serial_counterpart or cls.name

    def run(self) -> None:
        self.trainer.train_epoch(self.order, self.settings.batch_size, self.settings.learning_rate)

    def time(self, repeats: int = 1) -> float:
        """Best wall time of ``repeats`` calls of :meth:`run`."""
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            self.run()
            best = min(best, time.perf_counter() - start)
        return best

    def projected_seconds(self, seconds: float) -> float:
        return seconds * EPOCH_EXAMPLES / self.examples

    def gflops(self, seconds: float) -> float:
        return self.flops / seconds / 1e9

    def close(self) -> None:
        self.trainer.close()


_QUICK_PEAKS: dict = {}


def machine_peak(dtype: str, threads: int) -> tuple[Optional[float], str]:
    """Peak GFLOP/s for ``dtype`` at ``threads``: the one stored by `pgdbench peak`, else a quick GEMM measurement."""

    stored = peak.lookup(dtype, threads)
    if stored:
        return stored, "pgdbench peak"
    key = (dtype, threads)
    if key not in _QUICK_PEAKS:
        try:
            _QUICK_PEAKS[key] = peak.gemm_gflops(1024, np.dtype(dtype), threads, repeats=3)
        except Exception:  # never let the peak take a benchmark down
            _QUICK_PEAKS[key] = None
    return _QUICK_PEAKS[key], "quick 1024³ GEMM"


def harness_record(config: Config, repeats: int = 2, examples: Optional[int] = None) -> dict:
    """Time one grid point on a fixed slice of examples; a flat record (status ok / skipped / error / diverged).

    Projected (very slow) backends are timed once, whatever ``repeats`` says.
    """
    record = {"kind": "harness", **asdict(config), "options": config.options_dict}
    try:
        work = Workload(config, examples)
        if getattr(work.trainer, "projected", False):
            repeats = 1
    except NotApplicable as exc:
        return {**record, "status": "skipped", "reason": str(exc)}
    except Exception as exc:
        return {**record, "status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    try:
        seconds = work.time(repeats)
        if not all(math.isfinite(float(np.sum(a))) for a in work.trainer.get_weights().arrays()):
            return {**record, "status": "diverged", "reason": "parameters became NaN or infinite"}
    except Exception as exc:
        return {**record, "status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    finally:
        work.close()
    gflops = work.gflops(seconds)
    peak_value, peak_source = machine_peak(config.dtype, config.threads)
    return {**record, "status": "ok", "examples_timed": work.examples, "seconds": seconds,
            "projected": True, "seconds_per_epoch": work.projected_seconds(seconds), "epoch_examples": EPOCH_EXAMPLES,
            "gflops": gflops, "peak_gflops": peak_value, "peak_source": peak_source,
            "fraction_of_peak": gflops / peak_value if peak_value else None,
            "serial_counterpart": work.serial_counterpart}


def harness_configs(axes: dict) -> list[Config]:
    """The points the harness measures: :func:`expand` of the axes (each point with the same backend at 1
    thread and its serial counterpart at 1 thread, for its speedups), less the repeats of projected backends."""
    configs = expand(axes["backends"], axes["nets"], axes["batch_sizes"], axes["threads"])
    return [c for c in configs if not projected_once(c.backend, c.batch_size, axes["batch_sizes"])]

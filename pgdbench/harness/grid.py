"""The benchmark grid and the measurement of one point of it.

One definition serves ``pgdbench bench``, the asv suite and the
pytest-benchmark suite: a :class:`Config` names a backend, a net, a batch size,
a thread count, a dtype and backend options; :func:`measure` trains it on a
data set and returns one flat record.
"""
from __future__ import annotations

import itertools
import statistics
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Iterable, Optional

from pgdbench.core import registry
from pgdbench.core.model import resolve_net
from pgdbench.core.protocol import resolve_options, usable_cpus
from pgdbench.core.training import Settings, fit
from pgdbench.errors import DivergedError, PgdbenchError, UsageError
from pgdbench.harness import peak

#: Defaults of the grids (bench, asv, pytest-benchmark): the paper's nets and a
#: spread of batch sizes, threads 1 and all usable CPUs.
NETS = ("net1h", "net2h")
BATCH_SIZES = (32, 128, 512, 1024)
PROJECTED_EXAMPLES = 2000  # examples timed per epoch for backends marked `projected`


def default_threads() -> list[int]:
    """1 and every CPU this process may use: the paper's serial and fully parallel points."""
    return sorted({1, usable_cpus()})


@dataclass(frozen=True)
class Config:
    backend: str
    net: str = "net1h"
    batch_size: int = 128
    threads: int = 1
    dtype: str = "float32"
    options: tuple = ()  # sorted (key, value) pairs: hashable, so configs can be deduplicated

    @property
    def options_dict(self) -> dict:
        return dict(self.options)

    def label(self) -> str:
        opts = options_text(self.options_dict)
        return f"{self.backend}[{self.net},B={self.batch_size},T={self.threads},{self.dtype}{',' + opts if opts else ''}]"


def expand(backends: Iterable[str], nets: Iterable[str], batch_sizes: Iterable[int], threads: Iterable[int],
           dtypes: Iterable[str] = ("float32",), options: Optional[dict] = None,
           with_serial: bool = True) -> list[Config]:
    """Every combination, with serial-only backends at 1 thread, plus (if ``with_serial``) each
    backend's serial counterpart at 1 thread, so that speedups can be computed from the same run."""

    out: list[Config] = []
    for b, n, bs, t, dt in itertools.product(backends, nets, batch_sizes, threads, dtypes):
        cls = registry.get(b)
        if not cls.uses_threads and t != 1:
            continue
        opts = tuple(sorted((k, v) for k, v in (options or {}).items() if k in cls.options))  # those it declares
        out.append(Config(b, n, bs, t, dt, opts))
        if with_serial:
            serial = cls.serial_counterpart or b
            out.append(Config(b, n, bs, 1, dt, opts))
            out.append(Config(serial, n, bs, 1, dt))
    seen, unique = set(), []
    for c in out:
        if c not in seen:
            seen.add(c)
            unique.append(c)
    return unique


def check_options(backends: Iterable[str], options: Optional[dict]) -> None:
    """Every option (or value of a sweep) must be declared by one of ``backends`` and valid for each that declares
    it: checked before a grid starts, since ``expand`` hands each backend only the options it declares."""
    classes = [registry.get(b) for b in backends]
    for combo in option_grid(options):
        unknown = [k for k in combo if not any(k in cls.options for cls in classes)]
        if unknown:
            known = sorted({k for cls in classes for k in cls.options})
            raise UsageError(f"no backend among {', '.join(cls.name for cls in classes)} has option "
                             f"{', '.join(unknown)}; their options: {', '.join(known) or 'none'} "
                             f"(pgdbench list -v shows them)")
        for cls in classes:
            resolve_options(cls, {k: v for k, v in combo.items() if k in cls.options})


def option_grid(options: Optional[dict]) -> list[dict]:
    """Expand comma-separated option values into every combination, e.g. for a sweep of a backend's options.

    ``{"example_workers": "1,2", "reduce": "main"}`` → two option dicts. Values
    without a comma are kept as they are (so typed values pass through).
    """
    options = options or {}
    keys = list(options)
    choices = [[v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) and "," in value
               else [value] for value in options.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*choices)]


def best_options(records: list[dict]) -> list[dict]:
    """For every point measured under several option sets (same backend, net, batch, threads, dtype),
    the fastest record, with ``alternatives``: the other records of that point, fastest first."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get("status") == "ok":
            groups.setdefault((r["backend"], r["net"], r["batch_size"], r["threads"], r["dtype"]), []).append(r)
    out = []
    for group in groups.values():
        if len({_opts(r) for r in group}) > 1:
            ranked = sorted(group, key=lambda r: r["seconds_per_epoch"])
            out.append({**ranked[0], "alternatives": ranked[1:]})
    return out


def measure(config: Config, dataset, *, epochs: int = 1, learning_rate: float = 0.1, seed: int = 0,
            max_examples: Optional[int] = None, warmup_batches: int = 2, progress_factory=None) -> dict:
    """Train ``config`` for ``epochs`` and return a flat record (never raises for a bad run: the record says)."""

    record = {"kind": "bench", **asdict(config), "options": config.options_dict, "dataset": dataset.name,
              "epochs": epochs, "learning_rate": learning_rate, "seed": seed}
    try:
        cls = registry.get(config.backend)
        avail = registry.entry(config.backend).availability()
        if not avail:
            return {**record, "status": "unavailable", "reason": avail.reason}
        spec = resolve_net(config.net, None, dataset.n_features, dataset.n_classes)
        if max_examples is None and cls.projected:
            max_examples = PROJECTED_EXAMPLES
        start = time.perf_counter()
        settings = Settings(config.batch_size, learning_rate, config.threads, config.dtype, seed,
                            options=config.options_dict, warmup_batches=warmup_batches)
        result = fit(cls, spec, dataset, settings, epochs=epochs, max_examples=max_examples,
                     progress_factory=progress_factory)
        wall = time.perf_counter() - start
    except DivergedError as exc:
        return {**record, "status": "diverged", "reason": str(exc)}
    except PgdbenchError as exc:
        return {**record, "status": "error", "reason": str(exc)}
    except Exception as exc:  # a backend bug: recorded, and the rest of the grid still runs
        return {**record, "status": "error", "reason": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=5)}
    times = [e.seconds for e in result.epochs]
    tpe = statistics.median(times)
    gflops = statistics.median(e.gflops for e in result.epochs)
    machine_peak = peak.lookup(config.dtype, config.threads)
    return {
        **record,
        "status": "ok",
        "layers": list(spec.layers),
        "n_train": len(dataset.X_train),
        "examples_timed": result.epochs[-1].examples,
        "projected": any(e.projected for e in result.epochs),
        "seconds_per_epoch": tpe,
        "examples_per_second": len(dataset.X_train) / tpe,
        "epoch_seconds": times,
        "gflops": gflops,
        "peak_gflops": machine_peak,
        "fraction_of_peak": gflops / machine_peak if machine_peak else None,
        "transfer_seconds": result.transfer_seconds,
        "val_accuracy": result.epochs[-1].val_accuracy,
        "test_accuracy": result.test_accuracy,
        "wall_seconds": wall,
        "parallelism": cls.parallelism.value,
        "serial_counterpart": cls.serial_counterpart,
        "backend_metadata": result.metadata,
    }


def _opts(record: dict) -> tuple:
    return tuple(sorted((record.get("options") or {}).items()))


def point_key(r: dict) -> tuple:
    """(backend, net, batch size, threads, dtype, options) of a record: which grid point it measured."""
    return (r["backend"], r["net"], r["batch_size"], r["threads"], r.get("dtype") or "float32", _opts(r))


def options_text(options) -> str:
    """``k1=v1,k2=v2`` of an options dict (or None), sorted by key: how options appear in labels and tables."""
    return ",".join(f"{k}={v}" for k, v in sorted((options or {}).items()))

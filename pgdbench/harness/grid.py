"""The benchmark grid and the measurement of one point of it.

One definition serves ``pgdbench bench``, the asv suite and the
pytest-benchmark suite: a :class:`Config` names a backend, a net, a batch size,
a thread count, a dtype and backend options; :func:`measure` trains it on a
data set and returns one flat record.
"""
from __future__ import annotations

import itertools
import math
import statistics
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Optional

from pgdbench.core import registry
from pgdbench.core.model import resolve_net
from pgdbench.core.protocol import resolve_options, usable_cpus
from pgdbench.core.training import Settings, evaluate, fit, start, timed_epoch
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


def split_backend(spec: str) -> tuple[str, dict]:
    """``"threads[reduce=rows,gemm=mkl]"`` → ("threads", {"reduce": "rows", "gemm": "mkl"}); a plain name → (name,
    {}). So that one run can hold a backend under several option sets side by side (before and after, say)."""
    name, bracket, rest = spec.partition("[")
    if not bracket:
        return spec.strip(), {}
    if not rest.endswith("]"):
        raise UsageError(f"backend {spec!r}: expected NAME or NAME[KEY=VALUE,...]")
    options = {}
    for item in filter(None, (i.strip() for i in rest[:-1].split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"backend {spec!r}: expected KEY=VALUE inside the brackets, got {item!r}")
        options[key.strip()] = value.strip()
    return name.strip(), options


def expand(backends: Iterable[str], nets: Iterable[str], batch_sizes: Iterable[int], threads: Iterable[int],
           dtypes: Iterable[str] = ("float32",), options: Optional[dict] = None,
           with_serial: bool = True) -> list[Config]:
    """Every combination, with serial-only backends at 1 thread, plus (if ``with_serial``) each
    backend's serial counterpart at 1 thread, so that speedups can be computed from the same run.
    A comma-separated option value sweeps that option (:func:`option_grid`); a backend may be written
    with options of its own, ``numpy[gemm=mkl]`` (:func:`split_backend`). Bad options are refused first
    (:func:`check_options`), so call it before anything slow."""

    check_options(backends, options)
    specs = [split_backend(b) for b in backends]
    out: list[Config] = []
    for combo in option_grid(options):
        for (b, own), n, bs, t, dt in itertools.product(specs, nets, batch_sizes, threads, dtypes):
            cls = registry.get(b)
            if not cls.uses_threads and t != 1:
                continue
            # each backend gets the options it declares: -o gemm=mkl sweeps numpy and threads, torch runs as it
            # is; options written with the backend (numpy[gemm=mkl]) are its own and win
            opts = tuple(sorted({**{k: v for k, v in combo.items() if k in cls.options}, **own}.items()))
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
    it, and the options written with a backend (``numpy[gemm=mkl]``) must be its own: checked before a grid starts,
    since ``expand`` hands each backend only the options it declares."""
    specs = [split_backend(b) for b in backends]
    classes = [registry.get(name) for name, _ in specs]
    for combo in option_grid(options):
        unknown = [k for k in combo if not any(k in cls.options for cls in classes)]
        if unknown:
            known = sorted({k for cls in classes for k in cls.options})
            raise UsageError(f"no backend among {', '.join(cls.name for cls in classes)} has option "
                             f"{', '.join(unknown)}; their options: {', '.join(known) or 'none'} "
                             f"(pgdbench list -v shows them)")
        for cls, (_, own) in zip(classes, specs):
            resolve_options(cls, {**{k: v for k, v in combo.items() if k in cls.options}, **own})


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


def _base_record(config: Config, dataset, epochs: int, learning_rate: float, seed: int) -> dict:
    return {"kind": "bench", **asdict(config), "options": config.options_dict, "dataset": dataset.name,
            "epochs": epochs, "learning_rate": learning_rate, "seed": seed}


def _ok_record(record: dict, cls, spec, dataset, times: list[float], gflops: list[float], examples: int,
               projected: bool, transfer: float, val_accuracy: float, test_accuracy: float, wall: float,
               metadata: dict) -> dict:
    """The record of a point measured without error: median time per epoch and GFLOP/s, and the peak's fraction."""
    gflops_median = statistics.median(gflops)
    return {
        **record,
        "status": "ok",
        "layers": list(spec.layers),
        "n_train": len(dataset.X_train),
        "examples_timed": examples,
        "projected": projected,
        "seconds_per_epoch": statistics.median(times),
        "examples_per_second": len(dataset.X_train) / statistics.median(times),
        "epoch_seconds": times,
        "gflops": gflops_median,
        **peak.fraction_fields(gflops_median, record["dtype"], record["threads"]),
        "transfer_seconds": transfer,
        "val_accuracy": val_accuracy,
        "test_accuracy": test_accuracy,
        "wall_seconds": wall,
        "parallelism": cls.parallelism.value,
        "serial_counterpart": cls.serial_counterpart,
        "backend_metadata": metadata,
    }


def _failed(record: dict, exc: BaseException) -> dict:
    """A bad run as a record: the grid goes on."""
    if isinstance(exc, DivergedError):
        return {**record, "status": "diverged", "reason": str(exc)}
    if isinstance(exc, PgdbenchError):
        return {**record, "status": "error", "reason": str(exc)}
    return {**record, "status": "error", "reason": f"{type(exc).__name__}: {exc}",
            "traceback": "".join(traceback.format_exception(exc, limit=5))}


def measure(config: Config, dataset, *, epochs: int = 1, learning_rate: float = 0.1, seed: int = 0,
            max_examples: Optional[int] = None, warmup_batches: int = 2, progress_factory=None) -> dict:
    """Train ``config`` for ``epochs`` and return a flat record (never raises for a bad run: the record says)."""

    record = _base_record(config, dataset, epochs, learning_rate, seed)
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
    except Exception as exc:  # a backend bug too: recorded, and the rest of the grid still runs
        return _failed(record, exc)
    return _ok_record(record, cls, spec, dataset, [e.seconds for e in result.epochs],
                      [e.gflops for e in result.epochs], result.epochs[-1].examples,
                      any(e.projected for e in result.epochs), result.transfer_seconds,
                      result.epochs[-1].val_accuracy, result.test_accuracy, wall, result.metadata)


def interleave_groups(configs: Iterable[Config]) -> list[list[Config]]:
    """The configurations that are measured together by :func:`measure_interleaved`: those of one net, batch
    size and dtype (every backend, thread count and option set of that point), in the order given."""
    groups: dict[tuple, list[Config]] = {}
    for c in configs:
        groups.setdefault((c.net, c.batch_size, c.dtype), []).append(c)
    return list(groups.values())


def measure_interleaved(configs: list[Config], dataset, *, rounds: int = 5, learning_rate: float = 0.1,
                        seed: int = 0, max_examples: Optional[int] = None, warmup_batches: int = 2,
                        on_epoch: Optional[Callable[[Config, int, float], None]] = None) -> list[dict]:
    """Measure ``configs`` (one net, batch size and dtype) in one process, **interleaved**: every configuration is
    built, given the data and warmed up first; then ``rounds`` rounds each train one epoch of every configuration
    in turn (A, B, C, A, B, C, ...; each round starts one configuration later, so that none always follows the
    same one). All see the same minibatches in a round (epoch r of the core's order).

    A machine whose load changes during the run then slows every configuration of a round alike, so the ratio
    of two configurations' times within a round (:func:`pgdbench.harness.speedups.paired_ratios`) is far
    steadier than the ratio of two separate runs. Each record keeps its per-round times in ``epoch_seconds``
    (in round order) and says ``"interleaved": true``; evaluation comes after the last round, off the clock.
    """
    records: list[dict] = []
    live = []   # (config, cls, spec, started, settings, base record, epoch times)
    try:
        for config in configs:
            record = {**_base_record(config, dataset, rounds, learning_rate, seed), "interleaved": True}
            try:
                cls = registry.get(config.backend)
                avail = registry.entry(config.backend).availability()
                if not avail:
                    records.append({**record, "status": "unavailable", "reason": avail.reason})
                    continue
                spec = resolve_net(config.net, None, dataset.n_features, dataset.n_classes)
                cap = max_examples if max_examples is not None or not cls.projected else PROJECTED_EXAMPLES
                settings = Settings(config.batch_size, learning_rate, config.threads, config.dtype, seed,
                                    options=config.options_dict, warmup_batches=warmup_batches)
                live.append([config, cls, spec, start(cls, spec, dataset, settings), settings, record, [], cap])
            except Exception as exc:
                records.append(_failed(record, exc))
        n = len(dataset.X_train)
        clock = time.perf_counter()
        for r in range(rounds):
            for k in range(len(live)):
                entry = live[(k + r) % len(live)]
                if entry[6] is None:
                    continue
                config, started, settings, cap = entry[0], entry[3], entry[4], entry[7]
                try:
                    t = timed_epoch(started.trainer, n, settings, r + 1, cap)
                except Exception as exc:
                    records.append(_failed(entry[5], exc))
                    entry[6] = None
                    continue
                entry[6].append(t)
                if on_epoch:
                    on_epoch(config, r + 1, t.seconds)
        wall = time.perf_counter() - clock
        for config, cls, spec, started, settings, record, times, _ in live:
            if times is None:
                continue
            try:
                trainer = started.trainer
                val_loss, val_acc = evaluate(trainer, dataset.X_val, dataset.y_val, dataset.n_classes)
                if not math.isfinite(val_loss):
                    raise DivergedError(f"{config.backend}: the loss became {val_loss} after {rounds} epochs "
                                        f"(learning rate {learning_rate} too large?)")
                test_acc = evaluate(trainer, dataset.X_test, dataset.y_test, dataset.n_classes)[1]
                records.append(_ok_record(record, cls, spec, dataset, [t.seconds for t in times],
                                          [t.gflops(spec) for t in times], times[-1].examples,
                                          times[-1].projected, started.transfer_seconds, val_acc, test_acc, wall,
                                          trainer.metadata()))
            except Exception as exc:
                records.append(_failed(record, exc))
    finally:
        for entry in live:
            entry[3].trainer.close()
    order = {c: k for k, c in enumerate(configs)}
    return sorted(records, key=lambda rec: order.get(config_of(rec), len(order)))


def config_of(record: dict) -> Config:
    """The configuration a record measured."""
    return Config(record["backend"], record["net"], record["batch_size"], record["threads"], record["dtype"],
                  tuple(sorted((record.get("options") or {}).items())))


def _opts(record: dict) -> tuple:
    return tuple(sorted((record.get("options") or {}).items()))


def point_key(r: dict) -> tuple:
    """(backend, net, batch size, threads, dtype, options) of a record: which grid point it measured."""
    return (r["backend"], r["net"], r["batch_size"], r["threads"], r.get("dtype") or "float32", _opts(r))


def options_text(options) -> str:
    """``k1=v1,k2=v2`` of an options dict (or None), sorted by key: how options appear in labels and tables."""
    return ",".join(f"{k}={v}" for k, v in sorted((options or {}).items()))

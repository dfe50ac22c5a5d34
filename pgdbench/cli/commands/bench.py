"""Time a grid of backends × nets × batch sizes × threads and append every result to a results file.

Each configuration is trained for --epochs epochs after an untimed warm-up of
two batches; the median time per epoch, GFLOP/s, the fraction of the machine's
measured peak (after `pgdbench peak`), the accuracy and the speedups over the
serial counterpart and over 1 thread (measured in the same run) are printed
as a table. Backends marked projected (the pure-Python one) time a fixed
number of examples and say so. Results are appended one record at a time, so
an interrupted run keeps everything measured before the interruption.

A comma-separated option value (``-o example_workers=1,2``) measures every
value; after the table, the fastest option set of each point is named (e.g.
the best split of the ``hybrid`` backend).

Two sweeps of the source papers' studies are grids too:

* over MPI rank counts, ``--ranks 1,2,4`` (MPI backends; default backend
  ``mpi``, one BLAS thread per rank): one ``mpiexec -n K`` job per K, spawned
  here, and the speedup over one rank and the parallel efficiency
  (``pgdbench/cli/commands/bench_ranks.py``);
* over replicas, ``--backend averaging --threads 1,2,4 -o combine=average,sum``
  (one replica per thread): ``pgdbench report`` summarises accuracy and
  speedup against replicas for each rule (Ott, *Training Neural Networks in
  Parallel*).

``--net`` takes a preset or explicit widths (``--net 784,128,10``).
"""
from __future__ import annotations

import argparse
import sys

from pgdbench.cli.commands import bench_ranks
from pgdbench.cli.commands.common import (add_data_arguments, add_option_argument, check_outputs, count,
                                          grid_progress, int_list, load_data, parse_options, positive_float,
                                          positive_int, record_config, seed, tqdm_progress)
from pgdbench.core import mpi, registry
from pgdbench.core.protocol import check_threads
from pgdbench.errors import PgdbenchError
from pgdbench.harness import grid
from pgdbench.harness.grid import (BATCH_SIZES, NETS, best_options, default_threads, expand, measure, options_text,
                                   split_backend)
from pgdbench.harness.speedups import add_speedups, paired_ratios
from pgdbench.harness.results import results_writer
from pgdbench.reporting.tables import table

HELP = "time a grid of backends × nets × batch sizes × threads (or × MPI ranks with --ranks)"


def add_arguments(p):
    p.add_argument("--backend", action="append",
                   help="backend (repeatable; 'all' = every registered backend, unavailable ones recorded as such; "
                        "NAME[KEY=VALUE,...] gives it options of its own, so one run can hold a backend under "
                        "several option sets; default: numpy)")
    p.add_argument("--net", action="append",
                   help=f"net preset or widths like 784,128,10 (repeatable; default: {', '.join(NETS)})")
    p.add_argument("--batch-size", type=int_list, help=f"comma-separated (default {','.join(map(str, BATCH_SIZES))})")
    p.add_argument("--threads", type=int_list,
                   help="comma-separated thread counts (default 1 and all CPUs; with --ranks: BLAS threads per rank, "
                        "default 1)")
    p.add_argument("--dtype", action="append", choices=["float32", "float64"])
    add_data_arguments(p, default="synthetic:50000")
    p.add_argument("--seed", type=seed, default=0, help="seed of the weights and example order (default 0)")
    p.add_argument("--epochs", type=positive_int,
                   help="timed epochs per configuration, median reported (default 1); with --interleave, the "
                        "rounds of the interleaved measurement (default 5)")
    p.add_argument("--interleave", action="store_true",
                   help="measure the configurations of each net × batch size × dtype in one process, epoch by epoch "
                        "in turn (A, B, A, B, ...), so that their ratios are paired round by round")
    p.add_argument("--baseline", action="append", metavar="BACKEND",
                   help="print every point's speed relative to this backend at the same net, batch, threads and "
                        "dtype (repeatable; added to the run; with --interleave: median and range of the per-round "
                        "ratios)")
    p.add_argument("--lr", type=positive_float, default=0.1)
    p.add_argument("--max-examples", type=positive_int,
                   help="time only this many examples per epoch (epoch time reported as projected)")
    add_option_argument(p, "; KEY=V1,V2 sweeps the values and reports the fastest per point")
    p.add_argument("--ranks", type=int_list, metavar="K1,K2,...",
                   help="time MPI backends over these rank counts, one mpiexec -n K job each (default backend: mpi)")
    p.add_argument("--hostfile", help="with --ranks: hostfile for multi-host jobs (mpiexec -f / --hostfile)")
    p.add_argument("--timeout", type=positive_float, default=3600.0, help="with --ranks: seconds allowed per MPI job")
    p.add_argument("--results", default="results/bench.jsonl", help="results file to append to")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--worker", metavar="RECORDS.jsonl", help=argparse.SUPPRESS)  # inside a --ranks job


def run(args):
    args.epochs = epochs = args.epochs or (5 if args.interleave else 1)
    args.net = args.net or list(NETS)
    args.batch_size = args.batch_size or list(BATCH_SIZES)
    if args.worker:
        return bench_ranks.run_worker(args)
    check_outputs(results=args.results)
    if args.ranks:
        return bench_ranks.run(args)
    backends = args.backend or ["numpy"]
    if "all" in backends:
        backends = registry.names()
    baselines = args.baseline or []
    backends = list(dict.fromkeys([*backends, *baselines]))
    for b in backends:
        registry.get(split_backend(b)[0])
    threads = args.threads or default_threads()
    for t in threads:
        check_threads(t, True, "bench")
    # before the data: a bad option is refused at once; -o key=a,b sweeps the option's values
    configs = expand(backends, args.net, args.batch_size, threads, args.dtype or ["float32"],
                     parse_options(args.option))
    dataset = load_data(args)
    mode = f", interleaved in {epochs} rounds" if args.interleave else ""
    print(f"{count(len(configs), 'configuration')} on {dataset.summary()}{mode}; appending to {args.results}",
          flush=True)
    records = []
    show = not args.quiet and sys.stderr.isatty()
    overall = grid_progress(show, len(configs))

    def report(rec, k):
        projected = (f" (projected from {rec['examples_timed']} examples at "
                     f"{rec['examples_per_second']:.3g} examples/s)" if rec.get("projected") else "")
        line = (f"{rec['seconds_per_epoch']:.3f} s/epoch{projected}, "
                f"{rec['gflops']:.1f} GFLOP/s" if rec["status"] == "ok" else f"{rec['status']}: {rec['reason']}")
        overall.write(f"[{k}/{len(configs)}] {grid.config_of(rec).label()}: {line}")
        overall.update(1)

    try:
        with results_writer(args.results, "bench", record_config(args)) as writer:  # rank 0 writes, under mpiexec
            def keep(rec, config):
                writer.write(rec)
                if rec["status"] == "error" and mpi.launched_size() > 1:
                    # the other ranks may be waiting in a collective for this one: end the job (the CLI aborts it)
                    raise PgdbenchError(f"{config.label()}: {rec['reason']}")
                records.append(rec)
                report(rec, len(records))

            if args.interleave:
                for group in grid.interleave_groups(configs):
                    for rec in grid.measure_interleaved(group, dataset, rounds=epochs, learning_rate=args.lr,
                                                        seed=args.seed, max_examples=args.max_examples):
                        keep(rec, grid.config_of(rec))
            else:
                for config in configs:
                    keep(measure(config, dataset, epochs=epochs, learning_rate=args.lr, seed=args.seed,
                                 max_examples=args.max_examples, progress_factory=tqdm_progress(show, config.backend)),
                         config)
    finally:  # an interrupted grid still shows what it measured
        overall.close()
        if records:
            add_speedups(records)
            for b in baselines:
                paired_ratios(records, b)
            print_table(records, baselines)
            print_best_options(records)
    return 0


def print_table(records, baselines=()):
    rows = []
    for r in records:
        row = dict(r)
        if r.get("options"):
            row["backend"] = f"{r['backend']} [{options_text(r['options'])}]"
        if r.get("status") == "ok":
            row["tpe"] = f"{r['seconds_per_epoch']:.3f}{'*' if r['projected'] else ''}"
            row["peak"] = (f"{r['fraction_of_peak']:.0%}" + ("(!)" if r["fraction_of_peak"] > 1 else "")
                           if r.get("fraction_of_peak") else "-")
            row["limit"] = f"{r['fraction_of_theoretical']:.0%}" if r.get("fraction_of_theoretical") else "-"
            row["acc"] = f"{r['test_accuracy']:.1%}"
            times = r.get("epoch_seconds") or []
            if len(times) > 1:  # the epochs' spread around the median, in per cent
                row["spread"] = f"±{50 * (max(times) - min(times)) / r['seconds_per_epoch']:.0f}%"
            for b in baselines:
                value = (r.get("ratio_vs") or {}).get(b)
                spread = (r.get("ratio_vs_range") or {}).get(b)
                row[f"vs {b}"] = (None if value is None else
                                  f"{value:.2f}" + (f" [{spread[0]:.2f}-{spread[1]:.2f}]" if spread else ""))
        else:
            row["tpe"] = r.get("status")
        rows.append(row)
    print(table(rows, [("backend", "backend"), ("net", "net"), ("batch_size", "batch"), ("threads", "threads"),
                       ("dtype", "dtype"), ("tpe", "s/epoch"), ("spread", "spread"), ("gflops", "GFLOP/s"),
                       ("peak", "of peak"), ("limit", "of limit"), ("speedup_vs_serial", "vs serial"), ("speedup_vs_1thread", "vs 1 thread"),
                       *[(f"vs {b}", f"× {b}") for b in baselines], ("acc", "test acc")]))
    if any(r.get("projected") for r in records):
        print("* projected: timed on part of an epoch and extrapolated to the whole epoch")
    peaks = {(r.get("peak_machine"), str(r.get("peak_date"))[:10], r.get("peak_provider")) for r in records
             if r.get("peak_gflops")}
    for machine, date, provider in sorted(peaks, key=str):
        print(f"of peak: over the best GEMM of any BLAS here (pgdbench peak: {machine}, {date}, best {provider}); "
              f"of limit: over the cores' theoretical limit")
    for note in sorted({r["peak_note"] for r in records if r.get("peak_note")}):
        print(f"peak: {note}")
    if any(len(r.get("epoch_seconds") or []) > 1 for r in records):
        print("spread: half the range of the timed epochs, relative to their median")
    for b in baselines:
        print(f"× {b}: how many times faster than {b} at the same net, batch, threads and dtype"
              + ("; median [least-greatest] of the per-round ratios" if any(r.get("interleaved") for r in records)
                 else ""))


def print_best_options(records):
    """Where one point was measured under several option sets (a sweep), name the fastest."""

    best = best_options(records)
    if best:
        print("\nbest option set per point (from -o KEY=V1,V2 sweeps):")
    for r in best:
        opts = options_text(r["options"]) or "defaults"
        meta = r.get("backend_metadata") or {}
        split = (f" (split {meta['example_workers']}×{meta['blas_threads']}: example workers × BLAS threads)"
                 if "example_workers" in meta and "blas_threads" in meta else "")
        others = "; ".join(f"{options_text(a['options']) or 'defaults'} {a['seconds_per_epoch']:.3f}"
                           for a in r["alternatives"])
        print(f"  {r['backend']} {r['net']} B={r['batch_size']} T={r['threads']} {r['dtype']}: {opts}{split} "
              f"{r['seconds_per_epoch']:.3f} s/epoch (others: {others})")

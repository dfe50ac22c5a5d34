"""`pgdbench bench --ranks K1,K2,...`: MPI backends timed over rank counts, one `mpiexec -n K` job per K.

For every rank count K, one MPI job is launched with the mpiexec beside this
Python (`mpiexec -n K python -m pgdbench.cli bench --worker ...`, plus `-f
HOSTFILE` for multi-host runs). Inside the job every rank trains every
configuration (backend × net × batch size × BLAS threads per rank × dtype ×
option values) exactly as `pgdbench bench` does (untimed warm-up of two
batches, median time per epoch), and rank 0 hands the records back. The
parent prints a table with the speedup over the 1-rank run of the same
configuration and the parallel efficiency speedup/K, and appends every record
(with `ranks` and `oversubscribed`) to --results. A job that fails is recorded
as such and the other rank counts still run.
"""
from __future__ import annotations

import sys

from pgdbench.cli.commands.common import count, load_data, parse_options, record_config
from pgdbench.core import mpi, registry
from pgdbench.core.protocol import usable_cpus
from pgdbench.errors import UsageError
from pgdbench.harness import mpi_jobs
from pgdbench.harness.grid import expand, measure
from pgdbench.harness.machine import machine_info
from pgdbench.harness.results import ResultsWriter, append_record
from pgdbench.reporting.tables import table
from pgdbench.studies.mpi_scaling import add_rank_speedups

#: Defaults of a rank sweep where bench's own do not fit: the MPI backend, one BLAS thread per rank.
BACKENDS = ["mpi"]
THREADS = [1]


def grid(args) -> list:
    """backend × net × batch size × threads per rank × dtype × option values, without serial counterparts (the
    baseline of a rank sweep is the same configuration at one rank)."""
    return expand(args.backend or BACKENDS, args.net, args.batch_size, args.threads or THREADS,
                  args.dtype or ["float32"], parse_options(args.option), with_serial=False)


def run_worker(args):
    """Inside the MPI job: every rank measures, rank 0 writes the records for the parent."""

    ranks = mpi.launched_size()
    dataset = load_data(args)
    for config in grid(args):
        rec = measure(config, dataset, epochs=args.epochs, learning_rate=args.lr, seed=args.seed,
                      max_examples=args.max_examples)
        if rec["status"] == "error" and ranks > 1:  # the other ranks may be waiting in a collective
            mpi.abort(1, f"{config.label()}: {rec['reason']}")
        meta = rec.get("backend_metadata") or {}
        rec.update(ranks=ranks, oversubscribed=meta.get("oversubscribed", ranks * config.threads > usable_cpus()))
        if mpi.is_root():
            append_record(args.worker, rec)
    return 0


def worker_argv(args, ranks_file: str) -> list[str]:
    argv = ["bench", "--worker", ranks_file, "--batch-size", ",".join(map(str, args.batch_size)),
            "--threads", ",".join(map(str, args.threads or THREADS)), "--dataset", args.dataset,
            "--seed", str(args.seed), "--epochs", str(args.epochs), "--lr", repr(args.lr), "--quiet"]
    for b in args.backend or []:
        argv += ["--backend", b]
    for n in args.net or []:
        argv += ["--net", n]
    for d in args.dtype or []:
        argv += ["--dtype", d]
    for o in args.option:
        argv += ["--option", o]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    if args.max_examples:
        argv += ["--max-examples", str(args.max_examples)]
    return argv


def run(args):
    """The parent: one MPI job per rank count, records gathered, speedups over one rank, a table."""
    configs = grid(args)
    for c in configs:
        cls = registry.get_available(c.backend)
        if cls.device != "cluster":
            raise UsageError(f"backend {c.backend!r} is not an MPI backend; --ranks times mpi, mpi-averaging, ...")
    launcher = mpi_jobs.mpiexec()
    print(f"{count(len(configs), 'configuration')} × ranks {','.join(map(str, args.ranks))} with {launcher}; "
          f"appending to {args.results}", flush=True)
    records = []
    try:
        with ResultsWriter(args.results, "bench", machine_info(),
                           record_config(args, "worker")) as writer:
            for k in sorted(set(args.ranks)):  # 1 rank first: it is the baseline of the efficiencies
                try:
                    got, failure = run_job(args, k)
                except mpi_jobs.Interrupted as stopped:  # keep what the job finished, then stop here too
                    keep(writer, records, k, stopped.records, stopped.failure)
                    raise
                keep(writer, records, k, got, failure)
    finally:  # an interrupted run still shows what it measured
        if records:
            print(table(table_rows(records), COLUMNS))
            if any(r.get("oversubscribed") for r in records):
                print("oversubscribed: more ranks × threads than CPUs on a host; those times measure contention")
    return 0


def keep(writer, records: list, ranks: int, got: list, failure: str) -> None:
    """Write the records of one job (and, if it failed or was interrupted, a record saying so)."""
    add_rank_speedups(records + got)  # fills speedup_vs_1rank / parallel_efficiency before writing
    for rec in got:
        writer.write(rec)
        records.append(rec)
        print(f"[ranks={ranks}] {describe(rec)}", flush=True)
    if failure:
        status = "interrupted" if failure.startswith("interrupted") else "error"
        writer.write({"kind": "bench", "status": status, "ranks": ranks, "reason": failure})
        print(f"[ranks={ranks}] MPI job {'failed: ' if status == 'error' else ''}{failure}", file=sys.stderr,
              flush=True)


def run_job(args, ranks: int) -> tuple[list[dict], str]:
    """One MPI job of ``ranks`` ranks: the records it measured, and why it failed ('' if it did not)."""

    got, failure = mpi_jobs.run_job(ranks, lambda out: worker_argv(args, out), hostfile=args.hostfile,
                                    timeout=args.timeout, echo=not args.quiet)
    for rec in got:
        rec["ranks"] = ranks
    return got, failure


def describe(rec: dict) -> str:
    label = f"{rec.get('backend')}[{rec.get('net')},B={rec.get('batch_size')},T={rec.get('threads')},{rec.get('dtype')}]"
    if rec.get("status") != "ok":
        return f"{label}: {rec.get('status')}: {rec.get('reason')}"
    return f"{label}: {rec['seconds_per_epoch']:.3f} s/epoch, {rec['gflops']:.1f} GFLOP/s"


def table_rows(records: list[dict]) -> list[dict]:
    """The successful records (speedups already added) with the table's formatted cells."""
    rows = []
    for r in records:
        if r.get("status") != "ok":
            continue
        eff = r.get("parallel_efficiency")
        rows.append({**r, "tpe": f"{r['seconds_per_epoch']:.3f}{'*' if r.get('projected') else ''}",
                     "eff": f"{eff:.0%}" if eff is not None else "-",
                     "over": "yes" if r.get("oversubscribed") else "",
                     "acc": f"{r['test_accuracy']:.1%}" if r.get("test_accuracy") is not None else "-"})
    return rows


COLUMNS = [("backend", "backend"), ("net", "net"), ("batch_size", "batch"), ("ranks", "ranks"),
           ("threads", "threads/rank"), ("dtype", "dtype"), ("tpe", "s/epoch"), ("gflops", "GFLOP/s"),
           ("speedup_vs_1rank", "vs 1 rank"), ("eff", "efficiency"), ("over", "oversubscribed"), ("acc", "test acc")]

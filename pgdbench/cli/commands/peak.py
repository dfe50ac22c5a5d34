"""Measure the machine's GEMM throughput (float32 and float64, per thread count).

Reports then state every backend's GFLOP/s as a fraction of this measured peak.
The figures are stored in the user cache for later reports.
"""
from __future__ import annotations

from pgdbench.cli.commands.common import int_list, positive_int
from pgdbench.core.protocol import check_threads, usable_cpus
from pgdbench.harness import peak
from pgdbench.reporting.tables import table

HELP = "measure the machine's GEMM GFLOP/s per dtype and thread count"


def add_arguments(p):
    p.add_argument("--threads", type=int_list, help="thread counts, e.g. 1,2 (default 1..all usable CPUs)")
    p.add_argument("--size", type=positive_int, default=2048, help="matrix size n of the n×n×n product")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed repeats; the best is kept")


def run(args):
    threads = args.threads or list(range(1, usable_cpus() + 1))
    for t in threads:
        check_threads(t, True, "peak")
    results = peak.measure(threads, args.size, args.repeats)
    rows = []
    for key, value in results["gflops"].items():
        dtype, t = key.split("/")
        rows.append({"dtype": dtype, "threads": int(t), "gflops": value})
    print(f"GEMM {args.size}³ on {results['machine']} (best of {args.repeats})")
    print(table(rows, [("dtype", "dtype"), ("threads", "threads"), ("gflops", "GFLOP/s")]))
    print(f"stored in {peak.save(results)}")
    return 0

"""Measure the machine's peak: GEMM through every BLAS the suite can call, and the cores' theoretical limit.

Per dtype and thread count: the GFLOP/s of an n×n×n GEMM through NumPy's OpenBLAS, oneMKL (where installed) and
torch.mm (where installed), the best of them (the peak that reports divide by), and the theoretical limit of the
cores (vector lanes × FMA units × 2 × clock; the clock from a dependent-FMA chain, or read from the CPU: the output
says which). Stored in the user cache with the machine and the date, for later benchmarks and reports.
"""
from __future__ import annotations

from pgdbench.cli.commands.common import int_list, positive_int
from pgdbench.core.protocol import check_threads, usable_cpus
from pgdbench.harness import peak
from pgdbench.reporting.tables import table

HELP = "measure the machine's GEMM peak with every BLAS found, and the cores' theoretical limit"


def add_arguments(p):
    p.add_argument("--threads", type=int_list, help="thread counts, e.g. 1,2 (default 1..all usable CPUs)")
    p.add_argument("--size", type=positive_int, default=2048, help="matrix size n of the n×n×n product")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed repeats; the best is kept")


def run(args):
    threads = args.threads or list(range(1, usable_cpus() + 1))
    for t in threads:
        check_threads(t, True, "peak")
    results = peak.measure(threads, args.size, args.repeats)
    limit = results["theoretical"]
    rows = []
    providers = sorted({name for rates in results["gemm"].values() for name in rates})
    for key, rates in results["gemm"].items():
        dtype, t = key.split("/")
        theo = results["theoretical_gflops"][key]
        row = {"dtype": dtype, "threads": int(t), **rates, "best": results["best"][key],
               "peak": results["gflops"][key], "theoretical": theo,
               "of_theoretical": f"{results['gflops'][key] / theo:.0%}" if theo else "-"}
        rows.append(row)
    m = results["machine"]
    print(f"GEMM {args.size}³ (best of {args.repeats}) on {m['cpu_model']}, {m['cores']} cores, "
          f"host {m['host']}, load average {results['load_average']:.2f}")
    print(table(rows, [("dtype", "dtype"), ("threads", "threads"), *[(p, p) for p in providers], ("best", "best"),
                       ("peak", "peak GFLOP/s"), ("theoretical", "theoretical"), ("of_theoretical", "peak/theor.")]))
    clock = f"{limit['clock_ghz']:.2f} GHz" if limit["clock_ghz"] else "unknown"
    print(f"theoretical = threads × {limit['vector_bits']}-bit vectors × {limit['fma_units']} FMA units × 2 × "
          f"clock {clock} ({limit['clock_source']}); units: {limit['source']}")
    if results["load_average"] and results["load_average"] > 0.5 * usable_cpus():
        print("note: the machine was busy; the measured peak is low, and benchmarks may exceed it")
    print(f"stored in {peak.save(results)}")
    return 0

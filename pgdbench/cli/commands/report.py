"""Turn results files into PNG figures and a Markdown summary (report.md) with the paper's claims checked.

Reads any mix of `pgdbench bench`, `tta`, `averaging-study`, `mpi-bench` and
`dbn` (single runs and `--scaling`) JSON lines, the device check's
device-check.json (scripts/device-check.sh: its tables go in a section of
their own), pytest-benchmark JSON (--benchmark-save/--benchmark-autosave
files) and asv result files (or folders holding them: .asv/results,
.benchmarks). Writes, for each net: time per epoch
and GFLOP/s bars against batch size (the paper's Figs 5-8), speedup over the
serial counterpart against batch size (Figs 9-10) and the fraction of the
machine's GEMM peak; thread scaling (speedup and efficiency against threads);
time-to-accuracy curves; accuracy and speedup against replicas, averaging vs
summing (Ott, *Training Neural Networks in Parallel*); RBM time and
classification error against MPI ranks (De Filippo De Grazia et al.,
*Parallelization of Deep Networks*); MPI parallel efficiency against batch
size; and the claims table (claim, paper's value, ours, holds?), whose sources
docs/studies.md describes. Incomplete runs (killed before their
run_end) and torn lines are flagged in the summary.

Example: pgdbench bench --results results/paper.jsonl && pgdbench report results/paper.jsonl --out report/
         pgdbench report results/averaging-study.jsonl results/mpi-bench.jsonl results/dbn.jsonl --out report/
"""
from __future__ import annotations

import sys
from pathlib import Path

from pgdbench.cli.commands.common import check_outputs, count
from pgdbench.core.files import atomic_write_text
from pgdbench.errors import DataError
from pgdbench.reporting.collection import load
from pgdbench.reporting.summary import make_figures, markdown

HELP = "figures (PNG) and a Markdown summary with the paper's claims, from results files"


def add_arguments(p):
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="results files or folders: .jsonl (bench, tta, averaging-study, mpi-bench, dbn), "
                        "the device check's device-check.json, pytest-benchmark .json, asv results")
    p.add_argument("--out", default="report", help="output folder (default report/)")
    p.add_argument("--title", default="pgdbench report", help="heading of report.md")
    p.add_argument("--baseline", action="append", metavar="BACKEND",
                   help="tabulate every series against this backend (repeatable; default: torch-nn and torch, "
                        "where the results hold them)")


def run(args):
    check_outputs(out=args.out)
    data = load(args.results)
    if data.empty():
        print_warnings(data.warnings, sys.stderr)
        skipped = count(len(data.not_ok), "failed or skipped point")
        raise DataError(f"no usable results in {', '.join(args.results)} ({skipped}, "
                        f"{count(len(data.warnings), 'warning')} above)")
    out = Path(args.out)
    figures = make_figures(data, out)
    text = markdown(data, figures, args.title, args.baseline or ("torch-nn", "torch"))
    atomic_write_text(out / "report.md", text)
    print(f"{count(len(figures), 'figure')} and {out / 'report.md'} written "
          f"({count(len(data.rows), 'performance point')}, {count(len(data.tta), 'tta run')}, "
          f"{count(len(data.averaging_records), 'averaging-study run')}, {count(len(data.mpi), 'mpi-bench point')}, "
          f"{count(len(data.dbn_records), 'DBN run')})")
    print_warnings(data.warnings, sys.stdout)
    return 0


def print_warnings(warnings: list[str], stream) -> None:
    if warnings:
        print(f"{count(len(warnings), 'warning')}:", file=stream)
    for w in warnings:
        print(f"warning: {w}", file=stream)

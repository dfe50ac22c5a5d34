"""Deprecated alias of `pgdbench bench --ranks` (kept for one release), with its former defaults.

`pgdbench mpi-bench ARGS` is `pgdbench bench --ranks 1,2 --backend mpi --net net2h --batch-size 512,1024
--threads 1 --epochs 2 --results results/mpi-bench.jsonl ARGS`: one `mpiexec -n K` job per rank count K,
speedup over one rank and parallel efficiency. Use `pgdbench bench --ranks` instead.

Example (the project's efficiency target, Net-2h at batch 512 and 1024):
  pgdbench bench --ranks 1,2 --net net2h --batch-size 512,1024 --epochs 2
"""
from __future__ import annotations

import sys

from pgdbench.cli.commands import bench

HELP = "deprecated alias of bench --ranks (MPI backends over rank counts); goes in the next release"


def add_arguments(p):
    bench.add_arguments(p)
    p.set_defaults(ranks=[1, 2], batch_size=[512, 1024], threads=[1], epochs=2, results="results/mpi-bench.jsonl")


def run(args):
    print("pgdbench mpi-bench is deprecated and goes in the next release: use pgdbench bench --ranks",
          file=sys.stderr)
    args.net = args.net or ["net2h"]
    return bench.run(args)

"""Run the conformance kit (pgdbench.core.testing) on a backend and print a readable report.

Checks: protocol, gradients against finite differences (float64), whole
training epochs against the float64 reference (float64 and float32, 1 and 2
threads), and convergence on real digits. ``-o KEY=VALUE`` runs them under a
backend option (a GEMM provider, an elementwise strategy, ...). Exit status 1
if any check failed.
"""
from __future__ import annotations

from pgdbench.cli.commands.common import add_option_argument, parse_options
from pgdbench.core import registry
from pgdbench.core.protocol import resolve_options
from pgdbench.core.testing import run_checks, with_options

HELP = "run the shared conformance checks on a backend"


def add_arguments(p):
    p.add_argument("backend", nargs="+", help="registered backend name(s), or 'all'")
    p.add_argument("--only", action="append", help="run only checks whose name starts with this (repeatable)")
    add_option_argument(p, "; the checks then run under these options, e.g. -o gemm=mkl -o elementwise=numba")


def run(args):
    names = registry.names() if args.backend == ["all"] else args.backend
    options = parse_options(args.option)
    failed = 0
    for name in names:
        resolve_options(registry.get(name), options)   # a bad option: one line, before any check runs
        cls = with_options(registry.get(name), options)
        opts = "".join(f" -o {k}={v}" for k, v in options.items())
        print(f"{name}{opts}:")
        for r in run_checks(cls, args.only):
            first, *rest = (r.detail or "").splitlines() or [""]
            print(f"  {r.status.upper():7s} {r.name}{'  ' + first if first else ''}")
            failed += r.status == "failed"
    print(f"{failed} failed" if failed else "all checks passed or skipped with a reason")
    return 1 if failed else 0

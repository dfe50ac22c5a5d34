"""Run the conformance kit (pgdbench.core.testing) on a backend and print a readable report.

Checks: protocol, gradients against finite differences (float64), whole
training epochs against the float64 reference (float64 and float32, 1 and 2
threads), and convergence on real digits. Exit status 1 if any check failed.
"""
from __future__ import annotations

from pgdbench.core import registry
from pgdbench.core.testing import run_checks

HELP = "run the shared conformance checks on a backend"


def add_arguments(p):
    p.add_argument("backend", nargs="+", help="registered backend name(s), or 'all'")
    p.add_argument("--only", action="append", help="run only checks whose name starts with this (repeatable)")


def run(args):
    names = registry.names() if args.backend == ["all"] else args.backend
    failed = 0
    for name in names:
        cls = registry.get(name)
        print(f"{name}:")
        for r in run_checks(cls, args.only):
            first, *rest = (r.detail or "").splitlines() or [""]
            print(f"  {r.status.upper():7s} {r.name}{'  ' + first if first else ''}")
            failed += r.status == "failed"
    print(f"{failed} failed" if failed else "all checks passed or skipped with a reason")
    return 1 if failed else 0

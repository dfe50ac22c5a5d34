"""List every registered backend: parallelism, device, serial counterpart, and whether it runs here."""
from __future__ import annotations

from pgdbench.core import elementwise, gemm, registry
from pgdbench.core.protocol import declared_options
from pgdbench.reporting.tables import table

HELP = "list backends and whether they are available here"


def add_arguments(p):
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also show descriptions and options, the GEMM providers and elementwise strategies found here")


def run(args):
    rows = []
    for name, entry in registry.entries().items():
        avail = entry.availability()
        cls = entry.cls
        rows.append({
            "name": name,
            "parallelism": cls.parallelism.value if cls else "?",
            "device": cls.device if cls else "?",
            "serial": cls.serial_counterpart if cls else "?",
            "available": "yes" if avail else f"no: {avail.reason}",
        })
    print(table(rows, [("name", "backend"), ("parallelism", "parallelism"), ("device", "device"),
                       ("serial", "serial counterpart"), ("available", "available here")]))
    if args.verbose:
        for name, entry in registry.entries().items():
            if entry.cls is not None:
                opts = ", ".join(f"{k}={d.describe()}" for k, d in declared_options(entry.cls).items()) or "none"
                print(f"\n{name}: {entry.cls.description}\n  options: {opts}")
        print(f"\nGEMM providers (-o gemm=..., default auto = {gemm.default_name()}):")
        print(table(gemm.describe_all(), [("provider", "provider"), ("available", "available here"),
                                          ("library", "library"), ("version", "version"),
                                          ("architecture", "kernels"), ("threading", "threading")]))
        print(f"\nelementwise strategies (-o elementwise=..., default auto = {elementwise.default_name()}):")
        print(table([{"name": k, "available": "yes" if why is None else f"no: {why}"}
                     for k, why in elementwise.available().items()],
                    [("name", "strategy"), ("available", "available here")]))
    return 0

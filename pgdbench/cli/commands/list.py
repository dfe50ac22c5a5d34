"""List every registered backend: parallelism, device, serial counterpart, and whether it runs here."""
from __future__ import annotations

from pgdbench.core import registry
from pgdbench.core.protocol import declared_options
from pgdbench.reporting.tables import table

HELP = "list backends and whether they are available here"


def add_arguments(p):
    p.add_argument("-v", "--verbose", action="store_true", help="also show descriptions and options")


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
    return 0

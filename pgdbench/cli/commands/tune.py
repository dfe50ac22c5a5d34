"""Kamra et al.'s (*Parallel Gradient Descent*) learning-rate search: train at each rate of a grid and pick the
best validation accuracy.

Default grid: 0.001, 0.002, 0.01, 0.1, 0.5, 1.0 (the paper's). A rate at which
training diverges (the loss becomes NaN or infinite) or learns nothing (accuracy
at chance with every output unit saturated, or with a loss that never fell below
its starting value) is reported as diverged and never chosen.
"""
from __future__ import annotations

from pgdbench.cli.commands.common import (add_data_arguments, add_model_arguments, add_option_argument, float_list,
                                          positive_int, prepare_run, record_config)
from pgdbench.core.training import Settings, fit
from pgdbench.errors import DivergedError
from pgdbench.harness.results import optional_writer
from pgdbench.reporting.tables import table

HELP = "grid-search the learning rate on the validation split"
PAPER_GRID = [0.001, 0.002, 0.01, 0.1, 0.5, 1.0]


def add_arguments(p):
    p.add_argument("--backend", default="numpy")
    add_model_arguments(p)
    add_data_arguments(p)
    p.add_argument("--grid", type=float_list, default=PAPER_GRID, help="comma-separated learning rates")
    p.add_argument("--epochs", type=positive_int, default=2, help="epochs at each rate")
    p.add_argument("--batch-size", type=positive_int, default=128, help="examples per minibatch")
    p.add_argument("--threads", type=positive_int, default=1, help="threads the backend may use")
    add_option_argument(p)
    p.add_argument("--results", metavar="FILE.jsonl", help="append one record per rate to this results file")


def run(args):
    cls, options, dataset, spec = prepare_run(args)
    print(f"tuning {cls.name} on {dataset.summary()}, net {spec.name}, batch {args.batch_size}, {args.epochs} epochs")
    rows = []
    with optional_writer(args.results, "tune", record_config(args)) as writer:  # rank 0 only, under mpiexec
        for lr in args.grid:
            try:
                settings = Settings(args.batch_size, lr, args.threads, args.dtype, args.seed, not args.no_shuffle,
                                    options)
                result = fit(cls, spec, dataset, settings, epochs=args.epochs)
                row = {"lr": lr, "val_accuracy": result.epochs[-1].val_accuracy,
                       "val_loss": result.epochs[-1].val_loss, "status": "ok"}
            except DivergedError:
                row = {"lr": lr, "val_accuracy": None, "val_loss": None, "status": "diverged"}
            rows.append(row)
            print(f"lr {lr:<8g} {row['status']:8s} val acc "
                  f"{'-' if row['val_accuracy'] is None else format(row['val_accuracy'], '.2%')}", flush=True)
            writer.write({"kind": "tune", "backend": cls.name, "net": spec.name, "batch_size": args.batch_size,
                          "epochs": args.epochs, **row})
    good = [r for r in rows if r["status"] == "ok"]
    if not good:
        print("every rate diverged")
        return 1
    best = max(good, key=lambda r: r["val_accuracy"])
    for r in rows:
        r["best"] = "<- best" if r is best else ""
        r["rate"] = f"{r['lr']:g}"
    print(table(rows, [("rate", "learning rate"), ("val_accuracy", "val accuracy"), ("val_loss", "val loss"),
                       ("status", "status"), ("best", "")]))
    print(f"best learning rate: {best['lr']:g} (validation accuracy {best['val_accuracy']:.2%})")
    return 0

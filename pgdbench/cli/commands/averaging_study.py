"""Deprecated alias (kept for one release) of the replica sweep of `pgdbench bench`, with the study's defaults.

Ott's study (*Training Neural Networks in Parallel*): accuracy and training
time against the number of replicas, weights averaged or summed. It is a
grid of the ``averaging`` backend -- use::

    pgdbench bench --backend averaging --threads 1,2,4 -o combine=average,sum --net 784,128,10 \\
                   --dataset mnist --batch-size 16 --lr 0.5 --epochs 1 && pgdbench report results/bench.jsonl

This command runs the same measurements (one replica per thread, combined at
the end of each epoch unless --sync-every says otherwise, a 1-replica run as
the baseline of both rules, several --seeds) and prints the study's table.
Replica counts above the usable CPUs need PGDBENCH_MAX_THREADS and are
labelled *oversubscribed*: their times measure contention, not parallel speed.
"""
from __future__ import annotations

import sys


from pgdbench.cli.commands.common import (add_data_arguments, check_outputs, int_list, load_data, positive_float,
                                          positive_int, record_config, seed_list)
from pgdbench.core import registry
from pgdbench.core.model import resolve_net
from pgdbench.core.protocol import check_threads, max_threads, usable_cpus
from pgdbench.errors import UsageError
from pgdbench.harness.grid import Config, measure
from pgdbench.harness.results import results_writer
from pgdbench.reporting.tables import table
from pgdbench.studies.replicas import study_record, summarise

HELP = "deprecated alias of the replica sweep of bench (Ott's study of averaged replicas); goes in the next release"


def default_replicas() -> list[int]:
    """1, 2, 4, ... up to the thread limit (PGDBENCH_MAX_THREADS, else the usable CPUs)."""
    limit = max_threads()
    out, n = [], 1
    while n <= limit:
        out.append(n)
        n *= 2
    return out


def add_arguments(p):
    p.add_argument("--replicas", type=int_list, help="comma-separated replica counts (default 1, 2, 4, ... "
                                                     "up to the usable CPUs or PGDBENCH_MAX_THREADS)")
    p.add_argument("--combine", default="average,sum", help="comma-separated rules: average, sum (default both)")
    p.add_argument("--sync-every", type=int, default=0,
                   help="combine every K minibatches of each replica (default 0: once per epoch)")
    add_data_arguments(p, default="mnist")
    p.add_argument("--layers", default="784,128,10", help="net widths (default 784,128,10, Ott's net)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--lr", type=positive_float, default=0.5)
    p.add_argument("--seeds", type=seed_list, default=[0],
                   help="comma-separated seeds (initial weights and order); the table shows their mean")
    p.set_defaults(seed=0)  # the data set's split seed (load_data); the runs use --seeds
    p.add_argument("--results", default="results/averaging-study.jsonl", help="results file to append to")


def run(args):
    print("pgdbench averaging-study is deprecated and goes in the next release: use pgdbench bench --backend "
          "averaging --threads N1,N2 -o combine=average,sum (pgdbench report summarises it)", file=sys.stderr)
    check_outputs(results=args.results)
    registry.get_available("averaging")
    combines = [c.strip() for c in args.combine.split(",") if c.strip()]
    for c in combines:
        if c not in ("average", "sum"):
            raise UsageError(f"--combine takes average and/or sum, got {c!r}")
    if args.sync_every < 0:
        raise UsageError(f"--sync-every must be 0 (once per epoch) or positive, got {args.sync_every}")
    replicas = args.replicas or default_replicas()
    for n in replicas:
        check_threads(n, True, "averaging-study")
    dataset = load_data(args)
    spec = resolve_net(None, args.layers, dataset.n_features, dataset.n_classes)
    cpus = usable_cpus()
    print(f"averaging study on {dataset.summary()}\nnet {spec.name}, batch {args.batch_size}, lr {args.lr}, "
          f"{args.epochs} epoch(s), combine every {args.sync_every or 'epoch'}"
          f"{' minibatches' if args.sync_every else ''}, seeds {args.seeds}, {cpus} usable CPUs", flush=True)
    done: list[dict] = []
    with results_writer(args.results, "averaging-study", record_config(args, "seed")) as writer:
        for n in replicas:
            for combine in (["average"] if n == 1 else combines):  # one replica: both rules are the identity
                options = {"replicas": n, "combine": combine, "sync_every": args.sync_every}
                config = Config("averaging", args.layers, args.batch_size, n, args.dtype,
                                tuple(sorted(options.items())))
                for seed in args.seeds:
                    measured = measure(config, dataset, epochs=args.epochs, learning_rate=args.lr, seed=seed)
                    rec = study_record(measured, cpus, layers=list(spec.layers), n_train=len(dataset.X_train))
                    writer.write(rec)
                    done.append(rec)
                    print(f"replicas {n:3d}  {rec['combine']:16s} seed {seed}: " + (
                        f"val acc {rec['val_accuracy']:.2%}, {rec['seconds_per_epoch']:.3f} s/epoch"
                        if rec["status"] == "ok" else f"{rec['status']}: {rec['reason']}"), flush=True)
    rows = summarise(done, combines)
    print(table(rows, [("combine", "combine"), ("replicas", "replicas"), ("examples", "examples/replica"),
                       ("val", "val acc"), ("test", "test acc"), ("tpe", "s/epoch"), ("speedup", "vs 1 replica"),
                       ("note", "note")]))
    print(f"(mean over {len(args.seeds)} seed(s); results appended to {args.results})")
    return 0

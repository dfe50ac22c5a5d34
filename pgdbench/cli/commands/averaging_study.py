"""Seed 003's study: accuracy and training time against the number of replicas, averaging vs summing.

Trains the ``averaging`` backend (n replicas, each on 1/n of every epoch's
examples, combined at the end of each epoch by default) for every n of
--replicas and every rule of --combine, one thread per replica, and prints
validation / test accuracy, time per epoch and the speedup over one replica.
One replica is plain minibatch gradient descent, the baseline of both rules.

Defaults follow seed 003: MNIST (50,000 training digits), a 784-128-10 net,
one epoch, replicas combined once at the end. Replica counts above the usable
CPUs need PGDBENCH_MAX_THREADS and are labelled *oversubscribed*: their times
measure contention, not parallel speed.

Example: pgdbench averaging-study --data-dir ../shared/data/mnist
"""
from __future__ import annotations


from pgdbench.cli.commands.common import (add_data_arguments, int_list, load_data, positive_float, positive_int,
                                          record_config)
from pgdbench.core import registry
from pgdbench.core.model import DTYPES, resolve_net
from pgdbench.core.protocol import check_threads, max_threads, usable_cpus
from pgdbench.core.training import fit
from pgdbench.errors import DivergedError, UsageError
from pgdbench.harness.machine import machine_info
from pgdbench.harness.results import ResultsWriter
from pgdbench.reporting.tables import table
from pgdbench.studies.replicas import summarise

HELP = "seed 003: accuracy and time vs number of weight-averaged replicas (average vs sum)"


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
    p.add_argument("--layers", default="784,128,10", help="net widths (default seed 003's 784,128,10)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--lr", type=positive_float, default=0.5)
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",") if x.strip()], default=[0],
                   help="comma-separated seeds (initial weights and order); the table shows their mean")
    p.set_defaults(seed=0)  # the data set's split seed (load_data); the runs use --seeds
    p.add_argument("--results", default="results/averaging-study.jsonl", help="results file to append to")


def run(args):
    cls = registry.get_available("averaging")
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
    config = record_config(args, "seed")
    done: list[dict] = []
    with ResultsWriter(args.results, "averaging-study", machine_info(), config) as writer:
        for n in replicas:
            for combine in (["average"] if n == 1 else combines):  # one replica: both rules are the identity
                for seed in args.seeds:
                    options = {"replicas": n, "combine": combine, "sync_every": args.sync_every}
                    rec = {"kind": "averaging-study", "replicas": n, "threads": n,
                           "combine": combine if n > 1 else "none (1 replica)", "sync_every": args.sync_every,
                           "seed": seed, "epochs": args.epochs, "batch_size": args.batch_size,
                           "learning_rate": args.lr, "layers": list(spec.layers), "dataset": dataset.name,
                           "dtype": args.dtype, "n_train": len(dataset.X_train),
                           "examples_per_replica": len(dataset.X_train) // n, "oversubscribed": n > cpus}
                    try:
                        result = fit(cls, spec, dataset, epochs=args.epochs, batch_size=args.batch_size,
                                     learning_rate=args.lr, threads=n, dtype=DTYPES[args.dtype], seed=seed,
                                     options=options, warmup_batches=2)
                        times = [e.seconds for e in result.epochs]
                        rec.update(status="ok", seconds_per_epoch=sorted(times)[len(times) // 2],
                                   train_seconds=sum(times), val_accuracy=result.epochs[-1].val_accuracy,
                                   test_accuracy=result.test_accuracy, backend_metadata=result.metadata)
                    except DivergedError as exc:
                        rec.update(status="diverged", reason=str(exc))
                    writer.write(rec)
                    done.append(rec)
                    print(f"replicas {n:3d}  {rec['combine']:16s} seed {seed}: " + (
                        f"val acc {rec['val_accuracy']:.2%}, {rec['seconds_per_epoch']:.3f} s/epoch"
                        if rec["status"] == "ok" else rec["status"]), flush=True)
    rows = summarise(done, combines)
    print(table(rows, [("combine", "combine"), ("replicas", "replicas"), ("examples", "examples/replica"),
                       ("val", "val acc"), ("test", "test acc"), ("tpe", "s/epoch"), ("speedup", "vs 1 replica"),
                       ("note", "note")]))
    print(f"(mean over {len(args.seeds)} seed(s); results appended to {args.results})")
    return 0

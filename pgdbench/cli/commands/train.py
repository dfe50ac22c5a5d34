"""Train one backend and report, per epoch, the validation loss and accuracy, the time per epoch and GFLOP/s.

Example: pgdbench train --backend numpy --net net1h --epochs 1
"""
from __future__ import annotations

import sys

from pgdbench.cli.commands.common import (add_data_arguments, add_model_arguments, add_option_argument, positive_float,
                                          positive_int, prepare_run, record_config, tqdm_progress)
from pgdbench.core.mpi import is_root
from pgdbench.core.training import Settings, fit
from pgdbench.harness.results import optional_writer

HELP = "train one backend, printing time per epoch, GFLOP/s and accuracy"


def add_arguments(p):
    p.add_argument("--backend", default="numpy", help="registered backend name (see pgdbench list)")
    add_model_arguments(p)
    add_data_arguments(p)
    p.add_argument("--epochs", type=positive_int, default=5, help="passes over the training split")
    p.add_argument("--batch-size", type=positive_int, default=32, help="examples per minibatch")
    p.add_argument("--lr", type=positive_float, default=0.25,
                   help="learning rate (default 0.25, good for Net-1h at batch 16-32; see pgdbench tune)")
    p.add_argument("--threads", type=positive_int, default=1, help="threads the backend may use")
    p.add_argument("--max-examples", type=positive_int,
                   help="train and time only this many examples per epoch, for a quick look: the epoch time is "
                        "projected to the whole epoch, and the accuracy is that of a net trained on fewer examples")
    add_option_argument(p)
    p.add_argument("--save", metavar="FILE.npz", help="save the trained parameters (written atomically)")
    p.add_argument("--results", metavar="FILE.jsonl", help="append the run's records to this results file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    cls, options, dataset, spec = prepare_run(args)
    print(f"{dataset.summary()}\nbackend {cls.name} ({cls.parallelism.value}), net {spec.name} "
          f"({spec.n_parameters:,} parameters, {spec.flops_per_example() / 1e6:.2f} MFLOP per example), "
          f"batch {args.batch_size}, lr {args.lr}, threads {args.threads}, {args.dtype}")
    root = is_root()  # under mpiexec only rank 0 saves (the other ranks' stdout is silenced by the CLI)
    bars = tqdm_progress(not args.quiet and sys.stderr.isatty(), cls.name)
    with optional_writer(args.results, "train", record_config(args)) as writer:
        def on_epoch(rec):
            if bars:
                bars.close()
            label = " (projected)" if rec.projected else ""
            print(f"epoch {rec.epoch:3d}  val loss {rec.val_loss:.4f}  val acc {rec.val_accuracy:6.2%}  "
                  f"time/epoch {rec.seconds:8.3f} s{label}  {rec.gflops:7.1f} GFLOP/s", flush=True)
            writer.write({"kind": "epoch", "backend": cls.name, "net": spec.name, **rec.__dict__})

        settings = Settings(args.batch_size, args.lr, args.threads, args.dtype, args.seed, not args.no_shuffle,
                            options)
        try:
            result = fit(cls, spec, dataset, settings, epochs=args.epochs, max_examples=args.max_examples,
                         on_epoch=on_epoch, progress_factory=bars)
        finally:  # an error or Ctrl-C mid-epoch: its message on a clean line too
            if bars:
                bars.close()
        writer.write({"kind": "train", "backend": cls.name, "net": spec.name,
                      "test_accuracy": result.test_accuracy, "transfer_seconds": result.transfer_seconds})
    print(f"transfer {result.transfer_seconds:.3f} s; test accuracy {result.test_accuracy:.2%}")
    if args.max_examples and args.max_examples < len(dataset.X_train):  # a low accuracy is expected, not a fault
        print(f"(--max-examples {args.max_examples}: each epoch trained on {args.max_examples:,} of the "
              f"{len(dataset.X_train):,} training examples, so the accuracy is that of a net that has seen "
              f"fewer examples; the epoch times are projected to the whole epoch)")
    if args.save and root:
        result.params.save(args.save)
        print(f"parameters saved to {args.save}")
    return 0



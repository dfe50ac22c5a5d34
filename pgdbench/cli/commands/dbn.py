"""De Filippo De Grazia et al.'s (*Parallelization of Deep Networks*) experiment: a Deep Belief Network pre-trained
with CD-1, data-parallel over MPI ranks.

One run (`pgdbench dbn`, or `mpiexec -n K pgdbench dbn` for K ranks): the RBMs (hidden layers 500-500-2000 by
default) are trained layer by layer, each layer data-parallel over the ranks as in De Filippo De Grazia et al.'s
(*Parallelization of Deep Networks*) Table 1 (the master splits the data into K shards, every rank trains an epoch
on its shard, the master averages the K updates, applies them and broadcasts the weights); then rank 0 adds an
output layer of 10 and fine-tunes the whole network by backpropagation (sigmoid + MSE, the numpy backend, one
process), stopping on De Filippo De Grazia et al.'s (*Parallelization of Deep Networks*) RMS-error rule. It prints
the reconstruction error and training time of every layer and the classification error; rank 0 appends the records
to --results.

The scaling study (`pgdbench dbn --scaling 1,2,4`): one MPI job per rank count,
spawned with the mpiexec beside this Python; prints total RBM time and
classification error against ranks (runs with more ranks than CPUs labelled
oversubscribed) and the fitted power-law exponent of time against ranks beside
De Filippo De Grazia et al.'s (*Parallelization of Deep Networks*) −0.86.

Examples:
  pgdbench dbn --dataset mnist                                 # the study's run, 1 rank, 50 epochs per layer
  mpiexec -n 2 pgdbench dbn --dataset mnist --stop convergence # 2 ranks, convergence rule
  pgdbench dbn --scaling 1,2 --hidden 64,64,128 --epochs 2 --examples 2000 --dataset mnist-sample   # CI size
"""
from __future__ import annotations

import sys

from pgdbench.cli.commands.common import (add_data_arguments, check_outputs, int_list, load_data, positive_float,
                                          positive_int, record_config, seed)
from pgdbench.core import mpi
from pgdbench.core.model import Parameters
from pgdbench.core.protocol import check_threads, usable_cpus
from pgdbench.errors import UsageError
from pgdbench.harness import mpi_jobs
from pgdbench.harness.machine import machine_info
from pgdbench.harness.results import ResultsWriter, optional_writer
from pgdbench.reporting.tables import table
from pgdbench.studies import dbn
from pgdbench.studies.dbn_scaling import power_law_exponent, scaling_rows

HELP = ("parallel Deep Belief Network: CD-1 RBMs over MPI ranks, fine-tuning, scaling study (De Filippo De Grazia "
        "et al., Parallelization of Deep Networks)")


def add_arguments(p):
    p.add_argument("--hidden", type=int_list, default=[500, 500, 2000], help="hidden widths (default 500,500,2000)")
    add_data_arguments(p, default="mnist")
    p.add_argument("--examples", type=positive_int, help="use only the first N training examples (scale-down)")
    p.add_argument("--epochs", type=positive_int, default=50,
                   help="epochs per RBM layer (with --stop convergence: the most allowed) (default 50)")
    p.add_argument("--batch-size", type=positive_int, default=125, help="CD-1 minibatch per rank (default 125)")
    p.add_argument("--lr", type=positive_float, default=0.1, help="CD-1 learning rate ε (default 0.1)")
    p.add_argument("--stop", choices=["epochs", "convergence"], default="epochs",
                   help="fixed epochs, or stop a layer when its reconstruction error fails to fall by more than "
                        "--tau for three consecutive epochs")
    p.add_argument("--tau", type=positive_float, default=1e-4,
                   help="τ_RE on the mean squared reconstruction error per unit (default 1e-4)")
    p.add_argument("--finetune-epochs", type=int, default=50,
                   help="most fine-tuning epochs (0: skip fine-tuning) (default 50)")
    p.add_argument("--finetune-lr", type=positive_float, default=1.0, help="fine-tuning learning rate (default 1.0)")
    p.add_argument("--finetune-batch-size", type=positive_int, default=125)
    p.add_argument("--tau-rms", type=positive_float, default=1e-4,
                   help="τ_ERMS of the fine-tuning stopping rule on the training RMS error (default 1e-4)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--seed", type=seed, default=0, help="seed of the weights, shards and CD-1 samples (default 0)")
    p.add_argument("--threads", type=positive_int, default=1, help="BLAS threads per rank (default 1)")
    p.add_argument("--scaling", type=int_list, metavar="K1,K2,...",
                   help="scaling study: one MPI job per rank count, spawned with mpiexec")
    p.add_argument("--repeats", type=positive_int, default=1,
                   help="scaling study: runs per rank count with seeds seed, seed+1, ... (the DBN study used 5)")
    p.add_argument("--hostfile", help="scaling study: hostfile for multi-host jobs (mpiexec -f / --hostfile)")
    p.add_argument("--timeout", type=positive_float, default=24 * 3600.0, help="scaling study: seconds per job")
    p.add_argument("--save", metavar="FILE.npz", help="save the fine-tuned (or pre-trained) network's parameters")
    p.add_argument("--results", default="results/dbn.jsonl", help="results file to append to")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def run(args):
    if args.finetune_epochs < 0:
        raise UsageError(f"--finetune-epochs must be ≥ 0, got {args.finetune_epochs}")
    check_outputs(results=args.results, save=args.save)
    return run_scaling(args) if args.scaling else run_one(args)


def run_one(args):
    import numpy as np

    check_threads(args.threads, True, "dbn")
    dtype = np.dtype(args.dtype)
    size = mpi.launched_size()
    comm = mpi.comm() if size > 1 else dbn.Comm1()
    rank = comm.Get_rank()
    root = rank == 0
    dataset = None
    if root:  # Table 1, step 1*: only the master reads the data
        dataset = load_data(args)
        if args.examples:
            n = min(args.examples, len(dataset.X_train))
            dataset.X_train, dataset.y_train = dataset.X_train[:n], dataset.y_train[:n]
        print(f"{dataset.summary()}\nDBN {dataset.n_features}-{'-'.join(map(str, args.hidden))}"
              f"{'-' + str(dataset.n_classes) if args.finetune_epochs else ''}, {size} rank(s), CD-1 batch "
              f"{args.batch_size}, ε {args.lr}, stop: {args.stop}"
              f"{f' (τ {args.tau:g}, at most {args.epochs} epochs)' if args.stop == 'convergence' else f' after {args.epochs} epochs'}",
              flush=True)
    on_host = mpi.local_size(comm) if size > 1 else 1
    oversubscribed = on_host * args.threads > usable_cpus()
    log = (lambda line: print(line, flush=True)) if root and not args.quiet else None
    with optional_writer(args.results, "dbn", record_config(args)) as writer:  # rank 0 writes
        rbms, layers = dbn.pretrain(comm, dataset.X_train if root else None, args.hidden, epochs=args.epochs,
                                    batch_size=args.batch_size, lr=args.lr,
                                    tau=args.tau if args.stop == "convergence" else None, seed=args.seed,
                                    dtype=dtype, threads=args.threads, log=log)
        if not root:
            return 0
        rbm_seconds = sum(r.seconds for r in layers)
        for r in layers:
            rec = {"kind": "dbn_layer", "ranks": size, "layer": r.layer, "n_visible": r.n_visible,
                   "n_hidden": r.n_hidden, "epochs": r.epochs, "seconds": r.seconds, "stopped_by": r.stopped_by,
                   "reconstruction_error": r.reconstruction_error, "reconstruction_errors": r.reconstruction_errors}
            writer.write(rec)
        print(table([{**r.__dict__, "re": r.reconstruction_error} for r in layers],
                    [("layer", "layer"), ("n_visible", "visible"), ("n_hidden", "hidden"), ("epochs", "epochs"),
                     ("stopped_by", "stopped by"), ("re", "reconstruction error"), ("seconds", "seconds")]))
        print(f"total RBM time {rbm_seconds:.2f} s on {size} rank(s)"
              f"{' (oversubscribed)' if oversubscribed else ''}", flush=True)
        summary = {"kind": "dbn", "ranks": size, "oversubscribed": oversubscribed, "threads": args.threads,
                   "hidden": args.hidden, "n_train": len(dataset.X_train), "stop": args.stop,
                   "rbm_seconds": rbm_seconds, "layer_seconds": [r.seconds for r in layers],
                   "layer_epochs": [r.epochs for r in layers],
                   "reconstruction_errors": [r.reconstruction_error for r in layers], "seed": args.seed}
        params = spec = None
        if args.finetune_epochs:
            ft, spec, params = dbn.fine_tune(rbms, dataset, epochs=args.finetune_epochs,
                                             batch_size=args.finetune_batch_size, lr=args.finetune_lr,
                                             tau_rms=args.tau_rms, seed=args.seed, threads=args.threads,
                                             dtype=dtype, log=log)
            print(f"fine-tuning {spec.name}: {ft.epochs} epochs ({ft.stopped_by}), {ft.seconds:.2f} s, "
                  f"RMS error {ft.rms_errors[-1]:.4f}; classification error: validation {ft.val_error:.2%}, "
                  f"test {ft.test_error:.2%}", flush=True)
            summary.update(finetune_epochs=ft.epochs, finetune_seconds=ft.seconds, rms_errors=ft.rms_errors,
                           finetune_stopped_by=ft.stopped_by, val_error=ft.val_error, test_error=ft.test_error)
        writer.write(summary)
        if args.save:
            if params is None:
                params = Parameters([r.W for r in rbms], [r.c for r in rbms])
            params.save(args.save)
            print(f"parameters saved to {args.save}")
    return 0


def child_argv(args, results: str, seed: int) -> list[str]:
    """The arguments of one run of the study (everything but the study's own options)."""
    skip = {"run", "scaling", "repeats", "hostfile", "timeout", "results", "save", "seed", "command", "quiet"}
    argv = ["dbn", "--results", results, "--seed", str(seed), "--quiet"]
    for key, value in vars(args).items():
        if key in skip or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            argv += [flag, ",".join(map(str, value))]
        else:
            argv += [flag, str(value)]
    return argv


def run_scaling(args):
    launcher = mpi_jobs.mpiexec()
    ranks = sorted(set(args.scaling))
    print(f"DBN scaling study over ranks {','.join(map(str, ranks))} ({args.repeats} run(s) each) with {launcher}; "
          f"appending to {args.results}", flush=True)
    runs = []
    with ResultsWriter(args.results, "dbn-scaling", machine_info(), record_config(args)) as writer:
        for k in ranks:
            for rep in range(args.repeats):
                try:
                    got, failure = mpi_jobs.run_job(k, lambda out: child_argv(args, out, args.seed + rep),
                                                    hostfile=args.hostfile, timeout=args.timeout,
                                                    echo=not args.quiet, prefix="pgdbench-dbn-")
                except mpi_jobs.Interrupted as stopped:  # keep what the job finished, then stop here too
                    keep_job(writer, k, rep, stopped.records, stopped.failure)
                    raise
                summary = keep_job(writer, k, rep, got, failure)
                if summary is None:
                    continue
                runs.append(summary)
                print(f"[ranks={k}{', run ' + str(rep + 1) if args.repeats > 1 else ''}] RBM time "
                      f"{summary['rbm_seconds']:.2f} s{' (oversubscribed)' if summary['oversubscribed'] else ''}"
                      f"{', test error ' + format(summary['test_error'], '.2%') if 'test_error' in summary else ''}",
                      flush=True)
        rows = scaling_rows(runs)
        fitted = [r for r in rows if not r["oversubscribed"]]
        exponent = power_law_exponent([r["ranks"] for r in fitted], [r["rbm_seconds"] for r in fitted])
        exponent_all = power_law_exponent([r["ranks"] for r in rows], [r["rbm_seconds"] for r in rows])
        if rows:
            print(table(rows, [("ranks", "ranks"), ("over", "oversubscribed"), ("runs", "runs"),
                               ("rbm_seconds", "RBM seconds"), ("layers", "seconds per layer"),
                               ("epochs", "epochs per layer"), ("speedup", "speedup"), ("err", "test error")]))
            print(f"power-law exponent of RBM time vs ranks: {fmt_exp(exponent)} (runs not oversubscribed), "
                  f"{fmt_exp(exponent_all)} (all runs); De Filippo De Grazia et al. (Parallelization of Deep "
                  f"Networks): -0.86 on 1-40 cores")
        writer.write({"kind": "dbn_scaling", "ranks": [r["ranks"] for r in rows],
                      "rbm_seconds": [r["rbm_seconds"] for r in rows],
                      "test_error": [r.get("test_error") for r in rows],
                      "oversubscribed": [r["oversubscribed"] for r in rows],
                      "exponent": exponent, "exponent_all": exponent_all, "paper_exponent": -0.86})
    return 0


def keep_job(writer, ranks: int, repeat: int, got: list, failure: str):
    """Write one job's records under the study's run id; its summary record, or None (recorded) if it failed."""
    got = [r for r in got if r.get("kind") in ("dbn", "dbn_layer")]
    for rec in got:  # under this run's id; the child job's own id is kept as job_run_id
        child = {key: v for key, v in rec.items() if key != "run_id"}
        writer.write({**child, "job_run_id": rec.get("run_id"), "repeat": repeat})
    summary = next((r for r in got if r["kind"] == "dbn"), None)
    if failure or summary is None:
        reason = failure or "no summary record"
        status = "interrupted" if reason.startswith("interrupted") else "error"
        writer.write({"kind": "dbn", "status": status, "ranks": ranks, "repeat": repeat, "reason": reason})
        print(f"[ranks={ranks}] {'failed: ' if status == 'error' else ''}{reason}", file=sys.stderr, flush=True)
        return None
    return summary


def fmt_exp(value: float) -> str:
    return "-" if value != value else f"{value:+.2f}"

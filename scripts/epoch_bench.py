"""Times whole training epochs of the given backends only: the device check's grid, one process per call.

``pgdbench bench`` adds every backend's serial counterpart to its grid
(``numpy`` at 1 thread, full epochs): on a GPU machine's budget the device
check times ``numpy`` once, on part of an epoch, in a call of its own. This
runs the same measurement (``pgdbench.harness.grid.measure``: two untimed warm-up
batches, then the timed epochs, the median reported) and writes the same
records (a ``bench`` run in a results file that ``pgdbench report`` reads),
in the order net, batch size, backend, so that a budget cut leaves every
backend measured at the sizes done; configurations after ``--deadline`` are
recorded as skipped.

    python scripts/epoch_bench.py --backend cupy-tiled --backend cupy --dataset mnist --data-dir DIR \
        --net net1h --batch-size 32,4096 --epochs 3 --results epochs.jsonl
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from anywhere, installed or not


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", action="append", required=True)
    p.add_argument("--net", action="append", required=True)
    p.add_argument("--batch-size", required=True, help="comma-separated")
    p.add_argument("--dataset", default="mnist-sample")
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-examples", type=int, help="time this many examples per epoch (projected epoch time)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--results", required=True)
    p.add_argument("--deadline", type=float, default=float("inf"), help="UNIX time after which no configuration starts")
    args = p.parse_args(argv)

    from pgdbench.data import load_dataset
    from pgdbench.harness.grid import Config, measure
    from pgdbench.harness.machine import machine_info
    from pgdbench.harness.results import ResultsWriter

    dataset = load_dataset(args.dataset, data_dir=args.data_dir, seed=0, download=False)
    n_train = len(dataset.X_train)
    sizes = [int(b) for b in args.batch_size.split(",")]
    config = {"command": "device-check epochs", **vars(args)}
    with ResultsWriter(args.results, "bench", machine_info(), config) as writer:
        for net in args.net:
            for batch in sizes:
                for backend in args.backend:
                    c = Config(backend, net, batch, 1, "float32")
                    base = {"kind": "bench", "backend": backend, "net": net, "batch_size": batch, "threads": 1,
                            "dtype": "float32", "options": {}, "dataset": dataset.name}
                    if batch > n_train:
                        rec = {**base, "status": "skipped", "reason": f"batch {batch} > {n_train} training examples"}
                    elif time.time() > args.deadline:
                        rec = {**base, "status": "skipped", "reason": "device-check budget spent"}
                    else:
                        rec = measure(c, dataset, epochs=args.epochs, learning_rate=args.lr, seed=0,
                                      max_examples=args.max_examples)
                    writer.write(rec)
                    line = (f"{rec['seconds_per_epoch']:.4f} s/epoch, {rec['gflops']:.1f} GFLOP/s"
                            if rec["status"] == "ok" else f"{rec['status']}: {rec.get('reason', '')}")
                    print(f"{c.label()} on {dataset.name}: {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

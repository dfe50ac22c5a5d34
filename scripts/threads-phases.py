"""Where the time of a `threads` step goes: wall time per phase (each pool task, and the main thread's rest), per
step, median of 7 repeats interleaved over option sets, on random data.

    python scripts/threads-phases.py NET B THREADS "OPTS" "OPTS" ...     (OPTS: k=v,k=v; "" for the defaults)
    python scripts/threads-phases.py net2h 32 2 "gemm=numpy,elementwise=numpy" "" "reduce=rows" "reduce=main"
"""
import statistics
import sys
import time

import numpy as np

from implementations.threads import ThreadsTrainer
from pgdbench.core.model import glorot_uniform, resolve_net

net, B, T = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
variants = [dict(kv.split("=") for kv in v.split(",") if kv) for v in sys.argv[4:]]
spec = resolve_net(net, None, 784, 10)
rng = np.random.default_rng(0)
X = rng.random((8192, 784), dtype=np.float32)
Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 8192)]
trainers = []
for options in variants:
    t = ThreadsTrainer(spec, glorot_uniform(spec, 0, np.float32), dtype=np.float32, threads=T, options=options)
    t.load_data(X, Y)
    t.train_epoch(np.arange(4 * B), B, 0.01)          # warm-up
    trainers.append(t)
steps = max(8, 8192 // B)
per_step = [dict() for _ in variants]
for _ in range(7):
    for k, t in enumerate(trainers):
        calls = []

        def timed_run(task, run=t.pool.run, calls=calls):
            start = time.perf_counter()
            run(task)
            calls.append((task.__name__, time.perf_counter() - start))

        t.pool.run = timed_run
        start = time.perf_counter()
        t.train_epoch(rng.permutation(8192)[:steps * B], B, 0.01)
        total = time.perf_counter() - start
        del t.pool.run
        phases = {}
        for name, seconds in calls:
            phases[name] = phases.get(name, 0.0) + seconds
        phases["main thread (biases, glue)"] = total - sum(phases.values())
        phases["step"] = total
        for name, seconds in phases.items():
            per_step[k].setdefault(name, []).append(seconds / steps * 1e3)
for options, phases in zip(variants, per_step):
    print(f"{net} B={B} T={T} {options or 'defaults'}: "
          + ", ".join(f"{name} {statistics.median(ms):.3f} ms" for name, ms in phases.items()))
for t in trainers:
    t.close()

#!/usr/bin/env python3
"""GFLOP/s of the eight GEMMs of one Net-2h training step (float32, NumPy's OpenBLAS), timed alone and
interleaved with the 2048³ square GEMM that sets the peak: the most a step made only of its GEMMs could reach
(issue 12, docs/cpu-backends.md). Run: scripts/step-gemms.py (about 30 s)."""
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

rng = np.random.default_rng(0)
def shapes(B):  # (m, k, n) of every product of one Net-2h step, forward, backward (deltas), weight gradients
    L = [784, 1024, 1024, 10]
    fwd = [(B, L[i], L[i + 1]) for i in range(3)]
    bwd = [(B, L[i + 1], L[i]) for i in (2, 1)]
    grad = [(L[i], B, L[i + 1]) for i in range(3)]
    return fwd + bwd + grad

def operands(m, k, n):
    return rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32), np.empty((m, n), np.float32)

def step_time(ops):
    t = time.perf_counter()
    for a, b, c in ops:
        np.matmul(a, b, out=c)
    return time.perf_counter() - t

for threads in (1, 2):
    with threadpool_limits(threads):
        sq = operands(2048, 2048, 2048)
        res = {}
        for B in (512, 1024):
            ops = [operands(*s) for s in shapes(B)]
            flops = sum(2 * m * k * n for m, k, n in shapes(B))
            step, square = [], []
            for _ in range(15):  # interleaved: square, step, square, step...
                square.append(2 * 2048**3 / step_time([sq]) / 1e9)
                step.append(flops / min(step_time(ops) for _ in range(3)) / 1e9)
            res[B] = (statistics.median(step), statistics.median(square))
        for B, (s, q) in res.items():
            print(f"threads {threads} Net-2h B={B}: step's GEMMs {s:.0f} GFLOP/s, square 2048^3 {q:.0f} GFLOP/s, ratio {s/q:.2f}")

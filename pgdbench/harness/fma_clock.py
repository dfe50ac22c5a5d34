"""The core's clock, measured: a chain of dependent fused multiply-adds (numba; imported only by the peak).

Each FMA of the chain needs the previous one's result, so the chain advances
one FMA per FMA latency (4 cycles on current x86 cores, 5 on older ones: the
caller says which): cycles = FMAs × latency, and the clock = cycles / time.
The time is the thread's CPU time, so that being descheduled by other
processes does not count. Only contraction is allowed (no reassociation), so
the compiler can neither shorten the chain nor split it.
"""
from __future__ import annotations

import time

from numba import njit


@njit(fastmath={"contract"}, cache=True)
def _chain(n, x, a, b):
    for _ in range(n):
        x = x * a + b
    return x


def clock_ghz(latency: int, repeats: int = 5, fmas: int = 50_000_000) -> float:
    """GHz of the core this thread runs on: the fastest of ``repeats`` chains of ``fmas`` dependent FMAs."""
    _chain(1000, 1.0, 0.999999, 1e-7)   # compile (or load) first
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        _chain(fmas, 1.0, 0.999999, 1e-7)
        best = min(best, time.thread_time() - start)
    return fmas * latency / best / 1e9

"""``hybrid``: Kamra et al.'s (*Parallel Gradient Descent*) future work -- example parallelism and BLAS parallelism
combined.

T_e *example workers* (the ``threads`` backend's Algorithm 5: each worker takes
a contiguous share of the minibatch and computes its summed gradient, the
main thread adds the partial sums) each call BLAS with T_b threads, so that
T_e · T_b = ``threads``. T_e = ``threads`` is the ``threads`` backend;
T_e = 1 is the ``numpy`` backend's Fast Parallel (all parallelism inside the
GEMMs). In between, each GEMM is smaller than the whole batch's but still
large enough to spread over a few cores.

Options:

* ``example_workers`` (T_e; default 0 = auto: the largest divisor of ``threads``
  not above its square root, e.g. 2 → 1×2, 4 → 2×2, 8 → 2×4, 32 → 4×8). A value
  above ``threads`` is capped at ``threads`` (so a sweep's 1-thread baseline is
  always 1×1); after that it must divide ``threads``. The split actually used is
  in the results' ``backend_metadata``.
* ``reduce``: ``parallel`` (default) | ``main``, as in ``threads``.

Which split is best depends on the batch size and the net: find it with a
sweep (comma-separated option values expand into a grid; bench prints the
best split of every point)::

    pgdbench bench --backend hybrid --threads 2 --net net2h --batch-size 64,256,1024 -o example_workers=1,2

Caveat: OpenBLAS sets its thread count per process, not per calling thread.
When T_e > 1 and T_b > 1, the example workers call a threaded BLAS at the same
time; OpenBLAS is safe under that but may serialise the calls on its own
thread pool, which the measurement will show. On this 2-core machine the only
splits are 1×2 and 2×1; T = 4 (2×2) needs PGDBENCH_MAX_THREADS=4 and then
measures oversubscription.
"""
from __future__ import annotations

import math

from implementations.threads import ThreadsTrainer
from pgdbench.core.protocol import Option, Parallelism
from pgdbench.errors import UsageError


def auto_example_workers(threads: int) -> int:
    return max(d for d in range(1, math.isqrt(threads) + 1) if threads % d == 0)


class HybridTrainer(ThreadsTrainer):
    description = "T_e example workers × T_b BLAS threads each (the paper's future work); -o example_workers=N"
    parallelism = Parallelism.BOTH
    serial_counterpart = "numpy"
    options = {"example_workers": Option(0, minimum=0, zero="auto"), **ThreadsTrainer.options}

    def _split_threads(self):
        requested = self.opts["example_workers"]
        workers = min(requested, self.threads) if requested else auto_example_workers(self.threads)
        if self.threads % workers:
            raise UsageError(f"option example_workers={workers} does not divide threads={self.threads}: "
                             f"each of the example workers needs the same number of BLAS threads")
        return workers, self.threads // workers

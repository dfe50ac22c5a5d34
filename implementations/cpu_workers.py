"""Threads for the CPU backends (``numpy``, ``threads``, ``hybrid``, ``averaging``, the MPI ranks).

* :class:`WorkerPool` -- a persistent pool of threads that run one task per
  worker and meet at a barrier: created once, reused for every minibatch,
  shut down by :meth:`WorkerPool.close`.
* :class:`RowBlocks` -- runs an elementwise pass of the training step
  (:class:`pgdbench.core.backprop.Backprop`'s ``elementwise``) on every
  worker's block of rows, when the arrays are large enough for that to pay.
* :func:`split` -- contiguous, nearly equal blocks (sizes differ by at most one).
* :class:`BackpropEvaluation` -- ``loss_and_gradients`` and ``predict`` of a
  backend whose step is one :class:`Backprop` over its ``W``, ``b``.
* :data:`STEP_OPTIONS`, :func:`step_parts` -- the options ``gemm`` and
  ``elementwise`` that every backend built on the shared step takes.
"""
from __future__ import annotations

import threading
from typing import Callable

from pgdbench.core import elementwise, gemm
from pgdbench.core.mpi import share
from pgdbench.core.protocol import Option, validate_batch

#: The options of every backend whose step is :class:`pgdbench.core.backprop.Backprop`: who multiplies the
#: matrices (:mod:`pgdbench.core.gemm`) and who does the elementwise passes (:mod:`pgdbench.core.elementwise`).
STEP_OPTIONS = {"gemm": Option("auto", choices=("auto",) + gemm.NAMES),
                "elementwise": Option("auto", choices=("auto",) + elementwise.NAMES)}


def step_parts(opts: dict, dtype):
    """(GEMM provider, elementwise strategy) of the options, the strategy compiled for ``dtype`` now (never in a
    timed epoch); a one-line UsageError if one is not available here. A subclass that declares options of its own
    instead gets the defaults."""
    provider = gemm.get(opts.get("gemm", "auto"))
    kernels = elementwise.get(opts.get("elementwise", "auto"))
    kernels.warm(dtype)
    return provider, kernels


def step_metadata(provider, kernels) -> dict:
    """What results record about the step's parts: the provider, its library, version and kernel architecture."""
    return {"gemm": provider.info(), "elementwise": kernels.name}

#: An elementwise pass is split over the threads only when each gets at least this many elements:
#: below it, the pool's two barrier crossings (tens of µs) cost more than the split saves.
SPLIT_MIN_ELEMENTS_PER_THREAD = 1 << 15


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """[start, stop) of ``parts`` contiguous blocks covering range(n); the first n % parts get one extra."""
    return [share(n, k, parts) for k in range(parts)]


class WorkerPool:
    """``size`` workers: the calling thread is worker 0, ``size − 1`` helper threads are the others.

    :meth:`run` hands ``task`` to every worker, runs ``task(0)`` itself, and
    returns when all have finished (re-raising the first exception a worker
    raised). The threads are started once, here, and wait on a barrier
    between tasks, so a step costs two barrier crossings and no thread
    creation. With ``size == 1`` no thread is created at all: the 1-thread run
    is plain serial code, which keeps speedups over it honest.
    """

    def __init__(self, size: int, name: str = "pgdbench-worker"):
        self.size = size
        self._task: Callable[[int], None] | None = None
        self._errors: list[BaseException | None] = [None] * size
        self._start = threading.Barrier(size)
        self._done = threading.Barrier(size)
        self._threads = [threading.Thread(target=self._loop, args=(k,), name=f"{name}-{k}", daemon=True)
                         for k in range(1, size)]
        self.closed = False
        for t in self._threads:
            t.start()

    def _loop(self, k: int) -> None:
        while True:
            try:
                self._start.wait()
            except threading.BrokenBarrierError:  # close(): leave
                return
            try:
                self._task(k)
            except BaseException as exc:  # handed to the caller of run()
                self._errors[k] = exc
            try:
                self._done.wait()
            except threading.BrokenBarrierError:
                return

    def run(self, task: Callable[[int], None]) -> None:
        if self.closed:
            raise RuntimeError("the worker pool has been closed")
        if self.size == 1:
            task(0)
            return
        self._task = task
        self._start.wait()
        try:
            task(0)
        finally:
            self._done.wait()
            self._task = None
        errors = [e for e in self._errors if e is not None]
        self._errors = [None] * self.size
        if errors:
            raise errors[0]

    def alive(self) -> int:
        """Helper threads still running (0 after close)."""
        return sum(t.is_alive() for t in self._threads)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # breaking the barriers wakes every helper wherever it waits; each then returns
        self._start.abort()
        self._done.abort()
        for t in self._threads:
            t.join(timeout=10)


class RowBlocks:
    """Elementwise passes split over ``threads`` threads in blocks of rows (NumPy releases the GIL in ufunc loops).

    ``rows(fn, arrays, *shared)`` runs ``fn(*arrays, *shared)`` -- on each
    worker's block of the arrays' rows when every worker gets at least
    :data:`SPLIT_MIN_ELEMENTS_PER_THREAD` elements, else in the calling thread.
    With one thread there is no pool at all. It pays only when OpenBLAS's
    threads sleep soon after a GEMM (see :mod:`pgdbench.harness.openblas_env`).
    """

    def __init__(self, threads: int, name: str):
        self.threads = threads
        self.pool = WorkerPool(threads, name) if threads > 1 else None

    def __call__(self, fn, arrays, *shared) -> None:
        if self.pool is None or arrays[0].size < SPLIT_MIN_ELEMENTS_PER_THREAD * self.threads:
            fn(*arrays, *shared)
            return
        blocks = split(len(arrays[0]), self.threads)
        self.pool.run(lambda k: fn(*(a[blocks[k][0]:blocks[k][1]] for a in arrays), *shared))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


class BackpropEvaluation:
    """``loss_and_gradients`` and ``predict`` (the checks and evaluation, off the clock) of a backend whose step
    is ``self.backprop`` (a :class:`pgdbench.core.backprop.Backprop`) over ``self.W``, ``self.b``, with BLAS on
    the trainer's threads. Put it before :class:`pgdbench.core.protocol.Trainer` among the bases."""

    def loss_and_gradients(self, X, Y):
        validate_batch(X, Y, self.spec)
        with self.backprop.gemm.limit(self.threads):
            return self.backprop.loss_and_gradients(self.W, self.b, X, Y)

    def predict(self, X):
        with self.backprop.gemm.limit(self.threads):
            return self.backprop.predict(self.W, self.b, X)

"""``mpi-averaging``: De Filippo De Grazia et al.'s (*Parallelization of Deep Networks*) parallel scheme applied to
the MLP (also Ott's (*Training Neural Networks in Parallel*) replicas, across processes).

Each epoch, the core's example order is cut into K contiguous shards, one per rank (sizes differ by at most one).
Every rank runs ordinary minibatch GD on its own shard with its own copy of the parameters; every ``sync_every``
minibatches (by default once, at the end of the epoch, as in De Filippo De Grazia et al., *Parallelization of Deep
Networks*) the ranks average their parameters with one in-place ``Allreduce`` of a single flat buffer and continue
from the average. Averaging the parameters is the same as the master's "apply the mean of the K updates and
broadcast" of De Filippo De Grazia et al.'s (*Parallelization of Deep Networks*) Table 1, since all ranks started
the period from the same point; an Allreduce does the gather, the mean and the broadcast in one collective.

With one rank this is exactly minibatch GD (the average of one copy is the
copy), which is what the conformance kit checks (it runs in one process). With
K ranks it is a different algorithm: each update sees B examples instead of
K·B, a rank sees only 1/K of the data between averagings, and the result
depends on K. Communication is once per period instead of once per minibatch.
"""
from __future__ import annotations

import numpy as np
from implementations.cpu_workers import STEP_OPTIONS, BackpropEvaluation, RowBlocks, step_metadata, step_parts
from implementations.mpi_allreduce import mpi_library_loads, mpi_metadata
from pgdbench.core import mpi
from pgdbench.core.backprop import Backprop
from pgdbench.core.model import batch_bounds
from pgdbench.core.mpi import flat_views
from pgdbench.core.protocol import Option, Parallelism, Trainer


class MpiAveragingTrainer(BackpropEvaluation, Trainer):
    description = ("MPI ranks train on their own shards; parameters averaged every epoch (the scheme of "
                   "De Filippo De Grazia et al., Parallelization of Deep Networks)")
    parallelism = Parallelism.PROCESSES
    device = "cluster"
    serial_counterpart = "numpy"
    requires = ("mpi4py",)
    options = {"sync_every": Option(0, minimum=0, zero="once per epoch"),   # minibatches between averagings
               **STEP_OPTIONS}
    reference_options = {}       # exact minibatch GD with one rank (the kit's single process)

    @classmethod
    def availability(cls):
        avail = super().availability()
        return mpi_library_loads() if avail else avail

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        mpi.install_abort_hook()
        self.comm = mpi.comm()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # the parameters live in one flat buffer so that averaging them is one collective
        self._flat, views = flat_views(spec.shapes + [(n,) for n in spec.layers[1:]], self.dtype)
        for dst, src in zip(views, params.weights + params.biases):
            dst[...] = src
        self.W, self.b = views[:len(spec.shapes)], views[len(spec.shapes):]
        if self.size > 1:
            self.comm.Bcast(self._flat, root=0)  # every rank starts from rank 0's parameters
        self.rows = RowBlocks(self.threads, "pgdbench-mpi-averaging")
        self.gemm, self.kernels = step_parts(self.opts, self.dtype)
        self.backprop = Backprop(spec, self.dtype, elementwise=self.rows, gemm=self.gemm, kernels=self.kernels)

    def _average(self) -> None:
        if self.size > 1:
            from mpi4py import MPI
            self.comm.Allreduce(MPI.IN_PLACE, self._flat, op=MPI.SUM)
            self._flat /= self.size

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        lo, hi = mpi.share(len(order), self.rank, self.size)
        mine = batch_bounds(hi - lo, batch_size)
        # every rank must average the same number of times: count periods on the largest shard
        longest = len(batch_bounds(-(-len(order) // self.size), batch_size))
        period = self.opts["sync_every"] or longest
        self.backprop.ensure(batch_size)
        with self.gemm.limit(self.threads):
            for j in range(longest):
                if j < len(mine):
                    start, stop = mine[j]
                    self.backprop.step(self.W, self.b, self.X, self.Y, order[lo + start:lo + stop], learning_rate)
                if (j + 1) % period == 0 or j == longest - 1:
                    self._average()
                if progress is not None and j < len(mine):
                    progress((mine[j][1] - mine[j][0]) * self.size)

    def set_weights(self, params):
        super().set_weights(params)
        if self.size > 1:
            self.comm.Bcast(self._flat, root=0)

    def metadata(self):
        return {**mpi_metadata(self.comm, self.threads), "sync_every": self.opts["sync_every"],
                **step_metadata(self.gemm, self.kernels)}

    def close(self):
        self.rows.close()

"""``averaging``: Ott's (*Training Neural Networks in Parallel*) replica parallelism -- n copies of the net trained
apart, then combined.

Every epoch the order of examples is cut into n contiguous shares (sizes
differ by at most one). Replica r starts from the common parameters and walks
its share in minibatches of B, updating its *own* copy of the weights by plain
minibatch gradient descent. Every ``sync_every`` minibatches (0 = once, at the
end of the epoch) the replicas stop and are combined into one net, which
every replica then continues from:

* ``combine=average``: θ ← (1/n) Σ_r θ_r   (Ott, *Training Neural Networks in Parallel*, equation 1)
* ``combine=sum``:     θ ← Σ_r θ_r         (Ott, *Training Neural Networks in Parallel*, equation 2, "about ten
  points more accuracy")

Weights and biases are combined alike. The replicas run on a persistent pool
of min(n, threads) threads (replica r on thread r mod threads), each with
BLAS pinned to threads // min(n, threads) threads. A combination always closes
the epoch, so after :meth:`train_epoch` all replicas hold the same parameters
and those are what :meth:`get_weights`, :meth:`predict` and
:meth:`loss_and_gradients` use.

Options: ``replicas`` (n; 0 = as many as ``threads``), ``combine``
(``average`` | ``sum``), ``sync_every`` (k minibatches; 0 = once per epoch).

How it differs from minibatch gradient descent (what the shared checks cannot hold it to):

* with ``replicas=1`` it *is* minibatch GD, step for step, and the shared checks
  run it so (``reference_options``) against the float64 reference;
* with n > 1 each replica's step uses the gradient of its own minibatch at its
  own parameters. An epoch makes ⌈N/(nB)⌉ sequential steps instead of ⌈N/B⌉,
  each replica sees 1/n of the data, and the result depends on n, on
  ``sync_every`` and on how the order is cut. There is no reference beyond the
  definitions above, which ``tests/test_averaging.py`` checks by hand on small
  cases. One special case is exact: with ``sync_every=1`` and
  ``combine=average`` every round starts all replicas from the same θ, so the
  average of θ − η g_r is θ − η · mean_r g_r, one step of minibatch GD on the
  n·B examples of the round (when the replicas' minibatches have equal size);
  so it is minibatch GD with batches of n·B drawn from the n shares;
* the last round of an epoch may find some replicas already out of minibatches
  (shares differ by one example); those contribute their parameters unchanged;
* ``combine=sum`` multiplies the parameters by about n at every combination, so
  with several combinations per run the weights grow geometrically; Ott, *Training Neural Networks in Parallel*
  combined once, at the end of training (the study's default: one epoch,
  ``sync_every=0``).
"""
from __future__ import annotations

import numpy as np
from implementations.cpu_workers import STEP_OPTIONS, WorkerPool, split, step_metadata, step_parts
from pgdbench.core.backprop import Backprop
from pgdbench.core.model import Parameters, batch_bounds
from pgdbench.core.protocol import Option, Parallelism, Trainer, validate_batch
from pgdbench.errors import UsageError


class Replica:
    """One copy of the parameters, its step buffers, and the minibatches of its share of an epoch."""

    def __init__(self, params: Parameters, spec, dtype, gemm, kernels):
        own = params.copy(dtype)
        self.W, self.b = own.weights, own.biases
        self.backprop = Backprop(spec, dtype, gemm=gemm, kernels=kernels)
        self.batches: list[np.ndarray] = []

    def step(self, X, Y, idx, learning_rate: float) -> None:
        self.backprop.step(self.W, self.b, X, Y, idx, learning_rate)


class AveragingTrainer(Trainer):
    description = ("n replicas train on 1/n of the data each, weights averaged (or summed) every k batches "
                   "(Ott, Training Neural Networks in Parallel)")
    parallelism = Parallelism.REPLICAS
    serial_counterpart = "numpy"
    options = {"replicas": Option(0, minimum=0, zero="as many as threads"),
               "combine": Option("average", choices=("average", "sum")),
               "sync_every": Option(0, minimum=0, zero="once per epoch"),   # minibatches between combinations
               **STEP_OPTIONS}
    reference_options = {"replicas": 1}

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        self.n_replicas = self.opts["replicas"] or self.threads
        self.pool_size = min(self.n_replicas, self.threads)
        self.blas_threads = max(1, self.threads // self.pool_size)
        self.gemm, self.kernels = step_parts(self.opts, self.dtype)
        self.replicas = [Replica(params, spec, self.dtype, self.gemm, self.kernels) for _ in range(self.n_replicas)]
        self.pool = WorkerPool(self.pool_size, name="pgdbench-averaging")

    # -- training ----------------------------------------------------------------
    def _run_round(self, t: int) -> None:
        """Thread t advances its replicas by the minibatches of the current round."""
        first, last = self._round
        self.gemm.local_threads(self.blas_threads)
        for replica in self.replicas[t::self.pool_size]:
            for idx in replica.batches[first:last]:
                replica.step(self.X, self.Y, idx, self._lr)

    def _combine(self) -> None:
        """Replica 0 becomes the average (or sum) of all; the others copy it."""
        if self.n_replicas == 1:
            return
        for layer in range(len(self.replicas[0].W)):
            for arrays in ([r.W[layer] for r in self.replicas], [r.b[layer] for r in self.replicas]):
                total = arrays[0]
                for a in arrays[1:]:
                    total += a
                if self.opts["combine"] == "average":
                    total /= self.n_replicas
                for a in arrays[1:]:
                    a[...] = total

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        n = self.n_replicas
        if len(order) < n:
            raise UsageError(f"averaging: {n} replicas need at least {n} examples per epoch, got {len(order)}")
        most = 0
        for replica, (s, e) in zip(self.replicas, split(len(order), n)):
            share = order[s:e]
            replica.batches = [share[a:b] for a, b in batch_bounds(len(share), batch_size)]
            most = max(most, len(replica.batches))
        self._lr = learning_rate
        k = self.opts["sync_every"] or most
        for replica in self.replicas:
            replica.backprop.ensure(batch_size)
        with self.gemm.limit(self.blas_threads):
            for first in range(0, most, k):
                self._round = (first, first + k)
                self.pool.run(self._run_round)
                self._combine()
                if progress is not None:
                    progress(sum(len(i) for r in self.replicas for i in r.batches[first:first + k]))

    # -- state, checks, evaluation: the combined net (replica 0) -------------------
    def get_weights(self):
        master = self.replicas[0]
        return Parameters([w.copy() for w in master.W], [b.copy() for b in master.b])

    def set_weights(self, params):
        params.check_against(self.spec)
        for r in self.replicas:
            for dst, src in zip(r.W + r.b, params.weights + params.biases):
                dst[...] = src

    def loss_and_gradients(self, X, Y):
        validate_batch(X, Y, self.spec)
        master = self.replicas[0]
        with self.gemm.limit(self.threads):
            return master.backprop.loss_and_gradients(master.W, master.b, X, Y)

    def predict(self, X):
        master = self.replicas[0]
        with self.gemm.limit(self.threads):
            return master.backprop.predict(master.W, master.b, X)

    def metadata(self):
        return {"replicas": self.n_replicas, "combine": self.opts["combine"], "sync_every": self.opts["sync_every"],
                "replica_threads": self.pool_size, "blas_threads": self.blas_threads,
                **step_metadata(self.gemm, self.kernels)}

    def close(self):
        self.pool.close()

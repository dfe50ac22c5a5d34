"""De Filippo De Grazia et al., *Parallelization of Deep Networks*: a Deep Belief Network pre-trained layer by
layer with CD-1, data-parallel over MPI ranks.

The algorithm is the one of De Filippo De Grazia et al.'s (*Parallelization of Deep Networks*) Table 1, for every
hidden layer in turn:

1*. the master (rank 0) initialises the RBM's weights and splits the training
    data at random into k non-overlapping shards of similar size;
2.  it sends every rank its shard (``Scatterv``) and the weights (``Bcast``);
3.  every rank trains its copy of the RBM for one epoch on its own shard
    (minibatches of 125, CD-1 updates applied to the local copy), which gives
    a candidate update ΔW_j = W_j − W;
4.  the master collects the updates (``Reduce`` with a sum);
5*. and applies their mean, W ← W + (1/k) Σ_j ΔW_j;
6.  and broadcasts the new weights (``Bcast``); back to 3 unless the layer
    has reached its epoch budget or the convergence rule fires;
8.  every rank then turns its shard into the next layer's data (hidden
    probabilities), so the shards never travel again.

Only the first layer's data and one weight vector per epoch cross the network.
With one rank the scheme is ordinary sequential CD-1 training.

The CD-1 variant (that of Hinton & Salakhutdinov's rbm.m, without momentum and
weight decay, which De Filippo De Grazia et al., *Parallelization of Deep Networks* does not mention):

* positive phase  h⁺ = σ(v⁺W + c), probabilities;
* binary hidden states s = [u < h⁺] with u ~ U(0, 1) (the stochastic step);
* negative visible v⁻ = σ(sWᵀ + b), probabilities (not sampled);
* negative hidden  h⁻ = σ(v⁻W + c), probabilities;
* ΔW = (ε/B)(v⁺ᵀh⁺ − v⁻ᵀh⁻), Δb = (ε/B)Σ(v⁺ − v⁻), Δc = (ε/B)Σ(h⁺ − h⁻),
  i.e. the paper's Δw_ij = ε(v_i⁺h_j⁺ − v_i⁻h_j⁻) averaged
  over the minibatch, with the probabilities standing in for the states in the statistics;
* the reconstruction error of a minibatch is Σ(v⁺ − v⁻)²; the epoch's error
  RE is its sum over the epoch divided by (examples × visible units), the mean
  squared error per unit, so that one τ fits every layer. It is accumulated
  during the epoch (with the weights of the moment, as rbm.m prints it).

Weights start as N(0, 0.1²) and biases at zero (as in rbm.m). The next layer's
data are the hidden probabilities.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from pgdbench.core import registry
from pgdbench.core.model import NetSpec, Parameters, epoch_order, glorot_uniform, sigmoid_
from pgdbench.core.mpi import flat_views, share
from pgdbench.core.training import accuracy
from pgdbench.errors import DivergedError, UsageError


def converged(errors: Sequence[float], tau: float, patience: int = 3) -> bool:
    """De Filippo De Grazia et al.'s (*Parallelization of Deep Networks*) stopping rule: the error failed to fall
    by more than ``tau`` for ``patience`` consecutive epochs.

    ``errors`` is the history, one value per epoch; epoch i "fails" when
    errors[i-1] − errors[i] ≤ tau (a rise fails too).
    """
    if len(errors) < patience + 1:
        return False
    return all(errors[i - 1] - errors[i] <= tau for i in range(len(errors) - patience, len(errors)))


class RBM:
    """A binary RBM whose weights W (n_visible × n_hidden), visible biases b and hidden biases c share one flat
    buffer."""

    def __init__(self, n_visible: int, n_hidden: int, dtype=np.float32):
        self.flat, (self.W, self.b, self.c) = flat_views([(n_visible, n_hidden), (n_visible,), (n_hidden,)], dtype)

    @classmethod
    def random(cls, n_visible: int, n_hidden: int, seed, dtype=np.float32) -> "RBM":
        rbm = cls(n_visible, n_hidden, dtype)
        rbm.W[...] = 0.1 * np.random.default_rng(seed).standard_normal((n_visible, n_hidden))
        return rbm

    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    def hidden_probabilities(self, V: np.ndarray, chunk: int = 4096) -> np.ndarray:
        out = np.empty((len(V), self.n_hidden), self.W.dtype)
        for s in range(0, len(V), chunk):
            h = out[s:s + chunk]
            np.matmul(V[s:s + chunk], self.W, out=h)
            sigmoid_(h, self.c)
        return out

    def reconstruction_error(self, V: np.ndarray) -> float:
        """Mean squared error per unit of the deterministic reconstruction σ(σ(VW+c)Wᵀ+b) (for reports)."""
        H = self.hidden_probabilities(V)
        R = sigmoid_(H @ self.W.T, self.b)
        return float(np.mean((R.astype(np.float64) - V) ** 2))


class CD1:
    """CD-1 on one RBM with buffers for minibatches of up to ``batch`` rows: a step allocates nothing.

    The two correlation terms are one GEMM: with V = [v⁺; v⁻] and
    H = [h⁺; −h⁻] stacked by rows, VᵀH = v⁺ᵀh⁺ − v⁻ᵀh⁻.
    """

    def __init__(self, rbm: RBM, batch: int, rng: np.random.Generator):
        self.rbm, self.rng = rbm, rng
        dt = rbm.W.dtype
        self.V = np.empty((2 * batch, rbm.n_visible), dt)
        self.H = np.empty((2 * batch, rbm.n_hidden), dt)
        self.S = np.empty((batch, rbm.n_hidden), dt)     # uniforms, then binary states
        self.dW = np.empty_like(rbm.W)
        self.db, self.db_neg = np.empty_like(rbm.b), np.empty_like(rbm.b)
        self.dc, self.dc_neg = np.empty_like(rbm.c), np.empty_like(rbm.c)
        self.capacity = batch

    def step(self, v0: np.ndarray, lr: float, uniforms: Optional[np.ndarray] = None) -> float:
        """One CD-1 update from the rows of ``v0``; returns the summed squared reconstruction error.

        ``uniforms`` (shape (B, n_hidden)) replaces the random numbers, for tests.
        """
        r, m = self.rbm, len(v0)
        if m > self.capacity:
            raise UsageError(f"minibatch of {m} rows exceeds the CD-1 buffers ({self.capacity})")
        vp, vn = self.V[:m], self.V[m:2 * m]
        hp, hn = self.H[:m], self.H[m:2 * m]
        s = self.S[:m]
        vp[...] = v0
        np.matmul(vp, r.W, out=hp)                # positive phase
        sigmoid_(hp, r.c)
        if uniforms is None:
            self.rng.random(out=s, dtype=s.dtype)
        else:
            s[...] = uniforms
        np.less(s, hp, out=s)                     # binary hidden states (bool → 0/1 in place)
        np.matmul(s, r.W.T, out=vn)               # negative phase: probabilities of the visible units
        sigmoid_(vn, r.b)
        np.matmul(vn, r.W, out=hn)
        sigmoid_(hn, r.c)
        scale = lr / m
        np.add.reduce(vp, axis=0, out=self.db)   # Σv⁺ − Σv⁻, before v⁻ is overwritten below
        np.add.reduce(vn, axis=0, out=self.db_neg)
        self.db -= self.db_neg
        np.add.reduce(hp, axis=0, out=self.dc)
        np.add.reduce(hn, axis=0, out=self.dc_neg)
        self.dc -= self.dc_neg
        hn *= -1
        np.matmul(self.V[:2 * m].T, self.H[:2 * m], out=self.dW)   # v⁺ᵀh⁺ − v⁻ᵀh⁻ in one GEMM
        np.subtract(vp, vn, out=vn)               # v⁻ is no longer needed: reuse it for the error
        err = float(np.vdot(vn, vn))
        self.dW *= scale
        self.db *= scale
        self.dc *= scale
        r.W += self.dW
        r.b += self.db
        r.c += self.dc
        return err


@dataclass
class LayerReport:
    layer: int
    n_visible: int
    n_hidden: int
    epochs: int
    seconds: float
    reconstruction_errors: list = field(default_factory=list)
    stopped_by: str = "epochs"

    @property
    def reconstruction_error(self) -> float:
        return self.reconstruction_errors[-1] if self.reconstruction_errors else float("nan")


class Comm1:
    """The few calls of an MPI communicator a 1-rank job needs, so one rank needs no MPI at all."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def Barrier(self):
        pass

    def bcast(self, value, root=0):
        return value


def scatter_shards(comm, X: Optional[np.ndarray], seed: int, dtype) -> np.ndarray:
    """Steps 1*-2: the master permutes the examples at random and sends rank j its j-th contiguous part."""

    rank, size = comm.Get_rank(), comm.Get_size()
    if rank == 0:
        X = np.asarray(X, dtype)[np.random.default_rng([seed, 4004]).permutation(len(X))]
        shape = X.shape
    shape = comm.bcast(shape if rank == 0 else None, root=0)
    n, d = shape
    if n < size:
        raise UsageError(f"{n} training examples cannot be split over {size} ranks")
    bounds = [share(n, r, size) for r in range(size)]
    counts = [hi - lo for lo, hi in bounds]
    mine = np.empty((counts[rank], d), dtype)
    if size == 1:
        mine[...] = X
        return mine
    from mpi4py import MPI
    displs = [lo * d for lo, _ in bounds]
    send = [X, [c * d for c in counts], displs, MPI.FLOAT if np.dtype(dtype) == np.float32 else MPI.DOUBLE] \
        if rank == 0 else None
    comm.Scatterv(send, mine, root=0)
    return mine


def train_rbm(comm, shard: np.ndarray, n_hidden: int, *, layer: int, epochs: int, batch_size: int, lr: float,
              tau: Optional[float], seed: int, log=None) -> tuple[RBM, LayerReport]:
    """Steps 3-6 for one layer; returns the RBM (identical on every rank) and the layer's report."""
    rank, size = comm.Get_rank(), comm.Get_size()
    dtype = shard.dtype
    rbm = RBM.random(shard.shape[1], n_hidden, [seed, layer, 4], dtype) if rank == 0 \
        else RBM(shard.shape[1], n_hidden, dtype)
    if size > 1:
        comm.Bcast(rbm.flat, root=0)
        from mpi4py import MPI
    start = np.empty_like(rbm.flat)      # W at the start of the epoch (the common learner)
    total = np.empty_like(rbm.flat)      # Σ_j ΔW_j, on the master
    rng = np.random.default_rng([seed, layer, rank, 5])
    cd = CD1(rbm, batch_size, rng)
    x = np.empty((batch_size, shard.shape[1]), dtype)
    sums = np.zeros(2)                   # (Σ squared error, examples) of the epoch
    report = LayerReport(layer, shard.shape[1], n_hidden, 0, 0.0)
    comm.Barrier()
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        start[...] = rbm.flat
        order = rng.permutation(len(shard))
        err = 0.0
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            v = x[:len(idx)]
            np.take(shard, idx, axis=0, out=v)
            err += cd.step(v, lr)
        if size > 1:
            rbm.flat -= start                                    # ΔW_j
            comm.Reduce(rbm.flat, total, op=MPI.SUM, root=0)    # step 4
            if rank == 0:
                total *= 1.0 / size                              # step 5*: the mean update
                start += total
            comm.Bcast(start, root=0)                            # step 6
            rbm.flat[...] = start
        sums[...] = (err, len(shard))
        if size > 1:                                             # every rank needs RE for the stopping rule
            comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        report.reconstruction_errors.append(float(sums[0] / (sums[1] * shard.shape[1])))
        report.epochs = epoch
        if log:
            log(f"  layer {layer} epoch {epoch:3d}  reconstruction error {report.reconstruction_errors[-1]:.5f}  "
                f"{time.perf_counter() - t0:8.1f} s")
        if tau is not None and converged(report.reconstruction_errors, tau):
            report.stopped_by = "convergence"
            break
    comm.Barrier()
    report.seconds = time.perf_counter() - t0
    return rbm, report


def pretrain(comm, X: Optional[np.ndarray], hidden: Sequence[int], *, epochs: int = 50, batch_size: int = 125,
             lr: float = 0.1, tau: Optional[float] = None, seed: int = 0, dtype=np.float32, threads: int = 1,
             log=None) -> tuple[list[RBM], list[LayerReport]]:
    """The whole of Table 1: every layer in turn, every layer data-parallel over the ranks of ``comm``.

    ``X`` (the training inputs) is needed on rank 0 only. ``threads``: BLAS
    threads per rank (set for the duration of the call: an unlimited OpenBLAS
    on a busy machine spins its threads against each other and runs the small
    GEMMs of CD-1 dozens of times slower).
    """
    from threadpoolctl import threadpool_limits

    if batch_size <= 0 or epochs <= 0 or not lr > 0:
        raise UsageError("batch size, epochs and learning rate must be positive")
    shard = scatter_shards(comm, X, seed, dtype)
    rbms, reports = [], []
    with threadpool_limits(limits=threads, user_api="blas"):
        for layer, n_hidden in enumerate(hidden, 1):
            rbm, report = train_rbm(comm, shard, n_hidden, layer=layer, epochs=epochs, batch_size=batch_size, lr=lr,
                                    tau=tau, seed=seed, log=log)
            rbms.append(rbm)
            reports.append(report)
            if layer < len(hidden):
                shard = rbm.hidden_probabilities(shard)          # step 8: stays on this rank
    return rbms, reports


def stack_parameters(rbms: Sequence[RBM], n_outputs: int, seed: int, dtype):
    """The MLP input → hidden layers → n_outputs, hidden layers from the RBMs, the output layer Glorot-initialised."""

    spec = NetSpec((rbms[0].n_visible, *[r.n_hidden for r in rbms], n_outputs))
    top = glorot_uniform(NetSpec((rbms[-1].n_hidden, n_outputs)), seed, dtype)
    params = Parameters([r.W.astype(dtype) for r in rbms] + top.weights, [r.c.astype(dtype) for r in rbms] + top.biases)
    return spec, params


@dataclass
class FineTuneReport:
    epochs: int
    seconds: float
    rms_errors: list
    stopped_by: str
    val_error: float
    test_error: float


def fine_tune(rbms, dataset, *, epochs: int = 50, batch_size: int = 125, lr: float = 1.0,
              tau_rms: Optional[float] = 1e-4, seed: int = 0, threads: int = 1, dtype=np.float32, log=None):
    """Backpropagation on the whole stack plus an output layer of 10 (single process, the numpy backend).

    Sigmoid outputs and the MSE loss, like every other net of the suite. After
    every epoch the RMS error over all training patterns is computed; training
    stops when it fails to fall by more than ``tau_rms`` for three consecutive
    epochs (De Filippo De Grazia et al.'s (*Parallelization of Deep Networks*) rule) or after ``epochs``.
    """

    spec, params = stack_parameters(rbms, dataset.n_classes, seed, dtype)
    X = dataset.X_train.astype(dtype, copy=False)
    Y = dataset.one_hot(dataset.y_train, dtype)
    rms, stopped = [], "epochs"
    with registry.get("numpy")(spec, params, dtype=dtype, threads=threads) as trainer:
        trainer.load_data(X, Y)
        t0 = time.perf_counter()
        for epoch in range(1, epochs + 1):
            trainer.train_epoch(epoch_order(len(X), seed, epoch), min(batch_size, len(X)), lr)
            out = trainer.predict(X)
            rms.append(math.sqrt(float(np.mean((out.astype(np.float64) - Y) ** 2))))
            if not math.isfinite(rms[-1]):
                raise DivergedError(f"fine-tuning diverged in epoch {epoch} (learning rate {lr} too large?)")
            if log:
                log(f"  fine-tune epoch {epoch:3d}  RMS error {rms[-1]:.5f}")
            if tau_rms is not None and converged(rms, tau_rms):
                stopped = "convergence"
                break
        seconds = time.perf_counter() - t0
        val = 1 - accuracy(trainer.predict(dataset.X_val.astype(dtype)), dataset.y_val) if len(dataset.y_val) \
            else float("nan")
        test = 1 - accuracy(trainer.predict(dataset.X_test.astype(dtype)), dataset.y_test)
        final = trainer.get_weights()
    return FineTuneReport(len(rms), seconds, rms, stopped, val, test), spec, final

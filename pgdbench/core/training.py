"""Running a backend: the loop every command shares (train, bench, tune, tta).

The core owns the clock and the order of examples; the backend owns the
arithmetic. Evaluation (validation loss and accuracy) is always done off the
clock, after the epoch's time has been taken.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from pgdbench.core.model import NetSpec, Parameters, epoch_order, glorot_uniform
from pgdbench.core.protocol import Trainer
from pgdbench.data.dataset import Dataset
from pgdbench.errors import DivergedError, UsageError


@dataclass
class EpochRecord:
    epoch: int
    seconds: float            # wall time of train_epoch (projected to the full epoch if `projected`)
    examples: int             # examples actually processed in that time
    gflops: float             # measured rate: FLOPs of the processed examples / seconds
    val_loss: float
    val_accuracy: float
    projected: bool = False   # True if `seconds` is extrapolated from `examples` < epoch size
    cumulative_seconds: float = 0.0
    test_accuracy: float = float("nan")  # only with fit(..., test_every_epoch=True); off the clock too


@dataclass
class RunResult:
    backend: str
    spec: NetSpec
    batch_size: int
    learning_rate: float
    threads: int
    dtype: str
    transfer_seconds: float
    epochs: list[EpochRecord] = field(default_factory=list)
    test_accuracy: float = float("nan")
    params: Optional[Parameters] = None
    diverged: bool = False
    metadata: dict = field(default_factory=dict)


def check_run_arguments(dataset: Dataset, batch_size, learning_rate, epochs) -> None:
    n = len(dataset.X_train)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise UsageError(f"batch size must be a positive integer, got {batch_size!r}")
    if batch_size > n:
        raise UsageError(f"batch size {batch_size} is larger than the {n} training examples of {dataset.name}")
    if not isinstance(learning_rate, (int, float)) or not math.isfinite(learning_rate) or learning_rate <= 0:
        raise UsageError(f"learning rate must be a positive finite number, got {learning_rate!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs <= 0:
        raise UsageError(f"epochs must be a positive integer, got {epochs!r}")


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(outputs, axis=1) == labels)) if len(labels) else float("nan")


def mse_loss(outputs: np.ndarray, targets: np.ndarray) -> float:
    return float(0.5 * np.sum((outputs.astype(np.float64) - targets) ** 2) / len(outputs))


def evaluate(trainer: Trainer, X: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[float, float]:
    """(loss, accuracy) of the trainer's current parameters on (X, y)."""
    if len(X) == 0:
        return float("nan"), float("nan")
    out = trainer.predict(X.astype(trainer.dtype, copy=False))
    return mse_loss(out, np.eye(n_classes)[y]), accuracy(out, y)


def fit(trainer_cls: type, spec: NetSpec, dataset: Dataset, *, epochs: int = 1, batch_size: int = 128,
        learning_rate: float = 0.1, threads: int = 1, dtype=np.float32, seed: int = 0,
        shuffle: bool = True, options: Optional[dict] = None, max_examples: Optional[int] = None,
        warmup_batches: int = 0, evaluate_every_epoch: bool = True,
        on_epoch: Optional[Callable[[EpochRecord], None]] = None,
        progress_factory: Optional[Callable[[int, int], Callable[[int], None]]] = None,
        stop_when: Optional[Callable[[EpochRecord], bool]] = None,
        test_every_epoch: bool = False) -> RunResult:
    """Train ``trainer_cls`` on ``dataset`` and time every epoch.

    ``max_examples`` caps the examples of each timed epoch; the epoch time is
    then extrapolated to the full training set and flagged ``projected``.
    ``warmup_batches`` batches are run untimed first (JIT compilation, kernel
    builds, BLAS thread start-up) and the parameters are then reset.
    ``test_every_epoch`` also measures the test accuracy after every epoch
    (off the clock, like the validation), for time-to-accuracy on the test set.
    """
    check_run_arguments(dataset, batch_size, learning_rate, epochs)
    if spec.n_inputs != dataset.n_features or spec.n_outputs != dataset.n_classes:
        raise UsageError(f"network {spec.name} does not match {dataset.name} "
                         f"({dataset.n_features} features, {dataset.n_classes} classes)")
    dtype = np.dtype(dtype)
    initial = glorot_uniform(spec, seed, dtype)
    n = len(dataset.X_train)
    trainer = trainer_cls(spec, initial, dtype=dtype, threads=threads, options=options)
    try:
        X = dataset.X_train.astype(dtype, copy=False)
        Y = dataset.one_hot(dataset.y_train, dtype)
        start = time.perf_counter()
        trainer.load_data(X, Y)
        transfer = time.perf_counter() - start
        if warmup_batches > 0:
            order = epoch_order(n, seed, 0, shuffle)[: min(n, warmup_batches * batch_size)]  # epochs count from 1
            trainer.train_epoch(order, batch_size, learning_rate)
            trainer.set_params(initial)
        result = RunResult(trainer_cls.name, spec, batch_size, learning_rate, threads, dtype.name, transfer,
                           metadata=trainer.metadata())
        total = 0.0
        for epoch in range(1, epochs + 1):
            order = epoch_order(n, seed, epoch, shuffle)
            projected = max_examples is not None and max_examples < n
            if projected:
                order = order[:max_examples]
            progress = progress_factory(epoch, len(order)) if progress_factory else None
            start = time.perf_counter()
            trainer.train_epoch(order, batch_size, learning_rate, progress)
            elapsed = time.perf_counter() - start
            seconds = elapsed * n / len(order)
            total += seconds
            if evaluate_every_epoch or epoch == epochs:
                val_loss, val_acc = evaluate(trainer, dataset.X_val, dataset.y_val, dataset.n_classes)
            else:
                val_loss = val_acc = float("nan")
            test_acc = (evaluate(trainer, dataset.X_test, dataset.y_test, dataset.n_classes)[1]
                        if test_every_epoch else float("nan"))
            record = EpochRecord(epoch, seconds, len(order), spec.flops_per_epoch(len(order)) / elapsed / 1e9,
                                 val_loss, val_acc, projected, total, test_acc)
            result.epochs.append(record)
            if evaluate_every_epoch and not math.isfinite(val_loss):
                result.diverged = True
                raise DivergedError(f"{trainer_cls.name}: the loss became {val_loss} in epoch {epoch} "
                                    f"(learning rate {learning_rate} too large?)")
            if on_epoch:
                on_epoch(record)
            if stop_when and stop_when(record):
                break
        result.params = trainer.get_params()
        if test_every_epoch and result.epochs:  # the last epoch's record has it, at these same parameters
            result.test_accuracy = result.epochs[-1].test_accuracy
        else:
            result.test_accuracy = evaluate(trainer, dataset.X_test, dataset.y_test, dataset.n_classes)[1]
        return result
    finally:
        trainer.close()

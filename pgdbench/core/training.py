"""Running a backend: the set-up and the loop every command and the benchmark harness share.

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

from pgdbench.core import reference
from pgdbench.core.model import NetSpec, Parameters, epoch_order, glorot_uniform
from pgdbench.core.protocol import Trainer
from pgdbench.data.dataset import Dataset, one_hot
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
    return mse_loss(out, one_hot(y, n_classes, np.float64)), accuracy(out, y)


#: An output unit this close to 0 or 1 is saturated: the sigmoid's slope there (below 1e-4) passes almost no
#: gradient back, so a net saturated everywhere cannot recover.
SATURATION = 1e-4


def no_learning(outputs: np.ndarray, labels: np.ndarray, loss: float, start_loss: Callable[[], float]) -> str:
    """Why a net's outputs on (some split of) the data show it has learned nothing, or '' if they do not.

    No learning: an accuracy no better than always answering the most frequent class (chance), and either
    every output unit saturated on every example, or a loss not below the loss at the initial weights
    (``start_loss()``, asked for only then). A net that learns, however slowly, lowers its loss, so neither
    a small learning rate nor an early epoch is flagged; a learning rate so large that the sigmoids saturate
    (the loss then sits at 0.5 and the accuracy at chance) is.
    """
    if len(labels) == 0 or outputs.shape[1] < 2:
        return ""
    acc = accuracy(outputs, labels)
    chance = float(np.bincount(labels).max()) / len(labels)
    if acc > chance:
        return ""
    at_chance = f"accuracy {acc:.1%} is no better than always answering the most frequent class ({chance:.1%})"
    if np.all(np.minimum(outputs, 1 - outputs) < SATURATION):
        return f"{at_chance} and every output unit is saturated"
    start = start_loss()
    if not loss < start:
        return f"{at_chance} and the loss {loss:.4g} is not below its starting value {start:.4g}"
    return ""


@dataclass(frozen=True)
class Settings:
    """How a backend is trained: the trainer it is built as and the minibatches it is given.

    Every backend gets the same set-up from them: the same initial weights (drawn
    from ``seed``), the same example order, the same untimed warm-up.
    """

    batch_size: int = 128
    learning_rate: float = 0.1
    threads: int = 1
    dtype: str = "float32"             # or a NumPy dtype
    seed: int = 0                      # initial weights and the order of examples
    shuffle: bool = True               # False: the examples in file order every epoch
    options: Optional[dict] = None     # the backend's options
    warmup_batches: int = 0            # untimed batches first (JIT, kernel builds, thread start-up)


@dataclass
class Started:
    """A trainer built from :class:`Settings`, holding the data, warmed up and reset to its initial weights."""

    trainer: Trainer
    initial: Parameters
    transfer_seconds: float            # load_data's wall time: the data's transfer to the backend


def start(trainer_cls: type, spec: NetSpec, dataset: Dataset, settings: Settings) -> Started:
    """Build the trainer, hand it the training split (timed apart) and run the untimed warm-up.

    The warm-up trains ``settings.warmup_batches`` batches of epoch 0's order
    (epochs count from 1) and then restores the initial weights. The caller
    closes the trainer (:meth:`Trainer.close`).
    """
    check_run_arguments(dataset, settings.batch_size, settings.learning_rate, 1)
    if spec.n_inputs != dataset.n_features or spec.n_outputs != dataset.n_classes:
        raise UsageError(f"network {spec.name} does not match {dataset.name} "
                         f"({dataset.n_features} features, {dataset.n_classes} classes)")
    dtype = np.dtype(settings.dtype)
    initial = glorot_uniform(spec, settings.seed, dtype)
    n = len(dataset.X_train)
    trainer = trainer_cls(spec, initial, dtype=dtype, threads=settings.threads, options=settings.options)
    try:
        X = dataset.X_train.astype(dtype, copy=False)
        Y = dataset.one_hot(dataset.y_train, dtype)
        clock = time.perf_counter()
        trainer.load_data(X, Y)
        transfer = time.perf_counter() - clock
        if settings.warmup_batches > 0:
            order = epoch_order(n, settings.seed, 0, settings.shuffle)
            trainer.train_epoch(order[: min(n, settings.warmup_batches * settings.batch_size)], settings.batch_size,
                                settings.learning_rate)
            trainer.set_weights(initial)
    except BaseException:
        trainer.close()
        raise
    return Started(trainer, initial, transfer)


@dataclass(frozen=True)
class EpochTime:
    """The clock of one training epoch."""

    elapsed: float            # wall time of train_epoch
    examples: int             # examples it processed
    n_train: int              # examples of a whole epoch
    projected: bool           # examples < n_train: ``seconds`` is extrapolated

    @property
    def seconds(self) -> float:
        """Time per (whole) epoch."""
        return self.elapsed * self.n_train / self.examples

    def gflops(self, spec: NetSpec) -> float:
        return spec.flops_per_epoch(self.examples) / self.elapsed / 1e9


def timed_epoch(trainer: Trainer, n: int, settings: Settings, epoch: int, max_examples: Optional[int] = None,
                progress_factory: Optional[Callable[[int, int], Callable[[int], None]]] = None) -> EpochTime:
    """Epoch ``epoch`` (from 1) of the core's example order over ``n`` examples (the first ``max_examples`` of it),
    trained and timed with a wall clock; nothing else is on the clock."""
    order = epoch_order(n, settings.seed, epoch, settings.shuffle)
    projected = max_examples is not None and max_examples < n
    if projected:
        order = order[:max_examples]
    progress = progress_factory(epoch, len(order)) if progress_factory else None
    clock = time.perf_counter()
    trainer.train_epoch(order, settings.batch_size, settings.learning_rate, progress)
    elapsed = time.perf_counter() - clock
    return EpochTime(elapsed, len(order), n, projected)


def fit(trainer_cls: type, spec: NetSpec, dataset: Dataset, settings: Settings = Settings(), *, epochs: int = 1,
        max_examples: Optional[int] = None, evaluate_every_epoch: bool = True, test_every_epoch: bool = False,
        on_epoch: Optional[Callable[[EpochRecord], None]] = None,
        progress_factory: Optional[Callable[[int, int], Callable[[int], None]]] = None,
        stop_when: Optional[Callable[[EpochRecord], bool]] = None) -> RunResult:
    """Train ``trainer_cls`` on ``dataset`` as ``settings`` say, and time every epoch.

    ``max_examples`` caps the examples of each timed epoch; the epoch time is
    then extrapolated to the full training set and flagged ``projected``.
    ``evaluate_every_epoch`` (else only after the last) measures the
    validation loss and accuracy, ``test_every_epoch`` the test accuracy too
    (for time to accuracy on the test set); both off the clock.
    ``on_epoch(record)`` is called after each epoch, ``stop_when(record)``
    ends training early, ``progress_factory(epoch, examples)`` gives the
    epoch's progress callback.
    """
    check_run_arguments(dataset, settings.batch_size, settings.learning_rate, epochs)
    started = start(trainer_cls, spec, dataset, settings)
    trainer, n = started.trainer, len(dataset.X_train)
    # whether training has gone wrong is judged on the validation split, or the training split if there is none
    X_check, y_check = (dataset.X_val, dataset.y_val) if len(dataset.y_val) else (dataset.X_train, dataset.y_train)
    start_losses = []

    def start_loss() -> float:  # computed once, and only if needed: the loss at the initial weights
        if not start_losses:
            start_losses.append(reference.loss(started.initial, X_check, one_hot(y_check, dataset.n_classes)))
        return start_losses[0]

    try:
        result = RunResult(trainer_cls.name, spec, settings.batch_size, settings.learning_rate, settings.threads,
                           np.dtype(settings.dtype).name, started.transfer_seconds, metadata=trainer.metadata())
        total = 0.0
        for epoch in range(1, epochs + 1):
            epoch_time = timed_epoch(trainer, n, settings, epoch, max_examples, progress_factory)
            total += epoch_time.seconds
            val_loss = val_acc = float("nan")
            why = ""
            if evaluate_every_epoch or epoch == epochs:
                out = trainer.predict(X_check.astype(trainer.dtype, copy=False))
                loss = mse_loss(out, one_hot(y_check, dataset.n_classes, np.float64))
                if len(dataset.y_val):
                    val_loss, val_acc = loss, accuracy(out, y_check)
                why = (f"the loss became {loss}" if not math.isfinite(loss)
                       else no_learning(out, y_check, loss, start_loss))
            test_acc = (evaluate(trainer, dataset.X_test, dataset.y_test, dataset.n_classes)[1]
                        if test_every_epoch else float("nan"))
            record = EpochRecord(epoch, epoch_time.seconds, epoch_time.examples, epoch_time.gflops(spec),
                                 val_loss, val_acc, epoch_time.projected, total, test_acc)
            result.epochs.append(record)
            if why:  # a net that has diverged or learns nothing has no time worth reporting
                result.diverged = True
                raise DivergedError(f"{trainer_cls.name} diverged in epoch {epoch}: {why} "
                                    f"(learning rate {settings.learning_rate:g} too large?)")
            if on_epoch:
                on_epoch(record)
            if stop_when and stop_when(record):
                break
        result.params = trainer.get_weights()
        if test_every_epoch and result.epochs:  # the last epoch's record has it, at these same parameters
            result.test_accuracy = result.epochs[-1].test_accuracy
        else:
            result.test_accuracy = evaluate(trainer, dataset.X_test, dataset.y_test, dataset.n_classes)[1]
        return result
    finally:
        trainer.close()

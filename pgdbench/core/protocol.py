"""The trainer protocol: the one contract every backend plugin satisfies.

A backend is a subclass of :class:`Trainer` registered under the entry-point
group ``pgdbench.implementations``. The core creates it, hands it the data
once, and then calls :meth:`Trainer.train_epoch` with the order of examples it
chose, so that every backend sees the same minibatches. Everything else
(loss, gradients, parameters, predictions) exists so that the shared checks in
:mod:`pgdbench.core.testing` can hold every backend to the same float64 reference.

Rules that are not visible in the signatures:

* Importing the module that defines a backend must be cheap: heavy optional
  packages (torch, cupy, pycuda, mpi4py, ...) are imported inside methods,
  never at module level, so that ``pgdbench list`` can discover every backend
  on any machine. :meth:`Trainer.availability` may import them.
* :meth:`train_epoch` returns only when the work is finished (a GPU backend
  synchronises its device), because the core times it with a wall clock.
* A minibatch of ``B`` examples is ``order[s:s+B]``; the last one of an epoch
  may be smaller. The loss of a minibatch is ``(1/(2B)) Σ‖y − a_L‖²`` and the
  update is ``θ ← θ − η ∂L/∂θ`` (seed 000, Algorithms 2 and 5).
* All arrays crossing the protocol are NumPy arrays in the trainer's dtype.
"""
from __future__ import annotations

import enum
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar, Optional

import numpy as np

from pgdbench.core.model import NetSpec, Parameters
from pgdbench.errors import UsageError


class Parallelism(str, enum.Enum):
    """Where a backend finds its parallelism (seed 000 distinguishes the first three)."""

    NONE = "none"              # serial
    EXAMPLES = "examples"      # the examples of a minibatch split across threads (Alg. 5)
    MATRIX = "matrix"          # inside the matrix operations (threaded BLAS)
    BOTH = "examples+matrix"   # hierarchical: example workers, each with threaded BLAS
    REPLICAS = "replicas"      # per-thread copies of the net, weights averaged (seed 003)
    PROCESSES = "processes"    # ranks of an MPI job (seed 004)
    DEVICE = "device"          # a GPU or other accelerator


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


AVAILABLE = Availability(True)


def unavailable(reason: str) -> Availability:
    return Availability(False, reason)


def module_missing(*modules: str) -> Optional[Availability]:
    """An Availability saying which of ``modules`` is not installed, without importing any of them."""
    import importlib.util

    for m in modules:
        try:
            found = importlib.util.find_spec(m) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return unavailable(f"package {m!r} is not installed")
    return None


class Trainer(ABC):
    """Base class of all backends. Subclasses declare their facts as class attributes.

    Parameters
    ----------
    spec:    the network's layer widths.
    params:  initial parameters (the trainer copies them into its own storage).
    dtype:   ``np.float32`` or ``np.float64``.
    threads: how many threads (or workers, ranks, ...) the backend may use.
    options: backend-specific settings; keys must be declared in :attr:`options`.
    """

    #: Registry name, e.g. ``"numpy"``.
    name: ClassVar[str] = ""
    #: One line for ``pgdbench list``.
    description: ClassVar[str] = ""
    parallelism: ClassVar[Parallelism] = Parallelism.NONE
    #: ``"cpu"``, ``"gpu"`` or ``"cluster"``.
    device: ClassVar[str] = "cpu"
    #: Backend whose 1-thread run is this one's serial counterpart for speedups
    #: (the backend itself when it is its own serial version).
    serial_counterpart: ClassVar[str] = ""
    #: Backend-specific options and their defaults, declared as data (benchopt style).
    options: ClassVar[dict] = {}
    #: Options under which the backend performs exactly minibatch gradient
    #: descent, so that it must match the float64 reference step for step.
    #: ``None`` if there are none (then the cross-backend check is skipped, with that reason).
    reference_options: ClassVar[Optional[dict]] = {}
    #: True for backends so slow that benchmarks time a fixed number of
    #: examples and report the epoch time as projected.
    projected: ClassVar[bool] = False
    #: Whether the thread count is meaningful (False: only 1 is accepted).
    uses_threads: ClassVar[bool] = True

    def __init__(self, spec: NetSpec, params: Parameters, *, dtype=np.float32, threads: int = 1,
                 options: Optional[dict] = None):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise UsageError(f"dtype must be float32 or float64, got {self.dtype}")
        self.threads = check_threads(threads, self.uses_threads, self.name)
        self.opts = resolve_options(type(self), options or {})
        params.check_against(spec)

    # -- discovery -----------------------------------------------------
    @classmethod
    def availability(cls) -> Availability:
        """Can this backend run here? If not, say why. Cheap; may import optional packages."""
        return AVAILABLE

    # -- data and training ----------------------------------------------
    @abstractmethod
    def load_data(self, X: np.ndarray, Y: np.ndarray) -> None:
        """Keep the training inputs (n, n_in) and one-hot targets (n, n_out) for the epochs.

        Called once; the core times it apart from the epochs (transfer time).
        """

    @abstractmethod
    def train_epoch(self, order: np.ndarray, batch_size: int, learning_rate: float,
                    progress: Optional[Callable[[int], None]] = None) -> None:
        """One pass of minibatch gradient descent over ``order`` (indices into the loaded data).

        ``progress(k)``, if given, may be called with the number of examples
        done since the last call; backends may call it as rarely as they like.
        """

    # -- state, for the checks and for evaluation -------------------------
    @abstractmethod
    def get_params(self) -> Parameters:
        """A copy of the current parameters as NumPy arrays."""

    @abstractmethod
    def set_params(self, params: Parameters) -> None:
        """Replace the current parameters (shapes as the spec; values copied)."""

    @abstractmethod
    def loss_and_gradients(self, X: np.ndarray, Y: np.ndarray) -> tuple[float, Parameters]:
        """Loss (1/(2B))Σ‖y−a_L‖² of the batch and its gradient at the current parameters."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Output activations a_L, shape (n, n_out)."""

    def close(self) -> None:
        """Release threads, devices or processes. Called once by the core."""

    def metadata(self) -> dict:
        """Extra facts for results files (threading layer, device name, ...)."""
        return {}

    # context-manager sugar so callers cannot forget close()
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def max_threads() -> int:
    """The most threads (or replicas) a run may use: PGDBENCH_MAX_THREADS if set, else the usable CPUs."""
    return int(os.environ.get("PGDBENCH_MAX_THREADS", 0)) or usable_cpus()


def check_threads(threads, uses_threads: bool, name: str) -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise UsageError(f"threads must be an integer, got {threads!r}")
    threads = int(threads)
    if threads <= 0:
        raise UsageError(f"threads must be at least 1, got {threads}")
    if not uses_threads and threads != 1:
        raise UsageError(f"backend {name!r} is serial: it takes threads=1 only, got {threads}")
    limit = max_threads()
    if threads > limit:
        raise UsageError(
            f"{threads} threads is more than the {limit} CPUs this process may use; "
            f"oversubscribing only measures contention (set PGDBENCH_MAX_THREADS to allow it)"
        )
    return threads


def resolve_options(cls, given: dict) -> dict:
    """Declared defaults updated by ``given``, with values converted to the default's type."""
    unknown = set(given) - set(cls.options)
    if unknown:
        known = ", ".join(f"{k} (default {v!r})" for k, v in cls.options.items()) or "none"
        raise UsageError(f"backend {cls.name!r} has no option {', '.join(sorted(unknown))}; its options: {known}")
    out = dict(cls.options)
    for key, value in given.items():
        default = cls.options[key]
        out[key] = convert_option(key, value, default)
    return out


def convert_option(key: str, value, default):
    if isinstance(value, str) and not isinstance(default, str) and default is not None:
        try:
            if isinstance(default, bool):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError
                return value.lower() in ("1", "true", "yes")
            return type(default)(value)
        except ValueError:
            raise UsageError(f"option {key}={value!r}: expected a {type(default).__name__}") from None
    return value


def validate_batch(X: np.ndarray, Y: np.ndarray, spec: NetSpec) -> None:
    """Shape checks shared by backends for arrays handed over by callers."""
    if X.ndim != 2 or X.shape[1] != spec.n_inputs:
        raise UsageError(f"inputs must have shape (n, {spec.n_inputs}), got {X.shape}")
    if Y.ndim != 2 or Y.shape != (X.shape[0], spec.n_outputs):
        raise UsageError(f"targets must have shape ({X.shape[0]}, {spec.n_outputs}), got {Y.shape}")

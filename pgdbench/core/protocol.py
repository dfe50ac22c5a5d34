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
  update is ``θ ← θ − η ∂L/∂θ`` (Kamra et al., *Parallel Gradient Descent*, Algorithms 2 and 5).
* All arrays crossing the protocol are NumPy arrays in the trainer's dtype.
"""
from __future__ import annotations

import enum
import functools
import importlib.util
import os
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Callable, ClassVar, Optional

import numpy as np

from pgdbench.core.model import NetSpec, Parameters
from pgdbench.errors import BackendUnavailable, UsageError


class Parallelism(str, enum.Enum):
    """Where a backend finds its parallelism (Kamra et al., *Parallel Gradient Descent* distinguishes the first
    three)."""

    NONE = "none"              # serial
    EXAMPLES = "examples"      # the examples of a minibatch split across threads (Alg. 5)
    MATRIX = "matrix"          # inside the matrix operations (threaded BLAS)
    BOTH = "examples+matrix"   # hierarchical: example workers, each with threaded BLAS
    REPLICAS = "replicas"      # per-thread copies of the net, weights averaged (Ott, *Training Neural Networks in
    #                            Parallel*)
    PROCESSES = "processes"    # ranks of an MPI job (De Filippo De Grazia et al., *Parallelization of Deep Networks*)
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


#: The extra of pyproject.toml that installs each optional package: every install hint names it, one way.
EXTRAS = {"mpi4py": "mpi", "mpich": "mpi", "numba": "numba", "torch": "torch", "pyopencl": "opencl",
          "pycuda": "cuda", "cupy": "cupy"}


def install_hint(package: str) -> str:
    """How to install ``package``: its extra, from the pgdbench checkout (editable, as the README installs)."""
    extra = EXTRAS.get(package)
    return f"pip install -e '.[{extra}]'" if extra else f"pip install {package}"


def module_missing(*modules: str) -> Optional[Availability]:
    """An Availability saying which of ``modules`` is not installed, without importing any of them."""
    for m in modules:
        try:
            found = importlib.util.find_spec(m) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return unavailable(f"package {m!r} is not installed ({install_hint(m)})")
    return None


#: The entry-point group under which backends are registered.
GROUP = "pgdbench.implementations"


@functools.lru_cache(maxsize=1)
def _registered_names() -> dict[str, str]:
    """``module:Class`` → entry-point name of every registered backend (no backend is imported)."""
    return {ep.value.replace(" ", ""): ep.name for ep in entry_points(group=GROUP)}


class _EntryPointName:
    """``Trainer.name``: the name the class is registered under, so that it is written once, in the entry point.

    A class may still set ``name`` itself (a plugin written for pgdbench 0.1
    did); the registry then checks that the two agree. A class that is not
    registered (a test's subclass, say) and sets no name has the name "".
    """

    def __get__(self, obj, cls) -> str:
        return _registered_names().get(f"{cls.__module__}:{cls.__qualname__}", "")


@dataclass(frozen=True)
class Option:
    """A backend option declared as data: its default and, if restricted, its choices or its least value.

    ``options = {"reduce": Option("parallel", choices=("main", "parallel"))}``;
    a plain value (``{"tile": 32}``) declares an unrestricted option with that
    default. ``zero`` says what the value 0 stands for where it is special
    (``Option(0, minimum=0, zero="auto")``). :func:`resolve_options` converts
    given values to the default's type and checks them, with an error that
    names what is accepted.
    """

    default: object
    choices: tuple = ()
    minimum: Optional[float] = None
    zero: str = ""

    def describe(self) -> str:
        """The default and what is accepted, for ``pgdbench list -v``."""
        accepted = ("|".join(map(str, self.choices)) if self.choices else
                    f"0 = {self.zero}, or positive" if self.zero else
                    f"≥ {self.minimum}" if self.minimum is not None else "")
        return f"{self.default!r}" + (f" ({accepted})" if accepted else "")


#: Old name → new name of the protocol's state methods (pgdbench 0.1 called the weights "params").
RENAMED_METHODS = {"get_params": "get_weights", "set_params": "set_weights"}


class Trainer(ABC):
    """Base class of all backends. Subclasses declare their facts as class attributes.

    Parameters
    ----------
    spec:    the network's layer widths.
    params:  initial parameters (the trainer copies them into its own storage).
    dtype:   ``np.float32`` or ``np.float64``.
    threads: how many threads (or workers, ranks, ...) the backend may use.
    options: backend-specific settings; keys must be declared in :attr:`options`.

    A backend that keeps its parameters as NumPy arrays in the lists ``self.W``
    and ``self.b`` (input side first) gets :meth:`get_weights`,
    :meth:`set_weights` and :meth:`load_data` (into ``self.X``, ``self.Y``)
    from this class; any other overrides them.
    """

    #: Registry name, e.g. ``"numpy"``: the entry-point name, unless the class sets it.
    name: ClassVar[str] = _EntryPointName()
    #: One line for ``pgdbench list``.
    description: ClassVar[str] = ""
    parallelism: ClassVar[Parallelism] = Parallelism.NONE
    #: ``"cpu"``, ``"gpu"`` or ``"cluster"``.
    device: ClassVar[str] = "cpu"
    #: Backend whose 1-thread run is this one's serial counterpart for speedups
    #: (the backend itself when it is its own serial version).
    serial_counterpart: ClassVar[str] = ""
    #: Optional packages the backend needs (import names): without one of them it is unavailable.
    requires: ClassVar[tuple] = ()
    #: Backend-specific options and their defaults (or :class:`Option` declarations), as data.
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

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # a plugin written for 0.1 defines get_params/set_params: they stand in for the new names
        for old, new in RENAMED_METHODS.items():
            owner_old = next(k for k in cls.__mro__ if old in vars(k))
            owner_new = next(k for k in cls.__mro__ if new in vars(k))
            if owner_old is not Trainer and cls.__mro__.index(owner_old) < cls.__mro__.index(owner_new):
                warnings.warn(f"{cls.__qualname__}.{old}() is deprecated: name it {new}() (pgdbench 0.1 called the "
                              f"weights params); the old name goes in the next release", DeprecationWarning,
                              stacklevel=3)  # the class statement (through ABCMeta.__new__)
                setattr(cls, new, vars(owner_old)[old])

    def __init__(self, spec: NetSpec, params: Parameters, *, dtype=np.float32, threads: int = 1,
                 options: Optional[dict] = None):
        missing = module_missing(*self.requires)
        if missing is not None:
            raise BackendUnavailable(f"backend {self.name!r}: {missing.reason}")
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
        """Can this backend run here? If not, say why. Cheap; may import optional packages.

        By default: whether the packages of :attr:`requires` are installed. A
        backend that needs more (a GPU, an MPI library) extends it.
        """
        missing = module_missing(*cls.requires)
        return AVAILABLE if missing is None else missing

    # -- data and training ----------------------------------------------
    def load_data(self, X: np.ndarray, Y: np.ndarray) -> None:
        """Keep the training inputs (n, n_in) and one-hot targets (n, n_out) for the epochs.

        Called once; the core times it apart from the epochs (transfer time).
        By default: checked, and kept as C-contiguous arrays of the trainer's dtype in ``self.X``, ``self.Y``.
        """
        validate_batch(X, Y, self.spec)
        self.X = np.ascontiguousarray(X, dtype=self.dtype)
        self.Y = np.ascontiguousarray(Y, dtype=self.dtype)

    @abstractmethod
    def train_epoch(self, order: np.ndarray, batch_size: int, learning_rate: float,
                    progress: Optional[Callable[[int], None]] = None) -> None:
        """One pass of minibatch gradient descent over ``order`` (indices into the loaded data).

        ``progress(k)``, if given, may be called with the number of examples
        done since the last call; backends may call it as rarely as they like.
        """

    # -- state, for the checks and for evaluation -------------------------
    def get_weights(self) -> Parameters:
        """A copy of the current weights and biases as NumPy arrays (by default: of ``self.W``, ``self.b``)."""
        return Parameters([w.copy() for w in self.W], [b.copy() for b in self.b])

    def set_weights(self, params: Parameters) -> None:
        """Replace the current weights and biases (shapes as the spec; values copied; by default into
        ``self.W``, ``self.b``)."""
        params.check_against(self.spec)
        for dst, src in zip(self.W + self.b, params.weights + params.biases):
            dst[...] = src

    def get_params(self) -> Parameters:
        """Deprecated name of :meth:`get_weights`."""
        warnings.warn("Trainer.get_params() is deprecated: call get_weights()", DeprecationWarning, stacklevel=2)
        return self.get_weights()

    def set_params(self, params: Parameters) -> None:
        """Deprecated name of :meth:`set_weights`."""
        warnings.warn("Trainer.set_params() is deprecated: call set_weights()", DeprecationWarning, stacklevel=2)
        self.set_weights(params)

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
    """Declared defaults updated by ``given``, converted to the default's type and checked against the declaration."""
    declared = declared_options(cls)
    unknown = set(given) - set(declared)
    if unknown:
        known = ", ".join(f"{k} (default {d.default!r})" for k, d in declared.items()) or "none"
        raise UsageError(f"backend {cls.name!r} has no option {', '.join(sorted(unknown))}; its options: {known}")
    out = {key: d.default for key, d in declared.items()}
    for key, value in given.items():
        out[key] = convert_option(key, value, declared[key].default)
    for key, d in declared.items():
        value = out[key]
        if d.choices and value not in d.choices:
            raise UsageError(f"option {key} must be one of {', '.join(map(str, d.choices))}, got {value!r}")
        if d.minimum is not None and value < d.minimum:
            at_least = f"0 ({d.zero}) or positive" if d.zero and d.minimum == 0 else f"at least {d.minimum}"
            raise UsageError(f"option {key} must be {at_least}, got {value!r}")
    return out


def declared_options(cls) -> dict[str, Option]:
    """The backend's options, each as an :class:`Option` (a plain default declares an unrestricted one)."""
    return {key: d if isinstance(d, Option) else Option(d) for key, d in cls.options.items()}


def convert_option(key: str, value, default):
    if isinstance(value, str) and not isinstance(default, str) and default is not None:
        try:
            if isinstance(default, bool):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError
                return value.lower() in ("1", "true", "yes")
            return type(default)(value)
        except ValueError:
            what = {bool: "true or false", int: "an integer", float: "a number"}.get(type(default),
                                                                                   f"a {type(default).__name__}")
            raise UsageError(f"option {key}={value!r}: expected {what}") from None
    return value


def validate_batch(X: np.ndarray, Y: np.ndarray, spec: NetSpec) -> None:
    """Shape checks shared by backends for arrays handed over by callers."""
    if X.ndim != 2 or X.shape[1] != spec.n_inputs:
        raise UsageError(f"inputs must have shape (n, {spec.n_inputs}), got {X.shape}")
    if Y.ndim != 2 or Y.shape != (X.shape[0], spec.n_outputs):
        raise UsageError(f"targets must have shape ({X.shape[0]}, {spec.n_outputs}), got {Y.shape}")

"""pgdbench: a plugin-based benchmark suite for parallel training of multilayer perceptrons.

The names a backend plugin and its tests need, importable from the package itself::

    from pgdbench import Parallelism, Parameters, Trainer, batch_bounds, check_backend, validate_batch

Each name is loaded from its module on first use (PEP 562), so ``import pgdbench``
loads neither NumPy nor any sub-package: ``pgdbench.harness.openblas_env`` has to
run before NumPy is loaded to take effect, and the command line, the asv suite and
the test configuration import it first.

Where things live, lowest layer first (a module imports only its own layer and
lower ones; ``tests/test_architecture.py`` checks it):

* ``pgdbench.errors`` -- the errors the command line reports on one line;
* ``pgdbench.data`` -- data sets (MNIST, the embedded sample, synthetic, KDD Cup 1999, npz);
* ``pgdbench.core`` -- the trainer protocol, the model, the float64 reference, the
  registry of backends, the training loop and the conformance kit;
* ``pgdbench.harness`` -- the benchmark grid and its measurement, results files,
  machine metadata and peak, MPI job launching;
* ``pgdbench.studies`` -- the DBN over MPI, the replica-averaging and MPI scaling summaries;
* ``pgdbench.reporting`` -- loading results, the studies' claims, figures, the Markdown report;
* ``pgdbench.cli`` -- the ``pgdbench`` command.

Backends are plugins (``implementations/`` in this repository) and use the core only.
"""
from __future__ import annotations

import importlib

#: Public name → the module that defines it.
_EXPORTS = {
    "Trainer": "pgdbench.core.protocol",
    "Parallelism": "pgdbench.core.protocol",
    "Availability": "pgdbench.core.protocol",
    "AVAILABLE": "pgdbench.core.protocol",
    "unavailable": "pgdbench.core.protocol",
    "module_missing": "pgdbench.core.protocol",
    "validate_batch": "pgdbench.core.protocol",
    "usable_cpus": "pgdbench.core.protocol",
    "Option": "pgdbench.core.protocol",
    "Backprop": "pgdbench.core.backprop",
    "ArrayNamespace": "pgdbench.core.backprop",
    "NetSpec": "pgdbench.core.model",
    "Parameters": "pgdbench.core.model",
    "glorot_uniform": "pgdbench.core.model",
    "epoch_order": "pgdbench.core.model",
    "batch_bounds": "pgdbench.core.model",
    "sigmoid_": "pgdbench.core.model",
    "fit": "pgdbench.core.training",
    "Settings": "pgdbench.core.training",
    "RunResult": "pgdbench.core.training",
    "EpochRecord": "pgdbench.core.training",
    "check_backend": "pgdbench.core.testing",
    "run_checks": "pgdbench.core.testing",
    "Dataset": "pgdbench.data.dataset",
    "load_dataset": "pgdbench.data",
    "PgdbenchError": "pgdbench.errors",
    "UsageError": "pgdbench.errors",
    "DataError": "pgdbench.errors",
    "BackendUnavailable": "pgdbench.errors",
    "DivergedError": "pgdbench.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pgdbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""OpenBLAS's threads should sleep soon after a GEMM: set before NumPy is loaded, or not at all.

By default an OpenBLAS worker thread spins for about 2^28 cycles after each
GEMM before it sleeps. Meanwhile it holds its core, so any other work the
process starts on that core -- the ``numpy`` backend's row-split elementwise
passes -- waits (measured: σ over 1024×1024 after a GEMM took 2.1 ms on one
thread and 2.3 ms split over two; with ``OPENBLAS_THREAD_TIMEOUT=4``, 1.2 ms).
OpenBLAS reads the variable once, when it is loaded with NumPy, so it is set
only if NumPy is not loaded yet: a results file's machine metadata records the
variable, and it must not claim a setting that did not take effect.
"""
from __future__ import annotations

import os
import sys

VARIABLE = "OPENBLAS_THREAD_TIMEOUT"
#: 2^4 cycles: the smallest value OpenBLAS accepts.
VALUE = "4"


def prefer_sleeping_blas_threads() -> bool:
    """Set OPENBLAS_THREAD_TIMEOUT unless the user has, or NumPy (and its OpenBLAS) is already loaded.

    Returns whether the variable is set in this process after the call.
    """
    if VARIABLE not in os.environ and "numpy" not in sys.modules:
        os.environ[VARIABLE] = VALUE
    return VARIABLE in os.environ

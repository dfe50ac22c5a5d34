"""The elementwise passes of the training step, as a strategy (``-o elementwise=...``).

Between its GEMMs, the step (:class:`pgdbench.core.backprop.Backprop`) does
three kinds of elementwise work, each a function of rows, so that a backend
may split it in blocks of rows over threads (``Backprop(elementwise=...)``):

* ``bias_sigmoid(z, b)``: z ← σ(z + b);
* ``output_delta(d, a, y, scratch, scale)``: d ← scale·(a − y)∘a∘(1 − a), the
  output layer's δ with the step size folded in;
* ``times_sigmoid_prime(d, a, scratch)``: d ← d∘a∘(1 − a), σ′ taken from the
  stored activation;

and, for backends that add up per-worker gradients (Algorithm 5's reduction),
``subtract_sums(w, g, r0)``: w ← w − Σ_t g[t, r0:r0 + len(w)] (``g`` stacks the
T workers' partial sums; ``w`` is a block of rows of the weights starting at row ``r0``).

``scratch`` has the shape of ``d``, for strategies that need a temporary.

Strategies (:func:`get`):

* ``numpy``: NumPy ufuncs with ``out=`` (several passes over memory per
  function; no compiler; always there). It is written against an array
  namespace, so the ``cupy`` backend runs the same code on a GPU;
* ``numba``: one compiled, vectorised pass per function
  (:mod:`pgdbench.core.fused_numba`, with an ``exp`` of its own because
  numba's would be a scalar call per element), when numba is installed.
* ``auto``: ``numba`` where it is installed, else ``numpy``.
"""
from __future__ import annotations

import importlib.util

from pgdbench.core.model import sigmoid_
from pgdbench.errors import UsageError

NAMES = ("numba", "numpy")


class XpElementwise:
    """The passes written with array operations (``out=``, in place) of a NumPy-like namespace."""

    name = "numpy"

    def __init__(self, xp, sigmoid=sigmoid_):
        self.xp = xp
        self._sigmoid = sigmoid

    def bias_sigmoid(self, z, b) -> None:
        self._sigmoid(z, b)

    def output_delta(self, d, a, y, scratch, scale) -> None:
        self.xp.subtract(a, y, out=d)                   # ∂(½‖a − y‖²)/∂a
        if scale != 1:
            d *= scale
        self.times_sigmoid_prime(d, a, scratch)

    def times_sigmoid_prime(self, d, a, scratch) -> None:
        self.xp.subtract(1, a, out=scratch)
        d *= a
        d *= scratch

    def subtract_sums(self, w, g, r0: int = 0) -> None:
        for part in g:
            w -= part[r0:r0 + len(w)]

    def warm(self, dtype) -> None:
        """Compile whatever needs compiling for ``dtype`` now, not during a timed epoch (nothing here)."""


def numba_missing() -> str | None:
    return None if importlib.util.find_spec("numba") is not None else "numba is not installed (pip install numba)"


def default_name() -> str:
    return "numba" if numba_missing() is None else "numpy"


def get(name: str):
    """The strategy called ``name`` (``auto``: :func:`default_name`), for NumPy arrays."""
    import numpy as np

    if name == "auto":
        name = default_name()
    if name == "numpy":
        return XpElementwise(np)
    if name == "numba":
        why = numba_missing()
        if why:
            raise UsageError(f"elementwise strategy 'numba' is not available here: {why}")
        from pgdbench.core.fused_numba import NumbaElementwise

        return NumbaElementwise()
    raise UsageError(f"unknown elementwise strategy {name!r}; known: auto, {', '.join(NAMES)}")


def available() -> dict[str, str | None]:
    return {"numba": numba_missing(), "numpy": None}

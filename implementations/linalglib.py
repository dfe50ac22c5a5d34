"""LINALGLIB: the handful of linear-algebra routines the pure-Python backend needs.

Kamra et al.'s (*Parallel Gradient Descent*) *Naive Serial* implementation used a small hand-written
linear-algebra library instead of BLAS; this is its Python counterpart. It
works on plain lists of Python floats (IEEE binary64) and imports nothing but
the standard library, so that the ``python`` backend measures exactly what an
interpreter does with hand-written loops.

Conventions, chosen to match :class:`pgdbench.core.model.Parameters`:

* a vector is a ``list`` of floats;
* a matrix is a ``list`` of rows, each a ``list`` of floats; a weight matrix
  ``W`` of a layer has one row per *input* unit (shape n_in × n_out), so
  ``z = Wᵀa`` is :func:`vecmat` (``a`` times ``W``) and ``W δ`` is :func:`matvec`.

Functions whose name ends in ``_inplace`` overwrite their first argument and
return nothing; the others return new lists. The loops are written as list
comprehensions over ``zip`` because that is the fastest plain Python, not
because anything clever is going on.
"""
from __future__ import annotations

import math
from operator import mul

__all__ = [
    "zeros", "zeros_matrix", "dot", "matvec", "vecmat", "add_outer_inplace", "axpy_inplace",
    "scale_inplace", "add", "sub", "hadamard", "sigmoid", "sigmoid_prime_from_output", "sum_of_squares",
]


def zeros(n: int) -> list:
    return [0.0] * n


def zeros_matrix(rows: int, cols: int) -> list:
    return [[0.0] * cols for _ in range(rows)]


def dot(u: list, v: list) -> float:
    """Σ_i u_i v_i."""
    return sum(map(mul, u, v))


def matvec(M: list, v: list) -> list:
    """M v: one dot product per row (length of v = number of columns)."""
    return [sum(map(mul, row, v)) for row in M]


def vecmat(v: list, M: list) -> list:
    """vᵀ M = Mᵀ v: the rows of M weighted by v and accumulated (length of v = number of rows)."""
    out = [0.0] * len(M[0])
    for vi, row in zip(v, M):
        out = [o + vi * m for o, m in zip(out, row)]
    return out


def add_outer_inplace(M: list, u: list, v: list) -> None:
    """M ← M + u vᵀ (rank-one update; row i gains u_i · v)."""
    for i, ui in enumerate(u):
        row = M[i]
        row[:] = [m + ui * vj for m, vj in zip(row, v)]


def axpy_inplace(y: list, alpha: float, x: list) -> None:
    """y ← y + α x."""
    y[:] = [yi + alpha * xi for yi, xi in zip(y, x)]


def scale_inplace(y: list, alpha: float) -> None:
    """y ← α y."""
    y[:] = [alpha * yi for yi in y]


def add(u: list, v: list) -> list:
    """u + v."""
    return [a + b for a, b in zip(u, v)]


def sub(u: list, v: list) -> list:
    """u − v."""
    return [a - b for a, b in zip(u, v)]


def hadamard(u: list, v: list) -> list:
    """Elementwise product u ∘ v."""
    return list(map(mul, u, v))


def _sigmoid(z: float) -> float:
    # math.exp overflows (OverflowError) above ~709, so never exponentiate a large positive number
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def sigmoid(z: list) -> list:
    """σ(z) = 1 / (1 + e^(−z)) elementwise."""
    return [_sigmoid(x) for x in z]


def sigmoid_prime_from_output(a: list) -> list:
    """σ'(z) = σ(z)(1 − σ(z)), taken from the stored activation a = σ(z) as in Kamra et al., *Parallel Gradient
    Descent*."""
    return [x * (1.0 - x) for x in a]


def sum_of_squares(u: list) -> float:
    return sum(x * x for x in u)

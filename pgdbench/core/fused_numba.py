"""Compiled elementwise passes of the training step (the ``numba`` elementwise strategy), and a vectorisable exp.

Imported only when that strategy (or the ``numba`` backend) is used: it imports numba.

Why an exp of our own: numba from PyPI has no SVML, so ``np.exp`` in a loop
becomes a call to the C library per element and the loop is not vectorised;
the sigmoid then costs more than NumPy's own SIMD ``exp`` in five passes.
:func:`vexp` is straight-line arithmetic that LLVM vectorises (AVX2: 8 floats
or 4 doubles per instruction):

1. clamp x to [lo, hi], just outside the range where eˣ is finite and not zero
   (NaN passes through: the comparisons are false for it);
2. k = round(x / ln 2) by the "shifter" trick (adding 1.5·2^p, p = mantissa
   bits, leaves round(x·log₂e) in the low bits of the sum), and
   r = x − k·ln 2 with ln 2 split in two (a high part with few significant
   bits, so that k·high is exact, and the rest): |r| ≤ ln 2 / 2;
3. eʳ by its Taylor polynomial (degree 7 for float32, 13 for float64: the
   truncation error at |r| = ln 2 / 2 is below 1/20 of an ulp), Horner's rule;
4. eˣ = eʳ · 2^⌊k/2⌋ · 2^(k − ⌊k/2⌋): two powers of two built in the exponent
   field, so that results that overflow to inf, are subnormal or underflow to
   0 come out of ordinary rounding, with no branch.

``tests/test_fused_kernels.py`` measures its error in ulps against NumPy's
(float64) exp over the whole float32 range and on a dense sample of the
float64 one, the limits included, and checks σ = 0 and 1 exactly where the
sigmoid saturates and NaN in gives NaN out.

Every kernel is ``nogil``, so a pool of Python threads (the ``numpy``
backend's row blocks, the example workers of ``threads`` and ``hybrid``) runs
them side by side. Machine code is cached next to this module (``cache=True``),
and :meth:`NumbaElementwise.warm` compiles or loads it for a dtype before any
timed epoch.
"""
from __future__ import annotations

import math
from decimal import Decimal, getcontext

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

# Only contraction (FMA): reassociation would undo the shifter trick and the split of ln 2.
FLAGS = {"contract"}


# -- bit casts, which LLVM vectorises -------------------------------------------

@intrinsic
def _float_from_bits(typingctx, bits):
    """The float whose IEEE bits are ``bits`` (int32 → float32, int64 → float64)."""
    if bits not in (types.int32, types.int64):
        return None
    result = types.float32 if bits == types.int32 else types.float64

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType() if bits == types.int32 else ir.DoubleType())

    return result(bits), codegen


@intrinsic
def _bits_of(typingctx, x):
    """The IEEE bits of ``x`` (float32 → int32, float64 → int64)."""
    if x not in (types.float32, types.float64):
        return None
    result = types.int32 if x == types.float32 else types.int64

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32 if x == types.float32 else 64))

    return result(x), codegen


# -- the constants, derived here ---------------------------------------------------

def _constants(dtype, mantissa_bits: int, high_bits: int, degree: int, lo: float, hi: float) -> dict:
    """The constants of :func:`vexp` for one float format.

    ln 2 is split as high + low: ``high`` keeps ``high_bits`` significant bits,
    so that k·high is exact for every k the clamp allows; ``low`` is the rest,
    rounded. Taylor coefficients 1/n!.
    """
    getcontext().prec = 50
    ln2 = Decimal(2).ln()
    exponent = math.floor(math.log2(float(ln2)))
    quantum = Decimal(2) ** (exponent - high_bits + 1)
    high = (ln2 / quantum).to_integral_value(rounding="ROUND_FLOOR") * quantum
    t = np.dtype(dtype).type
    return {"shifter": t(1.5 * 2.0 ** mantissa_bits), "log2e": t(1 / float(ln2)),
            "ln2_high": t(float(high)), "ln2_low": t(float(ln2 - high)),
            "lo": t(lo), "hi": t(hi), "one": t(1),
            "coefficients": tuple(t(1 / math.factorial(n)) for n in range(degree, -1, -1))}


# float32: eˣ is 0 below about −103.97 and inf above 88.72; k = round(x·log₂e) ∈ [−150, 129] needs 8 bits
F32 = _constants(np.float32, 23, 12, 7, -104.0, 89.0)
# float64: 0 below about −745.13, inf above 709.78; k ∈ [−1077, 1025]: 11 bits
F64 = _constants(np.float64, 52, 32, 13, -746.0, 710.0)

_S32, _L32, _H32, _LO32, _LOW32, _HIGH32 = (F32[k] for k in ("shifter", "log2e", "ln2_high", "ln2_low", "lo", "hi"))
_C32 = F32["coefficients"]
_SB32 = np.int32(np.array(_S32, np.float32).view(np.int32))
_S64, _L64, _H64, _LO64, _LOW64, _HIGH64 = (F64[k] for k in ("shifter", "log2e", "ln2_high", "ln2_low", "lo", "hi"))
_C64 = F64["coefficients"]
_SB64 = np.int64(np.array(_S64, np.float64).view(np.int64))


@njit(inline="always", fastmath=FLAGS)
def _exp32(x):
    x = _LOW32 if x < _LOW32 else x
    x = _HIGH32 if x > _HIGH32 else x
    t = x * _L32 + _S32
    kf = t - _S32
    k = _bits_of(t) - _SB32          # numba widens int32 arithmetic to int64; narrowed again below
    r = x - kf * _H32
    r = r - kf * _LO32
    c = _C32
    p = ((((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) * r + c[6]) * r + c[7]
    k1 = k >> 1
    k2 = k - k1
    return p * _float_from_bits(np.int32((k1 + 127) << 23)) * _float_from_bits(np.int32((k2 + 127) << 23))


@njit(inline="always", fastmath=FLAGS)
def _exp64(x):
    x = _LOW64 if x < _LOW64 else x
    x = _HIGH64 if x > _HIGH64 else x
    t = x * _L64 + _S64
    kf = t - _S64
    k = _bits_of(t) - _SB64
    r = x - kf * _H64
    r = r - kf * _LO64
    c = _C64
    p = ((((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) * r + c[6]) * r + c[7]
    p = (((((p * r + c[8]) * r + c[9]) * r + c[10]) * r + c[11]) * r + c[12]) * r + c[13]
    k1 = k >> 1
    k2 = k - k1
    return p * _float_from_bits(np.int64((k1 + 1023) << 52)) * _float_from_bits(np.int64((k2 + 1023) << 52))


def vexp(x):
    """eˣ of a float32 or float64 scalar inside compiled code (vectorised in loops); NumPy's exp outside."""
    return np.exp(x)


@overload(vexp, inline="always")
def _vexp_overload(x):
    if x == types.float32:
        return lambda x: _exp32(x)
    if x == types.float64:
        return lambda x: _exp64(x)
    return None


# -- the kernels -----------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def exp_array(x, out):
    """out ← eˣ elementwise (1-D): for the accuracy tests and the peak's clock-free checks."""
    for i in range(x.shape[0]):
        out[i] = vexp(x[i])


@njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def sigmoid_array(x, out, one):
    for i in range(x.shape[0]):
        out[i] = one / (one + vexp(-x[i]))


@njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def bias_sigmoid(z, b, one):
    """z ← σ(z + b) in place, one pass."""
    for i in range(z.shape[0]):
        row = z[i]
        for j in range(row.shape[0]):
            row[j] = one / (one + vexp(-(row[j] + b[j])))


@njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def output_delta(d, a, y, scale, one):
    """d ← scale·(a − y)∘a∘(1 − a), one pass."""
    for i in range(d.shape[0]):
        dr, ar, yr = d[i], a[i], y[i]
        for j in range(dr.shape[0]):
            v = ar[j]
            dr[j] = scale * (v - yr[j]) * v * (one - v)


@njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def times_sigmoid_prime(d, a, one):
    """d ← d∘a∘(1 − a), one pass."""
    for i in range(d.shape[0]):
        dr, ar = d[i], a[i]
        for j in range(dr.shape[0]):
            v = ar[j]
            dr[j] = dr[j] * v * (one - v)


@njit(cache=True, nogil=True, fastmath=FLAGS, error_model="numpy")
def subtract_sums(w, g, r0):
    """w ← w − Σ_t g[t, r0 + i] for every row i of w: each row of w stays in L1 while the T partial sums pass
    (unit-stride inner loop: vectorised)."""
    for i in range(w.shape[0]):
        wr = w[i]
        for t in range(g.shape[0]):
            gr = g[t, r0 + i]
            for j in range(wr.shape[0]):
                wr[j] -= gr[j]


class NumbaElementwise:
    """The step's elementwise passes as single compiled, vectorised passes (see the module's docstring)."""

    name = "numba"

    def bias_sigmoid(self, z, b) -> None:
        bias_sigmoid(z, b, z.dtype.type(1))

    def output_delta(self, d, a, y, scratch, scale) -> None:
        output_delta(d, a, y, d.dtype.type(scale), d.dtype.type(1))

    def times_sigmoid_prime(self, d, a, scratch) -> None:
        times_sigmoid_prime(d, a, d.dtype.type(1))

    def subtract_sums(self, w, g, r0: int = 0) -> None:
        subtract_sums(w, g, r0)

    def warm(self, dtype) -> None:
        """Compile (or load from the cache) every kernel for ``dtype``, on tiny arrays."""
        z = np.zeros((1, 1), dtype)
        b = np.zeros(1, dtype)
        self.bias_sigmoid(z, b)
        self.output_delta(z, z, z, None, 1.0)
        self.times_sigmoid_prime(z, z, None)
        self.subtract_sums(z, np.zeros((2, 2, 1), dtype), 1)

"""The compiled kernels of the ``numba`` backend (imported only when that backend is built).

Kept in their own module so that importing ``implementations.numba_prange``
stays cheap (the core's rule) while the kernels are module-level functions:
``cache=True`` writes their machine code next to this file (``__pycache__``),
so a new process loads them instead of compiling, and one process compiles
each (dtype, number of layers, kernel) combination once.

Layout of the per-thread work space (``P`` thread-batches, one per thread):

* ``xs[p]``, ``ys[p]``: the thread's examples gathered from the data;
* ``acts[l][p]``, ``deltas[l][p]``: activations and deltas of layer ``l``;
* ``G[l][p]``, ``gb[l][p]``: the thread's private sum of weight and bias gradients.

Every one of them is a 3-D array ``(P, rows + pad, cols)``: the ``pad`` rows
that no thread touches keep at least 64 bytes between one thread's data and
the next, so no cache line is written by two threads (no false sharing).
"""
from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import get_cython_function_address, intrinsic

from pgdbench.core.fused_numba import vexp

# Reassociation lets LLVM vectorise the dot-product reductions; contraction
# allows FMAs. No finite-math flags: sigmoid relies on exp overflowing to inf.
# Elementwise code takes error_model="numpy": no zero-division check, which would stop vectorisation.
FASTMATH = {"reassoc", "contract"}
ELEMENTWISE = dict(cache=True, fastmath={"contract"}, error_model="numpy")


# -- dense kernels written out (kernel="loops") --------------------------------
# Blocked by 4 rows so that each row of W, loaded once into L1, serves four
# examples; the innermost loops are unit-stride and vectorised by LLVM.

@njit(cache=True, fastmath=FASTMATH)
def mm_loops(A, W, Z):
    """Z = A @ W for A (n, k), W (k, m)."""
    n, k = A.shape
    m = W.shape[1]
    i = 0
    while i < n:
        r = min(4, n - i)
        Z[i:i + r, :] = 0
        if r == 4:
            z0, z1, z2, z3 = Z[i], Z[i + 1], Z[i + 2], Z[i + 3]
            for kk in range(k):
                w = W[kk]
                a0, a1, a2, a3 = A[i, kk], A[i + 1, kk], A[i + 2, kk], A[i + 3, kk]
                for j in range(m):
                    wj = w[j]
                    z0[j] += a0 * wj
                    z1[j] += a1 * wj
                    z2[j] += a2 * wj
                    z3[j] += a3 * wj
        else:
            for ii in range(i, i + r):
                z = Z[ii]
                for kk in range(k):
                    w = W[kk]
                    a = A[ii, kk]
                    for j in range(m):
                        z[j] += a * w[j]
        i += r


@njit(cache=True, fastmath=FASTMATH)
def mm_nt_loops(D, W, out):
    """out = D @ W.T for D (n, m), W (k, m): dot products along W's rows."""
    n, m = D.shape
    k = W.shape[0]
    i = 0
    while i < n:
        r = min(4, n - i)
        if r == 4:
            d0, d1, d2, d3 = D[i], D[i + 1], D[i + 2], D[i + 3]
            for kk in range(k):
                w = W[kk]
                s0 = s1 = s2 = s3 = D[i, 0] * 0
                for j in range(m):
                    wj = w[j]
                    s0 += d0[j] * wj
                    s1 += d1[j] * wj
                    s2 += d2[j] * wj
                    s3 += d3[j] * wj
                out[i, kk] = s0
                out[i + 1, kk] = s1
                out[i + 2, kk] = s2
                out[i + 3, kk] = s3
        else:
            for ii in range(i, i + r):
                d = D[ii]
                for kk in range(k):
                    w = W[kk]
                    s = D[ii, 0] * 0
                    for j in range(m):
                        s += d[j] * w[j]
                    out[ii, kk] = s
        i += r


@njit(cache=True, fastmath=FASTMATH)
def mm_tn_loops(A, D, G):
    """G = A.T @ D for A (n, k), D (n, m): the sum over examples of the outer products a δᵀ."""
    n, k = A.shape
    m = D.shape[1]
    kk = 0
    while kk < k:
        r = min(4, k - kk)
        G[kk:kk + r, :] = 0
        if r == 4:
            g0, g1, g2, g3 = G[kk], G[kk + 1], G[kk + 2], G[kk + 3]
            for i in range(n):
                d = D[i]
                a0, a1, a2, a3 = A[i, kk], A[i, kk + 1], A[i, kk + 2], A[i, kk + 3]
                for j in range(m):
                    dj = d[j]
                    g0[j] += a0 * dj
                    g1[j] += a1 * dj
                    g2[j] += a2 * dj
                    g3[j] += a3 * dj
        else:
            for q in range(kk, kk + r):
                g = G[q]
                for i in range(n):
                    d = D[i]
                    a = A[i, q]
                    for j in range(m):
                        g[j] += a * d[j]
        kk += r


# -- W ← W + α Aᵀ D on a block of W's rows (update="rows") ---------------------
# np.dot cannot accumulate (no β), so the BLAS variant calls SciPy's GEMM (the
# one numba's np.dot uses) directly. Fortran sees the C-ordered W as Wᵀ, so
# W[r0:r1] += α A[:, r0:r1]ᵀ D is Wᵀ[:, r0:r1] += α Dᵀ A[:, r0:r1]: gemm("N", "T").

# Called by symbol name (registered with LLVM on import), not through a ctypes
# pointer: compiled code that holds a pointer cannot be cached.
for _name in ("sgemm", "dgemm"):
    llvm.add_symbol(f"pgdbench_{_name}", get_cython_function_address("scipy.linalg.cython_blas", _name))
_GEMM = types.void(*([types.voidptr] * 13))
_sgemm = types.ExternalFunction("pgdbench_sgemm", _GEMM)
_dgemm = types.ExternalFunction("pgdbench_dgemm", _GEMM)


@njit(cache=True)
def update_rows_blas(W, r0, r1, A, D, alpha):
    m, n_in = A.shape
    n_out = D.shape[1]
    ints = np.empty(6, np.int32)  # M, N, K, lda, ldb, ldc (Fortran passes everything by address)
    ints[0], ints[1], ints[2], ints[3], ints[4], ints[5] = n_out, r1 - r0, m, n_out, n_in, n_out
    flags = np.empty(2, np.uint8)
    flags[0], flags[1] = 78, 84   # "N", "T"
    ab = np.empty(2, W.dtype)
    ab[0], ab[1] = alpha, 1       # α, β = 1
    if W.itemsize == 4:
        _sgemm(flags[0:].ctypes, flags[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
               ab[0:].ctypes, D.ctypes, ints[3:].ctypes, A[0, r0:].ctypes, ints[4:].ctypes, ab[1:].ctypes,
               W[r0].ctypes, ints[5:].ctypes)
    else:
        _dgemm(flags[0:].ctypes, flags[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
               ab[0:].ctypes, D.ctypes, ints[3:].ctypes, A[0, r0:].ctypes, ints[4:].ctypes, ab[1:].ctypes,
               W[r0].ctypes, ints[5:].ctypes)


@njit(cache=True, fastmath=FASTMATH)
def update_rows_loops(W, r0, r1, A, D, alpha):
    m = A.shape[0]
    cols = W.shape[1]
    for r in range(r0, r1):
        w = W[r]
        for i in range(m):
            a = alpha * A[i, r]
            d = D[i]
            for j in range(cols):
                w[j] += a * d[j]


# -- the GEMM provider's CBLAS (option gemm) -------------------------------------
# Compiled code that holds a pointer cannot be cached, and a provider's library should be loaded only when it is
# asked for. So each provider's cblas_?gemm is called through a *slot*: a pointer-sized variable in this process,
# registered with LLVM under a fixed name (the name is what cached machine code refers to), and filled with the
# function's address when the backend is built with that provider (:func:`fill_slots`). A provider that was never
# asked for keeps an empty slot, which no code path can reach (the backend refuses an unavailable provider).
NPDOT, OPENBLAS, MKL = 0, 1, 2        # gemm=numpy: numba's np.dot, which calls SciPy's bundled BLAS
PROVIDER_IDS = {"numpy": NPDOT, "openblas": OPENBLAS, "mkl": MKL}
_SLOTS = {(name, prefix): ctypes.c_void_p(0) for name in ("openblas", "mkl") for prefix in "sd"}
for (_name, _prefix), _slot in _SLOTS.items():
    llvm.add_symbol(f"pgdbench_{_name}_{_prefix}gemm_slot", ctypes.addressof(_slot))


def fill_slots(provider) -> None:
    """Put ``provider``'s ?gemm addresses into its slots (a no-op for gemm=numpy)."""
    for prefix, dtype in (("s", np.float32), ("d", np.float64)):
        if (provider.name, prefix) in _SLOTS:
            _SLOTS[provider.name, prefix].value = ctypes.cast(provider._fn[np.dtype(dtype)], ctypes.c_void_p).value


def _slot_call(name: str, prefix: str, index_bits: int):
    """A compiled call of cblas_?gemm through the slot of (provider, s|d), with ``index_bits``-bit integers
    (NumPy's OpenBLAS: ILP64; libmkl_rt: LP64)."""
    real = types.float32 if prefix == "s" else types.float64
    slot = f"pgdbench_{name}_{prefix}gemm_slot"

    @intrinsic
    def call(typingctx, order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        i64, ptr = types.int64, types.uintp
        sig = types.void(types.int32, types.int32, types.int32, i64, i64, i64, real, ptr, i64, ptr, i64, real, ptr,
                         i64)

        def codegen(context, builder, signature, args):
            i32, index, void_p = ir.IntType(32), ir.IntType(index_bits), ir.IntType(8).as_pointer()
            fl = context.get_value_type(real)
            fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, index, index, index, fl, void_p, index, void_p,
                                                   index, fl, void_p, index])
            gv = builder.module.globals.get(slot) or ir.GlobalVariable(builder.module, void_p, name=slot)
            fn = builder.bitcast(builder.load(gv), fnty.as_pointer())
            o, ta_, tb_, m_, n_, k_, al, pa, lda_, pb, ldb_, be, pc, ldc_ = args

            def idx(v):
                return builder.trunc(v, index) if index_bits < 64 else v

            builder.call(fn, [o, ta_, tb_, idx(m_), idx(n_), idx(k_), al, builder.inttoptr(pa, void_p), idx(lda_),
                              builder.inttoptr(pb, void_p), idx(ldb_), be, builder.inttoptr(pc, void_p), idx(ldc_)])
            return context.get_dummy_value()

        return sig, codegen

    return call


_ob_s, _ob_d = _slot_call("openblas", "s", 64), _slot_call("openblas", "d", 64)
_mkl_s, _mkl_d = _slot_call("mkl", "s", 32), _slot_call("mkl", "d", 32)


@njit(cache=True)
def mm(provider, A, trans_a, B, trans_b, C, alpha, beta):
    """C ← α·op(A)·op(B) + β·C with the provider's CBLAS (row-major; op(X) = Xᵀ where trans_x). A, B and C
    are 2-D arrays whose rows are contiguous (blocks of rows of the work space are)."""
    M, N = C.shape
    K = A.shape[0] if trans_a else A.shape[1]
    if M == 0 or N == 0:
        return
    size = C.itemsize
    lda, ldb, ldc = max(A.strides[0] // size, 1), max(B.strides[0] // size, 1), max(C.strides[0] // size, N)
    ta = 112 if trans_a else 111
    tb = 112 if trans_b else 111
    a, b, c = A.ctypes.data, B.ctypes.data, C.ctypes.data
    if provider == OPENBLAS:
        if size == 4:
            _ob_s(101, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc)
        else:
            _ob_d(101, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc)
    else:
        if size == 4:
            _mkl_s(101, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc)
        else:
            _mkl_d(101, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc)


# -- elementwise work, fused -------------------------------------------------

@njit(**ELEMENTWISE)
def bias_sigmoid(Z, b, one):
    """Z ← σ(Z + b) in place (with the vectorisable exp of pgdbench.core.fused_numba)."""
    n, m = Z.shape
    for i in range(n):
        z = Z[i]
        for j in range(m):
            z[j] = one / (one + vexp(-(z[j] + b[j])))


@njit(cache=True, fastmath=FASTMATH)
def bias_sigmoid_libm(Z, b, one):
    """Z ← σ(Z + b) with numba's exp (option exp=libm): a call into the C library per element, and a division
    checked for zero, so the loop stays scalar. Kept to measure what the vectorisable exp gains."""
    n, m = Z.shape
    for i in range(n):
        z = Z[i]
        for j in range(m):
            z[j] = one / (one + np.exp(-(z[j] + b[j])))


@njit(**ELEMENTWISE)
def output_delta(A, Y, D, one):
    """D = (a − y) ∘ a ∘ (1 − a): ∂(½‖a − y‖²)/∂z with σ' taken from the stored activation."""
    n, m = A.shape
    for i in range(n):
        for j in range(m):
            a = A[i, j]
            D[i, j] = (a - Y[i, j]) * a * (one - a)


@njit(**ELEMENTWISE)
def times_sigmoid_prime(D, A, one):
    n, m = D.shape
    for i in range(n):
        d, a = D[i], A[i]
        for j in range(m):
            d[j] *= a[j] * (one - a[j])


@njit(cache=True, fastmath=FASTMATH)
def column_sums(D, out):
    n, m = D.shape
    out[:m] = 0
    for i in range(n):
        d = D[i]
        for j in range(m):
            out[j] += d[j]


# -- one thread-batch: forward, backward, private gradient sums --------------

@njit(cache=True, fastmath=FASTMATH)
def forward_thread(p, X, idx, Ws, bs, xs, acts, use_blas, provider, vector_exp, one):
    """Gather the examples ``idx`` into xs[p] and propagate them forward (Algorithm 3) into acts[l][p]."""
    m = idx.shape[0]
    x = xs[p, :m]
    for i in range(m):
        x[i, :] = X[idx[i]]
    a_prev = x
    for l in range(len(Ws)):
        z = acts[l][p, :m]
        if use_blas and provider == NPDOT:
            np.dot(a_prev, Ws[l], z)
        elif use_blas:
            mm(provider, a_prev, False, Ws[l], False, z, 1.0, 0.0)
        else:
            mm_loops(a_prev, Ws[l], z)
        if vector_exp:
            bias_sigmoid(z, bs[l], one)
        else:
            bias_sigmoid_libm(z, bs[l], one)
        a_prev = z


@njit(cache=True, fastmath=FASTMATH)
def thread_batch(p, X, Y, idx, Ws, bs, xs, ys, acts, deltas, G, gb, use_blas, provider, vector_exp, weight_sums,
                 one):
    """Gradient sums of the examples ``idx`` into G[l][p] and gb[l][p] (Algorithm 5, one thread's part).

    With ``weight_sums`` False the weight-gradient sums are left out (update="rows" applies them later).
    """
    m = idx.shape[0]
    forward_thread(p, X, idx, Ws, bs, xs, acts, use_blas, provider, vector_exp, one)
    x, y = xs[p, :m], ys[p, :m]
    for i in range(m):
        y[i, :] = Y[idx[i]]
    L = len(Ws)
    output_delta(acts[L - 1][p, :m], y, deltas[L - 1][p, :m], one)
    for l in range(L - 1, -1, -1):                       # backward (Algorithm 4)
        d = deltas[l][p, :m]
        a_below = x if l == 0 else acts[l - 1][p, :m]
        if l > 0:                                        # δ_{l-1} = (W_l δ_l) ∘ σ'(z_{l-1})
            below = deltas[l - 1][p, :m]
            if use_blas and provider == NPDOT:
                np.dot(d, Ws[l].T, below)
            elif use_blas:
                mm(provider, d, False, Ws[l], True, below, 1.0, 0.0)
            else:
                mm_nt_loops(d, Ws[l], below)
            times_sigmoid_prime(below, a_below, one)
        if weight_sums:
            g = G[l][p, :a_below.shape[1]]
            if use_blas and provider == NPDOT:           # Σ_i a_{l-1} δ_lᵀ into the private sum
                np.dot(a_below.T, d, g)
            elif use_blas:
                mm(provider, a_below, True, d, False, g, 1.0, 0.0)
            else:
                mm_tn_loops(a_below, d, g)
        column_sums(d, gb[l][p, 0])


@njit(cache=True, fastmath=FASTMATH)
def sum_rows(S, r, P):
    """S[0, r] += S[1, r] + ... + S[P-1, r]: the reduction of P threads' private sums, one row."""
    acc = S[0, r]
    for q in range(1, P):
        src = S[q, r]
        for j in range(acc.shape[0]):
            acc[j] += src[j]
    return acc


@njit(cache=True, fastmath=FASTMATH)
def subtract(dst, scale, src):
    for j in range(dst.shape[0]):
        dst[j] -= scale * src[j]


TRAIN, GRADIENTS, FORWARD = 0, 1, 2


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def run(mode, X, Y, order, start, stop, batch_size, Ws, bs, xs, ys, acts, deltas, G, gb, n_threads, use_blas,
        provider, vector_exp, rows_update, learning_rate, scratch, out):
    """The one parallel kernel (one compilation per dtype), in three modes:

    TRAIN:     minibatch GD over the examples order[start:stop] in steps of batch_size;
    GRADIENTS: the summed (not averaged) gradients of order[start:stop] (one batch) left in G[l][0], gb[l][0];
    FORWARD:   a_L of order[start:stop] into out, batch_size rows at a time.

    Ws, bs, acts, deltas, G, gb are typed lists (one entry per layer), so that
    nets of any depth share the compiled code. ``scratch`` is a 1-element
    array of the parameters' dtype (keeps η/B, and so the update, in that precision).
    """
    one = Ws[0][0, 0] * 0 + 1                            # 1 in the parameters' dtype
    L = len(Ws)
    rows_update = rows_update and mode == TRAIN
    for s in range(start, stop, batch_size):
        e = min(s + batch_size, stop)
        n = e - s
        P = min(n_threads, n)
        # thread-batches: contiguous runs of the minibatch whose sizes differ by at most one
        for p in prange(P):
            lo = s + (n * p) // P
            hi = s + (n * (p + 1)) // P
            if mode == FORWARD:
                forward_thread(p, X, order[lo:hi], Ws, bs, xs, acts, use_blas, provider, vector_exp, one)
                out[lo - start:hi - start] = acts[L - 1][p, :hi - lo]
            else:
                thread_batch(p, X, Y, order[lo:hi], Ws, bs, xs, ys, acts, deltas, G, gb, use_blas, provider,
                             vector_exp, not rows_update, one)
        if mode == FORWARD:
            continue
        scratch[0] = learning_rate / n                   # η/B
        scale = scratch[0]
        for l in range(L):
            W, b, Gl, gbl = Ws[l], bs[l], G[l], gb[l]
            rows = W.shape[0]
            if rows_update:
                # no private weight sums: thread q applies the whole minibatch's gradient to its block of rows
                nb = min(n_threads, rows)
                for q in prange(nb + 1):
                    if q < nb:
                        r0, r1 = (rows * q) // nb, (rows * (q + 1)) // nb
                        for p in range(P):
                            m = (n * (p + 1)) // P - (n * p) // P
                            A = xs[p, :m] if l == 0 else acts[l - 1][p, :m]
                            if use_blas and provider == NPDOT:
                                update_rows_blas(W, r0, r1, A, deltas[l][p, :m], -scale)
                            elif use_blas:
                                mm(provider, A[:, r0:r1], True, deltas[l][p, :m], False, W[r0:r1], -scale, 1.0)
                            else:
                                update_rows_loops(W, r0, r1, A, deltas[l][p, :m], -scale)
                    else:
                        subtract(b, scale, sum_rows(gbl, 0, P))
            else:
                # Algorithm 5: reduction of the P private sums into G[l][0], fused with the update,
                # split over weight rows (one more iteration for the biases)
                for r in prange(rows + 1):
                    if r < rows:
                        acc = sum_rows(Gl, r, P)
                        if mode == TRAIN:
                            subtract(W[r], scale, acc)
                    else:
                        acc = sum_rows(gbl, 0, P)
                        if mode == TRAIN:
                            subtract(b, scale, acc)


@njit(parallel=True, cache=True)
def touch(n):
    """A trivial parallel loop: starts the thread pool so that threading_layer() can be read."""
    out = np.zeros(n)
    for i in prange(n):
        out[i] = i
    return out.sum()

"""GEMM providers: which BLAS multiplies the matrices of the shared training step (``-o gemm=...``).

The step (:class:`pgdbench.core.backprop.Backprop`) asks a provider for two things:

* ``matmul(a, b, out)``: out ← a·b;
* ``update(a, b, c, alpha)``: c ← c + α·a·b, one GEMM with β = 1, where the
  provider can (:attr:`Gemm.fused_update`): the weight update folded into the
  gradient's GEMM, so that no gradient matrix is written and read back.

``a`` and ``b`` may be transposed views (``x.T``) and blocks of columns of
C-ordered arrays: both are passed to CBLAS as they lie in memory, with their
leading dimension, never copied.

Providers (:func:`available`, :func:`get`):

* ``openblas``: the OpenBLAS that NumPy's wheels bundle, called through its
  own CBLAS entry points (found through threadpoolctl's record of the library
  NumPy loaded; ILP64, with the ``scipy_`` symbol prefix). No second library
  is loaded, so no second thread pool exists. The default where NumPy's BLAS
  is OpenBLAS;
* ``mkl``: oneMKL's single dynamic library ``libmkl_rt`` (``pip install mkl``
  or the ``mkl`` extra), through ctypes, LP64 interface. Its OpenMP threads
  are set per calling thread (``mkl_set_num_threads_local``), so example
  workers each get exactly the threads they are meant to have. Intel's
  library takes its best code paths on Intel processors; on AMD it is
  measured, not assumed (docs/cpu-backends.md);
* ``numpy``: ``np.matmul``, whatever BLAS NumPy links, and no β = 1 (the
  update is then a separate pass): the step as it was before providers.

ctypes releases the GIL for the duration of a foreign call, so example workers
multiply concurrently, as they do through NumPy.

Thread counts: :meth:`Gemm.limit` sets the library's threads for every thread
of the process for the duration of an epoch (threadpoolctl, as before);
:meth:`Gemm.local_threads` sets them for the calling thread only, where the
library can (oneMKL), and otherwise does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import os
import sys
from contextlib import contextmanager
from typing import Optional

import numpy as np

from pgdbench.errors import UsageError

#: CBLAS enumerations (cblas.h): row-major order; no transpose, transpose.
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

#: The providers the suite knows, in the order ``auto`` tries them.
NAMES = ("openblas", "mkl", "numpy")


class Gemm:
    """``np.matmul`` (the ``numpy`` provider) and the interface every provider has."""

    name = "numpy"
    #: Whether :meth:`update` is one GEMM with β = 1 (else a product and a subtraction).
    fused_update = False

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        """out ← a·b."""
        np.matmul(a, b, out=out)

    def update(self, a: np.ndarray, b: np.ndarray, c: np.ndarray, alpha: float,
               scratch: Optional[np.ndarray] = None) -> None:
        """c ← c + α·a·b (``scratch``, of c's shape, is used where the provider cannot accumulate; allocated if
        not given)."""
        if scratch is None:
            scratch = np.empty_like(c)
        np.matmul(a, b, out=scratch)
        if alpha != 1:
            scratch *= alpha
        c += scratch

    @contextmanager
    def limit(self, threads: int):
        """The library's threads set to ``threads`` for the whole process (and the calling thread's own setting,
        where the library has one), restored afterwards."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads, user_api="blas"):
            before = self.local_threads(threads)
            try:
                yield
            finally:
                self.local_threads(before)

    def local_threads(self, threads: int) -> int:
        """The library's threads for the calling thread only, where it has such a setting (else nothing); returns
        the previous setting (0: none, the process's setting applies)."""
        return 0

    def info(self) -> dict:
        """Provider, library, version, kernel architecture, threading layer: recorded with results."""
        lib = numpy_blas()
        return {"provider": self.name, "library": lib.get("internal_api") if lib else "unknown",
                "version": lib.get("version") if lib else None,
                "architecture": lib.get("architecture") if lib else None,
                "threading": lib.get("threading_layer") if lib else None, "fused_update": self.fused_update}


def _operand(x: np.ndarray):
    """(CBLAS transpose flag, leading dimension) of a 2-D matrix as it lies in memory, or None if neither a
    row-major block nor the transpose of one."""
    size = x.itemsize
    rows, cols = x.shape
    s0, s1 = x.strides
    if (s1 == size or cols == 1) and s0 % size == 0 and s0 >= size * max(cols, 1):
        return _NO_TRANS, s0 // size
    if (s0 == size or rows == 1) and s1 % size == 0 and s1 >= size * max(rows, 1):
        return _TRANS, s1 // size
    return None


class CblasGemm(Gemm):
    """A CBLAS ``?gemm`` found in a shared library, called through ctypes."""

    fused_update = True

    def __init__(self, name: str, lib: ctypes.CDLL, sgemm: str, dgemm: str, int_type):
        self.name = name
        self.lib = lib
        self._fn = {}
        for dtype, symbol, real in ((np.dtype(np.float32), sgemm, ctypes.c_float),
                                    (np.dtype(np.float64), dgemm, ctypes.c_double)):
            fn = getattr(lib, symbol)
            fn.restype = None
            fn.argtypes = ([ctypes.c_int] * 3 + [int_type] * 3
                           + [real, ctypes.c_void_p, int_type, ctypes.c_void_p, int_type, real, ctypes.c_void_p,
                              int_type])
            self._fn[dtype] = fn

    def _gemm(self, a, b, c, alpha: float, beta: float) -> bool:
        """c ← α·a·b + β·c through CBLAS; False (nothing done) for what it does not take."""
        fn = self._fn.get(c.dtype)
        if fn is None or a.dtype != c.dtype or b.dtype != c.dtype or a.ndim != 2 or b.ndim != 2 or c.ndim != 2:
            return False
        m, k = a.shape
        n = b.shape[1]
        if m == 0 or n == 0 or k == 0 or c.strides[1] != c.itemsize and n > 1:
            return False
        op_a, op_b = _operand(a), _operand(b)
        if op_a is None or op_b is None or c.strides[0] % c.itemsize:
            return False
        ldc = c.strides[0] // c.itemsize
        fn(_ROW_MAJOR, op_a[0], op_b[0], m, n, k, alpha, a.ctypes.data, op_a[1], b.ctypes.data, op_b[1], beta,
           c.ctypes.data, max(ldc, n))
        return True

    def matmul(self, a, b, out):
        if not self._gemm(a, b, out, 1.0, 0.0):
            np.matmul(a, b, out=out)

    def update(self, a, b, c, alpha, scratch=None):
        if not self._gemm(a, b, c, alpha, 1.0):
            super().update(a, b, c, alpha, scratch)


class OpenBlasGemm(CblasGemm):
    def __init__(self, record: dict):
        lib = ctypes.CDLL(record["filepath"])
        prefix = "scipy_" if record.get("prefix") == "libscipy_openblas" else ""
        suffix = "64_" if hasattr(lib, f"{prefix}cblas_sgemm64_") else ""
        int_type = ctypes.c_int64 if suffix else ctypes.c_int
        super().__init__("openblas", lib, f"{prefix}cblas_sgemm{suffix}", f"{prefix}cblas_dgemm{suffix}", int_type)
        self.record = record

    def info(self):
        r = self.record
        return {"provider": self.name, "library": "openblas", "version": r.get("version"),
                "architecture": r.get("architecture"), "threading": r.get("threading_layer"),
                "fused_update": True, "path": r.get("filepath")}


#: oneMKL's OpenMP threads spin this long (ms) after each call before they sleep; the default, 200 ms, keeps a
#: core busy while the step's other pool (the row-split elementwise passes) wants it. Set when oneMKL is loaded,
#: unless already set; Intel's OpenMP reads it when it starts, and results record it (threading_environment).
BLOCKTIME = "0"


class MklGemm(CblasGemm):
    def __init__(self, path: str):
        if "KMP_BLOCKTIME" not in os.environ and not _iomp_loaded():
            os.environ["KMP_BLOCKTIME"] = BLOCKTIME
        lib = ctypes.CDLL(path)
        super().__init__("mkl", lib, "cblas_sgemm", "cblas_dgemm", ctypes.c_int)
        self.path = path
        self._set_local = lib.MKL_Set_Num_Threads_Local
        self._set_local.argtypes = [ctypes.c_int]
        self._set_local.restype = ctypes.c_int

    def local_threads(self, threads: int) -> int:
        return self._set_local(threads)

    def info(self):
        return {"provider": self.name, "library": "mkl", **mkl_version(self.lib), "fused_update": True,
                "path": self.path}


class _MKLVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("update", ctypes.c_int),
                ("status", ctypes.c_char_p), ("build", ctypes.c_char_p), ("processor", ctypes.c_char_p),
                ("platform", ctypes.c_char_p)]


def mkl_version(lib) -> dict:
    """oneMKL's version and the code path it chose for this processor (``mkl_get_version``)."""
    v = _MKLVersion()
    lib.MKL_Get_Version(ctypes.byref(v))
    layer = os.environ.get("MKL_THREADING_LAYER", "intel (default)")
    return {"version": f"{v.major}.{v.minor}.{v.update} build {v.build.decode()}",
            "architecture": v.processor.decode(), "threading": layer,
            "blocktime_ms": os.environ.get("KMP_BLOCKTIME", "200 (default)")}


def _iomp_loaded() -> bool:
    """Whether Intel's OpenMP runtime is already in the process (then KMP_BLOCKTIME would not take effect)."""
    from threadpoolctl import threadpool_info

    return any(r.get("internal_api") == "openmp" and "iomp" in os.path.basename(r.get("filepath", ""))
               for r in threadpool_info())


# -- discovery ------------------------------------------------------------------

def numpy_blas() -> Optional[dict]:
    """threadpoolctl's record of the BLAS that NumPy itself loaded (None if it cannot tell)."""
    from threadpoolctl import threadpool_info

    for record in threadpool_info():
        if record.get("user_api") == "blas" and "numpy" in os.path.dirname(record.get("filepath", "")):
            return record
    blas = [r for r in threadpool_info() if r.get("user_api") == "blas"]
    return blas[0] if len(blas) == 1 else None


def mkl_path() -> Optional[str]:
    """libmkl_rt: in this environment's lib folder (where ``pip install mkl`` puts it), else on the loader's path."""
    for folder in (os.path.join(sys.prefix, "lib"), os.path.join(sys.base_prefix, "lib")):
        found = sorted(glob.glob(os.path.join(folder, "libmkl_rt.so*")) + glob.glob(os.path.join(folder,
                                                                                                  "libmkl_rt*.dylib")))
        if found:
            return found[0]
    return ctypes.util.find_library("mkl_rt")


@functools.lru_cache(maxsize=None)
def _probe(name: str):
    """(provider, None) or (None, why it is unavailable here)."""
    if name == "numpy":
        return Gemm(), None
    if name == "openblas":
        record = numpy_blas()
        if record is None or record.get("internal_api") != "openblas":
            what = record.get("internal_api") if record else "not known"
            return None, f"NumPy's BLAS here is {what}, not OpenBLAS (use gemm=numpy for it)"
        try:
            return OpenBlasGemm(record), None
        except (OSError, AttributeError) as exc:
            return None, f"NumPy's OpenBLAS has no CBLAS gemm entry point ({exc})"
    if name == "mkl":
        path = mkl_path()
        if path is None:
            return None, "oneMKL not found (pip install mkl, or pip install -e '.[mkl]')"
        try:
            return MklGemm(path), None
        except (OSError, AttributeError) as exc:
            return None, f"{path} cannot be loaded or lacks cblas_sgemm ({exc})"
    return None, f"unknown GEMM provider {name!r}"


def available() -> dict[str, Optional[str]]:
    """Every known provider → None if it can be used here, else why not."""
    return {name: _probe(name)[1] for name in NAMES}


def default_name() -> str:
    """``auto``: NumPy's bundled OpenBLAS where NumPy has one, else NumPy's own matmul."""
    return "openblas" if _probe("openblas")[0] is not None else "numpy"


def get(name: str) -> Gemm:
    """The provider called ``name`` (``auto`` = :func:`default_name`); a one-line UsageError naming the known
    providers, and why one is unavailable, otherwise."""
    if name == "auto":
        name = default_name()
    if name not in NAMES:
        raise UsageError(f"unknown GEMM provider {name!r}; known: {', '.join(('auto',) + NAMES)}")
    provider, why = _probe(name)
    if provider is None:
        raise UsageError(f"GEMM provider {name!r} is not available here: {why}")
    return provider


def describe_all() -> list[dict]:
    """Provider, whether it is available (and why not), and its :meth:`Gemm.info`: for ``pgdbench list -v``."""
    rows = []
    for name, why in available().items():
        info = get(name).info() if why is None else {}
        rows.append({"provider": name, "available": "yes" if why is None else f"no: {why}", **info})
    return rows

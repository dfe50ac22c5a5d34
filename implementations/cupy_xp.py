"""``cupy``: cuBLAS through CuPy -- the counterpart of the paper's "Theano GPU".

The whole step is :class:`pgdbench.core.backprop.Backprop` (through :mod:`implementations.xp_mlp`), the array code
shared with NumPy; this module only supplies CuPy as the namespace and checks that a CUDA device is there. The
training set, parameters and buffers live on the GPU; the epoch order is uploaded once per epoch and minibatches
are gathered on the device. ``train_epoch`` synchronises the device before it returns. Install with ``pip install
'.[cupy]'`` (the cupy-cuda13x wheel).
"""
from __future__ import annotations

from implementations.xp_mlp import XpTrainer
from pgdbench.core.backprop import ArrayNamespace
from pgdbench.core.protocol import AVAILABLE, module_missing, unavailable
from pgdbench.errors import BackendUnavailable, UsageError


def cupy_namespace(device: int) -> ArrayNamespace:
    import cupy
    from cupyx.scipy.special import expit

    n = cupy.cuda.runtime.getDeviceCount()
    if not 0 <= device < n:
        raise UsageError(f"CUDA device {device} does not exist; this machine has {n}")
    cupy.cuda.Device(device).use()

    def sigmoid(z, bias):
        z += bias
        return expit(z, out=z)

    return ArrayNamespace(cupy, sigmoid, lambda d, out: cupy.sum(d, axis=0, out=out), cupy.asnumpy,
                          lambda: cupy.cuda.get_current_stream().synchronize())


class CupyTrainer(XpTrainer):
    description = "cuBLAS through CuPy (the paper's Theano GPU counterpart); array code shared with NumPy"
    options = {"device": 0}

    @classmethod
    def availability(cls):
        if module_missing("cupy") is not None:
            return unavailable("package cupy not installed (pip install -e '.[cupy]')")
        try:
            import cupy

            ok = cupy.cuda.is_available()
        except Exception as exc:           # a CuPy built for another CUDA, missing libraries, ...
            return unavailable(f"cupy cannot use CUDA here ({type(exc).__name__}: {exc})")
        return AVAILABLE if ok else unavailable("no CUDA device (cupy.cuda.is_available() is False)")

    def namespace(self):
        avail = self.availability()
        if not avail:
            raise BackendUnavailable(f"cupy: {avail.reason}")
        return cupy_namespace(self.opts["device"])

    def metadata(self):
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(self.opts["device"])
        name = props["name"]
        return {"device_name": name.decode() if isinstance(name, bytes) else str(name), "device_kind": "gpu",
                "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion()}

"""``pycuda``: the tiled kernels of ``kernels/mlp_step.cluda`` through PyCUDA on an NVIDIA GPU.

The same kernel source and the same runner (``tiled_runner``) as the
``opencl`` backend; only the device API below is CUDA's. It cannot run on a
machine without the CUDA driver (PyCUDA does not even build there), so its
logic is tested through ``opencl`` on PoCL and its source through ``nvcc``.

Timing: ``train_epoch`` records CUDA events around the epoch's launches
(``last_epoch_device_seconds``); host<->device copies happen only in
``load_data`` (timed apart, ``load_data_seconds`` in the metadata) and once
per epoch for the order of examples (``order_upload_seconds``).
Install with ``pip install '.[cuda]'`` where the CUDA toolkit and driver are.
"""
from __future__ import annotations

import numpy as np

from implementations.tiled_runner import SIGNATURES, TiledTrainer
from pgdbench.core.protocol import AVAILABLE, module_missing, unavailable
from pgdbench.errors import BackendUnavailable, UsageError


class CudaDevice:
    """The device API of tiled_runner for CUDA: a context of its own, the default stream, events for time."""

    def __init__(self, index: int, source: str, dtype):
        import pycuda.driver as drv
        from pycuda.compiler import SourceModule

        self.drv = drv
        drv.init()
        if not 0 <= index < drv.Device.count():
            raise UsageError(f"CUDA device {index} does not exist; this machine has {drv.Device.count()}")
        device = drv.Device(index)
        self.name, self.kind = device.name(), "gpu"
        self.ctx = device.make_context()
        try:
            module = SourceModule(source, no_extern_c=True)   # KERNEL already declares extern "C"
            real = "f" if np.dtype(dtype) == np.float32 else "d"
            self.kernels = {}
            for name, sig in SIGNATURES.items():
                f = module.get_function(name)
                f.prepare(sig.replace("r", real))
                self.kernels[name] = f
        except Exception:
            self.ctx.pop()
            raise

    def alloc(self, nbytes: int):
        return self.drv.mem_alloc(max(int(nbytes), 1))

    def upload(self, buf, array: np.ndarray) -> None:
        if array.nbytes:
            self.drv.memcpy_htod(buf, np.ascontiguousarray(array))

    def download(self, array: np.ndarray, buf) -> None:
        if array.nbytes:
            self.drv.memcpy_dtoh(array, buf)

    def launch(self, name: str, groups: tuple, local: tuple, args: tuple) -> None:
        self.kernels[name].prepared_call(groups, (local[0], local[1], 1), *args)

    def finish(self) -> None:
        self.ctx.synchronize()

    def timer_start(self):
        start = self.drv.Event()
        start.record()
        return start

    def timer_stop(self, start) -> float:
        end = self.drv.Event()
        end.record()
        end.synchronize()
        return end.time_since(start) / 1e3

    def close(self) -> None:
        self.ctx.synchronize()
        self.ctx.pop()
        self.ctx.detach()


class PyCudaTrainer(TiledTrainer):
    description = "tiled GEMM kernels (shared CUDA/OpenCL source) through PyCUDA on an NVIDIA GPU"
    api = "cuda"
    options = {"tile": 32, "wpt": 4, "device": 0}

    @classmethod
    def availability(cls):
        if module_missing("pycuda") is not None:
            return unavailable("pycuda not installed (pip install '.[cuda]' where the CUDA driver is)")
        try:
            import pycuda.driver as drv

            drv.init()
            if drv.Device.count() == 0:
                return unavailable("no CUDA driver / no GPU (no CUDA device found)")
        except Exception as exc:           # ImportError of the driver library, cuInit failures, ...
            return unavailable(f"no CUDA driver / no GPU ({type(exc).__name__}: {exc})")
        return AVAILABLE

    def open_device(self, source):
        avail = self.availability()
        if not avail:
            raise BackendUnavailable(f"pycuda: {avail.reason}")
        return CudaDevice(self.opts["device"], source, self.dtype)

"""``pycuda``: the tiled kernels of ``kernels/`` through PyCUDA on an NVIDIA GPU.

The same kernel sources and the same runner (``tiled_runner``) as the
``opencl`` and ``cupy-tiled`` backends; only the device API below is
PyCUDA's. PyCUDA builds only where the CUDA driver is (``pip install
'.[cuda]'``, PyCUDA ≥ 2025.1.2 for CUDA 13); without one, its logic is tested
through ``opencl`` on PoCL, its source through ``nvcc``, and its context
handling against a fake driver (tests/test_gpu_runtimes.py).

Contexts: every trainer of a process uses the device's *primary* context --
the one the CUDA runtime, and so CuPy and PyTorch, use too -- retained once
per device and shared (:class:`PrimaryContexts`), released when the last
trainer on that device closes. A trainer pushes it around each call and pops
it on the way out, exceptions included (``active()``), so that between calls
the context stack is as the caller left it: two trainers, or CuPy and PyTorch
in the same process, never see launches or pops meant for another context.

Timing: ``train_epoch`` records CUDA events around the epoch's launches
(``last_epoch_device_seconds``); host<->device copies happen only in
``load_data`` (timed apart, ``load_data_seconds`` in the metadata) and once
per epoch for the order of examples (``order_upload_seconds``).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from implementations.tiled_runner import TiledTrainer
from pgdbench.core.protocol import AVAILABLE, Option, module_missing, unavailable
from pgdbench.errors import BackendUnavailable, UsageError


class PrimaryContexts:
    """The retained primary context of each device, shared by every user in the process, with a user count."""

    def __init__(self):
        self._held = {}
        self._lock = threading.Lock()

    def acquire(self, drv, index: int):
        with self._lock:
            entry = self._held.get(index)
            if entry is None:
                entry = self._held[index] = [drv.Device(index).retain_primary_context(), 0]
            entry[1] += 1
            return entry[0]

    def release(self, index: int) -> None:
        with self._lock:
            entry = self._held[index]
            entry[1] -= 1
            if entry[1] == 0:
                del self._held[index]
                entry[0].detach()          # cuDevicePrimaryCtxRelease: CuPy/torch may still hold it

    def users(self, index: int) -> int:
        with self._lock:
            return self._held[index][1] if index in self._held else 0


PRIMARY_CONTEXTS = PrimaryContexts()


class CudaDevice:
    """The device API of tiled_runner for PyCUDA: the shared primary context, the default stream, events for time.

    ``drv``, ``source_module`` and ``contexts`` default to pycuda.driver,
    pycuda.compiler.SourceModule and the process-wide PRIMARY_CONTEXTS; the
    tests pass fakes.
    """

    def __init__(self, index: int, dtype, *, drv=None, source_module=None, contexts=None):
        if drv is None:
            import pycuda.driver as drv
        if source_module is None:
            from pycuda.compiler import SourceModule as source_module
        self.drv, self._source_module = drv, source_module
        self._contexts = contexts if contexts is not None else PRIMARY_CONTEXTS
        drv.init()
        count = drv.Device.count()
        if not 0 <= index < count:
            raise UsageError(f"CUDA device {index} does not exist; this machine has {count}")
        device = drv.Device(index)
        self.name, self.kind = device.name(), "gpu"
        self.compute_units = int(device.get_attribute(drv.device_attribute.MULTIPROCESSOR_COUNT))
        self.real_code = "f" if np.dtype(dtype) == np.float32 else "d"
        self.kernels, self._modules = {}, []
        self.index = index
        self.ctx = self._contexts.acquire(drv, index)

    @contextmanager
    def active(self):
        """The primary context is current inside, whatever was current outside; popped even on an exception."""
        self.ctx.push()
        try:
            yield
        finally:
            self.drv.Context.pop()

    def build(self, source: str, signatures: dict) -> None:
        module = self._source_module(source, no_extern_c=True)   # KERNEL already declares extern "C"
        self._modules.append(module)
        for name, sig in signatures.items():
            f = module.get_function(name)
            f.prepare(sig.replace("r", self.real_code))
            self.kernels[name] = f

    def alloc(self, nbytes: int):
        return self.drv.mem_alloc(max(int(nbytes), 1))

    def upload(self, buf, array: np.ndarray) -> None:
        if array.nbytes:
            self.drv.memcpy_htod(buf, np.ascontiguousarray(array))

    def download(self, array: np.ndarray, buf) -> None:
        if array.nbytes:
            self.drv.memcpy_dtoh(array, buf)

    def launch(self, name: str, groups: tuple, local: tuple, args: tuple) -> None:
        self.kernels[name].prepared_call(tuple(groups), (local[0], local[1], 1), *args)

    def finish(self) -> None:
        self.drv.Context.synchronize()

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
        """Unload the modules inside the context, then give up this user's hold on it."""
        if self.ctx is None:
            return
        try:
            with self.active():
                self.drv.Context.synchronize()
                self.kernels.clear()
                self._modules.clear()
        finally:
            self.ctx = None
            self._contexts.release(self.index)


class PyCudaTrainer(TiledTrainer):
    description = "tiled GEMM kernels (shared CUDA/OpenCL source) through PyCUDA on an NVIDIA GPU"
    api = "cuda"
    requires = ("pycuda",)
    options = {**TiledTrainer.options, "device": Option(0, minimum=0)}

    @classmethod
    def availability(cls):
        if module_missing(*cls.requires) is not None:
            return unavailable("pycuda not installed (pip install -e '.[cuda]' where the CUDA driver is)")
        try:
            import pycuda.driver as drv

            drv.init()
            if drv.Device.count() == 0:
                return unavailable("no CUDA driver / no GPU (no CUDA device found)")
        except Exception as exc:           # ImportError of the driver library, cuInit failures, ...
            return unavailable(f"no CUDA driver / no GPU ({type(exc).__name__}: {exc})")
        return AVAILABLE

    def open_device(self):
        avail = self.availability()
        if not avail:
            raise BackendUnavailable(f"pycuda: {avail.reason}")
        return CudaDevice(self.opts["device"], self.dtype)

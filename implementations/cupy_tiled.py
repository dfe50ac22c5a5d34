"""``cupy-tiled``: the tiled kernels of ``kernels/`` compiled by NVRTC through CuPy's ``RawModule``.

The same kernel sources and runner (``tiled_runner``) as ``pycuda`` and
``opencl``; this device API needs nothing but the ``cupy-cuda13x`` wheel (no
build, no nvcc: NVRTC compiles the source at run time, and CuPy caches the
binary under ``~/.cupy/kernel_cache``), so the tiled backend runs wherever the
``cupy`` backend runs. CuPy uses the device's primary context through the CUDA
runtime, like PyTorch and like ``pycuda`` since it shares that context.

All launches go to one stream of the trainer's own; ``active()`` makes the
trainer's device and stream current for the duration of a call. Copies wait
for the stream (the runner reuses host arrays right after a copy).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from implementations.cupy_xp import CupyTrainer
from implementations.tiled_runner import TiledTrainer
from pgdbench.core.protocol import Option
from pgdbench.errors import BackendUnavailable, UsageError

#: NVRTC options: the sources are C++ that nvcc also compiles; nothing else is needed.
NVRTC_OPTIONS = ("--std=c++14",)


class CupyDevice:
    """The device API of tiled_runner for CuPy: NVRTC programs, a stream of its own, CUDA events for time.

    ``cupy`` defaults to the real module; the tests pass a fake.
    """

    def __init__(self, index: int, dtype, *, cupy=None):
        if cupy is None:
            import cupy
        self.cp = cupy
        count = cupy.cuda.runtime.getDeviceCount()
        if not 0 <= index < count:
            raise UsageError(f"CUDA device {index} does not exist; this machine has {count}")
        props = cupy.cuda.runtime.getDeviceProperties(index)
        name = props["name"]
        self.name = name.decode() if isinstance(name, bytes) else str(name)
        self.kind = "gpu"
        self.compute_units = int(props["multiProcessorCount"])
        self.device = cupy.cuda.Device(index)
        with self.device:
            self.stream = cupy.cuda.Stream()
        self._convert = {"P": None, "i": np.int32, "r": np.dtype(dtype).type}
        self.kernels, self._modules = {}, []

    @contextmanager
    def active(self):
        with self.device, self.stream:
            yield

    def build(self, source: str, signatures: dict) -> None:
        module = self.cp.RawModule(code=source, options=NVRTC_OPTIONS)
        self._modules.append(module)
        for name, sig in signatures.items():
            # CuPy passes a Python int as a 64-bit integer: convert each scalar to the kernel's type
            kinds = tuple(self._convert[c] for c in sig)
            self.kernels[name] = (module.get_function(name), kinds)

    def alloc(self, nbytes: int):
        return self.cp.empty(max(int(nbytes), 1), dtype=self.cp.uint8)

    def upload(self, buf, array: np.ndarray) -> None:
        if array.nbytes:
            buf[: array.nbytes].set(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
            self.stream.synchronize()

    def download(self, array: np.ndarray, buf) -> None:
        if array.nbytes:
            buf[: array.nbytes].get(out=array.reshape(-1).view(np.uint8))
            self.stream.synchronize()

    def launch(self, name: str, groups: tuple, local: tuple, args: tuple) -> None:
        kernel, kinds = self.kernels[name]
        kernel(tuple(groups), (local[0], local[1], 1),
               tuple(a if k is None else k(a) for a, k in zip(args, kinds)))

    def finish(self) -> None:
        self.stream.synchronize()

    def timer_start(self):
        start = self.cp.cuda.Event()
        start.record(self.stream)
        return start

    def timer_stop(self, start) -> float:
        end = self.cp.cuda.Event()
        end.record(self.stream)
        end.synchronize()
        return self.cp.cuda.get_elapsed_time(start, end) / 1e3

    def close(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()
            self.kernels.clear()
            self._modules.clear()
            self.stream = None


class CupyTiledTrainer(TiledTrainer):
    description = "tiled GEMM kernels (shared CUDA/OpenCL source) compiled by NVRTC through CuPy; any CUDA GPU"
    api = "cuda"
    requires = ("cupy",)
    options = {**TiledTrainer.options, "device": Option(0, minimum=0)}

    @classmethod
    def availability(cls):
        return CupyTrainer.availability()      # the same wheel and the same device: the same reasons

    def open_device(self):
        avail = self.availability()
        if not avail:
            raise BackendUnavailable(f"cupy-tiled: {avail.reason}")
        return CupyDevice(self.opts["device"], self.dtype)

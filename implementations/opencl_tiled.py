"""``opencl``: the tiled kernels of ``kernels/mlp_step.cluda`` through PyOpenCL, on any OpenCL device.

Without a GPU this runs on PoCL's CPU device (``pip install -e '.[opencl]'``
brings PoCL from PyPI), which is how the kernels -- and the runner the
``pycuda`` backend shares -- are tested on machines without a GPU.

Device choice: the option ``device`` ("PLATFORM:DEVICE" indices, e.g. "0:1")
or else the environment variable ``PYOPENCL_CTX`` (same syntax), or else the
first device of the first platform.
"""
from __future__ import annotations

import contextlib
import os
import time

import numpy as np

from implementations.tiled_runner import TiledTrainer
from pgdbench.core.protocol import AVAILABLE, module_missing, unavailable
from pgdbench.errors import BackendUnavailable, UsageError


def _devices():
    """[(platform index, device index, device)] of every OpenCL device; [] if there is no ICD."""
    import pyopencl as cl

    try:
        platforms = cl.get_platforms()
    except cl.Error:                        # no ICD loader / no platform
        return []
    found = []
    for p, platform in enumerate(platforms):
        try:
            devices = platform.get_devices()
        except cl.Error:
            continue
        found += [(p, d, dev) for d, dev in enumerate(devices)]
    return found


def _choose(spec: str):
    devices = _devices()
    if not devices:
        raise BackendUnavailable("opencl: no OpenCL device")
    spec = spec or os.environ.get("PYOPENCL_CTX", "")
    if not spec:
        return devices[0][2]
    try:
        parts = spec.split(":")
        p, d = int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1] else 0
    except ValueError:
        raise UsageError(f"OpenCL device {spec!r}: expected PLATFORM:DEVICE indices like 0:0") from None
    for pi, di, dev in devices:
        if (pi, di) == (p, d):
            return dev
    listing = ", ".join(f"{pi}:{di} {dev.name.strip()}" for pi, di, dev in devices)
    raise UsageError(f"OpenCL device {spec!r} does not exist; devices here: {listing}")


class OpenCLDevice:
    """The device API of tiled_runner for OpenCL: one in-order queue, blocking copies."""

    def __init__(self, device, dtype):
        import pyopencl as cl

        self.cl = cl
        self.name = device.name.strip()
        self.kind = ("gpu" if device.type & cl.device_type.GPU else
                     "cpu" if device.type & cl.device_type.CPU else "accelerator")
        self.compute_units = int(device.max_compute_units)
        if np.dtype(dtype) == np.float64 and not device.double_fp_config:
            raise UsageError(f"OpenCL device {self.name!r} has no float64 support; use --dtype float32")
        self.real = np.dtype(dtype).type
        self.ctx = cl.Context([device])
        self.queue = cl.CommandQueue(self.ctx)
        self.kernels = {}

    def build(self, source: str, signatures: dict) -> None:
        options = ["-DNO_UNROLL"] if self.kind == "cpu" else []     # see prelude_opencl.h
        program = self.cl.Program(self.ctx, source).build(options=options)
        kinds = {"P": None, "i": np.int32, "r": self.real}
        for name, sig in signatures.items():
            k = self.cl.Kernel(program, name)
            k.set_scalar_arg_dtypes([kinds[c] for c in sig])
            self.kernels[name] = k

    def active(self):
        return contextlib.nullcontext()

    def alloc(self, nbytes: int):
        return self.cl.Buffer(self.ctx, self.cl.mem_flags.READ_WRITE, max(int(nbytes), 1))

    def upload(self, buf, array: np.ndarray) -> None:
        if array.nbytes:
            self.cl.enqueue_copy(self.queue, buf, array, is_blocking=True)

    def download(self, array: np.ndarray, buf) -> None:
        if array.nbytes:
            self.cl.enqueue_copy(self.queue, array, buf, is_blocking=True)

    def launch(self, name: str, groups: tuple, local: tuple, args: tuple) -> None:
        local3 = (local[0], local[1], 1)
        global_size = tuple(g * l for g, l in zip(groups, local3))
        self.kernels[name](self.queue, global_size, local3, *args)

    def finish(self) -> None:
        self.queue.finish()

    # OpenCL has no cheap events without a profiling queue: time the host wall clock between two drains
    def timer_start(self):
        self.queue.finish()
        return time.perf_counter()

    def timer_stop(self, token) -> float:
        self.queue.finish()
        return time.perf_counter() - token

    def close(self) -> None:
        self.queue.finish()


class OpenCLTrainer(TiledTrainer):
    description = "tiled GEMM kernels (shared CUDA/OpenCL source) through PyOpenCL; any OpenCL device, PoCL on CPUs"
    api = "opencl"
    requires = ("pyopencl",)
    options = {**TiledTrainer.options, "device": ""}     # "PLATFORM:DEVICE", or PYOPENCL_CTX, or the first

    @classmethod
    def availability(cls):
        if module_missing(*cls.requires) is not None:
            return unavailable("package pyopencl not installed (pip install -e '.[opencl]')")
        try:
            devices = _devices()
        except Exception as exc:           # a broken ICD must not break `pgdbench list`
            return unavailable(f"no OpenCL device ({type(exc).__name__}: {exc})")
        return AVAILABLE if devices else unavailable("no OpenCL device")

    def open_device(self):
        return OpenCLDevice(_choose(self.opts["device"]), self.dtype)

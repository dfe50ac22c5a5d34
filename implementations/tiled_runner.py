"""The logic shared by the ``opencl`` and ``pycuda`` backends: one kernel source, one step, two thin adapters.

The kernels are in ``kernels/mlp_step.cluda`` (read its header for the
design); each API gets the same source behind its own prelude. Everything
above the kernels -- buffers, the order of launches, the epoch loop, the
protocol methods -- is written here once against a small *device API*:

    alloc(nbytes) -> buffer            upload(buffer, array)   (blocking)
    download(array, buffer) (blocking) launch(name, groups, local, args)
    finish()                           timer_start() / timer_stop(token) -> s
    close()                            name, kind (str)

``opencl_tiled.OpenCLDevice`` and ``pycuda_tiled.CudaDevice`` implement it in
a few lines each, so the code PyCUDA runs on a GPU is exercised on PoCL by
every test of the ``opencl`` backend.

Device state: the training set and the parameters are uploaded once and stay
on the device; each layer's weights and bias are one (n_in + 1) x n_out
matrix (bias last). The epoch order is uploaded once per epoch and the
kernels gather the minibatch's rows by index, so a step moves no data between
host and device and costs 3L - 1 launches.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pgdbench.core.model import Parameters, batch_bounds
from pgdbench.core.protocol import Parallelism, Trainer, validate_batch
from pgdbench.errors import UsageError

KERNEL_DIR = Path(__file__).with_name("kernels")
KERNEL_FILE = "mlp_step.cluda"
PRELUDES = {"cuda": "prelude_cuda.h", "opencl": "prelude_opencl.h"}

#: Argument kinds of each kernel, in order: P = device buffer, i = int32, r = the real type.
SIGNATURES = {
    "forward_sigmoid": "PPiiPPiiiPPii",
    "backprop_delta": "PPPPiii",
    "update_weights": "PPiiPPiiir",
}


def launches_per_step(n_layers: int) -> int:
    """Kernel launches of one minibatch step: L forward (the last with the output delta), L-1 deltas, L updates."""
    return 3 * n_layers - 1


def kernel_source(api: str, dtype, tile: int = 32, wpt: int = 4) -> str:
    """Compile-time parameters + the API's prelude + the shared kernel source."""
    if api not in PRELUDES:
        raise ValueError(f"api must be one of {sorted(PRELUDES)}, got {api!r}")
    check_tile(tile, wpt, dtype)
    real = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}[np.dtype(dtype)]
    header = f"#define REAL {real}\n#define TILE {int(tile)}\n#define WPT {int(wpt)}\n"
    return header + (KERNEL_DIR / PRELUDES[api]).read_text() + "\n" + (KERNEL_DIR / KERNEL_FILE).read_text()


#: Static local memory per work-group that every CUDA GPU and most OpenCL GPUs offer.
LOCAL_MEMORY_LIMIT = 48 * 1024


def check_tile(tile, wpt, dtype=np.float32) -> None:
    """The tile and register block must fit the kernels' assumptions and a GPU's limits."""
    if not (isinstance(tile, (int, np.integer)) and 1 <= tile <= 128):
        raise UsageError(f"option tile must be an integer from 1 to 128, got {tile!r}")
    if not (isinstance(wpt, (int, np.integer)) and wpt >= 1 and tile % wpt == 0):
        raise UsageError(f"option wpt must divide the tile size {tile}, got {wpt!r}")
    if (tile // wpt) ** 2 > 1024:
        raise UsageError(f"tile {tile} with wpt {wpt} needs {(tile // wpt) ** 2} threads per work-group (max 1024)")
    local = 2 * tile * (tile + 1) * np.dtype(dtype).itemsize
    if local > LOCAL_MEMORY_LIMIT:
        raise UsageError(f"tile {tile} needs {local} bytes of local memory in {np.dtype(dtype).name} "
                         f"(limit {LOCAL_MEMORY_LIMIT}); use a smaller tile")


def local_size(tile: int, wpt: int) -> tuple[int, int]:
    """Work-group shape: each thread computes a wpt x wpt block of the tile x tile output tile."""
    return (tile // wpt, tile // wpt)


def groups(n: int, tile: int) -> int:
    return -(-n // tile)


class TiledTrainer(Trainer):
    """Base of the tiled-kernel backends; subclasses only say how to open their device API."""

    parallelism = Parallelism.DEVICE
    device = "gpu"
    serial_counterpart = "numpy"
    uses_threads = False
    #: name of the API's prelude in PRELUDES
    api = ""

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        self.tile, self.wpt = self.opts["tile"], self.opts["wpt"]
        check_tile(self.tile, self.wpt, self.dtype)
        self.local = local_size(self.tile, self.wpt)
        self.dev = None       # close() must work even if opening the device fails
        self.dev = self.open_device(kernel_source(self.api, self.dtype, self.tile, self.wpt))
        self.real = self.dtype.type
        self.Wb = [self.dev.alloc((i + 1) * o * self.dtype.itemsize) for i, o in spec.shapes]
        self.set_weights(params)
        self._capacity = 0
        self._order_capacity = 0
        self._n_loaded = 0
        self.X = self.Y = None
        self.transfer_seconds = 0.0        # load_data
        self.order_upload_seconds = 0.0    # the epoch orders, all epochs so far
        self.last_epoch_device_seconds = float("nan")
        self.steps = 0

    def open_device(self, source: str):
        """Return the device API object with the kernels of ``source`` built."""
        raise NotImplementedError

    # -- buffers ------------------------------------------------------------
    def _bytes(self, *shape) -> int:
        return int(np.prod(shape)) * self.dtype.itemsize

    def _ensure_buffers(self, rows: int) -> None:
        """Activations, deltas and an input/target staging area for ``rows`` examples, allocated once."""
        if rows <= self._capacity:
            return
        widths = self.spec.layers
        self._act = [self.dev.alloc(self._bytes(rows, n)) for n in widths[1:]]
        self._delta = [self.dev.alloc(self._bytes(rows, n)) for n in widths[1:]]
        self._xin = self.dev.alloc(self._bytes(rows, widths[0]))
        self._yin = self.dev.alloc(self._bytes(rows, widths[-1]))
        self._capacity = rows
        if self._order_capacity == 0:      # kernels always take a rows buffer, used or not
            self._order = self.dev.alloc(4)
            self._order_capacity = 1

    def _upload_order(self, order: np.ndarray) -> None:
        order = np.asarray(order)
        if len(order) and (order.min() < 0 or order.max() >= self._n_loaded):
            raise UsageError(f"order holds indices outside the {self._n_loaded} loaded examples")
        if len(order) > self._order_capacity:
            self._order = self.dev.alloc(4 * len(order))
            self._order_capacity = len(order)
        start = time.perf_counter()
        self.dev.upload(self._order, np.ascontiguousarray(order, dtype=np.int32))
        self.order_upload_seconds += time.perf_counter() - start

    def load_data(self, X, Y):
        validate_batch(X, Y, self.spec)
        if len(X) >= 2**31:
            raise UsageError(f"{len(X)} examples: the kernels index rows with 32-bit integers")
        X = np.ascontiguousarray(X, dtype=self.dtype)
        Y = np.ascontiguousarray(Y, dtype=self.dtype)
        start = time.perf_counter()
        self.X = self.dev.alloc(max(X.nbytes, 1))
        self.Y = self.dev.alloc(max(Y.nbytes, 1))
        self.dev.upload(self.X, X)
        self.dev.upload(self.Y, Y)
        self.dev.finish()
        self.transfer_seconds = time.perf_counter() - start
        self._n_loaded = len(X)

    # -- the kernels ----------------------------------------------------------
    def _forward(self, n: int, src, gather: bool, offset: int = 0, targets=None, gather_y: bool = False) -> None:
        """Activations of every layer for ``n`` rows of ``src``; with ``targets``, also the output delta."""
        T, local = self.tile, self.local
        last = len(self.spec.shapes) - 1
        for layer, (n_in, n_out) in enumerate(self.spec.shapes):
            a = src if layer == 0 else self._act[layer - 1]
            g = int(gather and layer == 0)
            want_delta = int(targets is not None and layer == last)
            self.dev.launch("forward_sigmoid", (groups(n_out, T), groups(n, T)), local,
                            (a, self._order, offset, g, self.Wb[layer], self._act[layer], n, n_in, n_out,
                             targets if want_delta else self._act[layer], self._delta[layer],
                             int(gather_y), want_delta))

    def _backprop_delta(self, n: int, layer: int) -> None:
        """δ of layer-1 from δ of layer (layer ≥ 1), with the current weights of ``layer``."""
        T, local = self.tile, self.local
        n_in, n_out = self.spec.shapes[layer]
        self.dev.launch("backprop_delta", (groups(n_in, T), groups(n, T)), local,
                        (self._delta[layer], self.Wb[layer], self._act[layer - 1], self._delta[layer - 1],
                         n, n_out, n_in))

    def _update(self, n: int, layer: int, target, scale: float, src, gather: bool, offset: int = 0) -> None:
        """target -= scale · [a 1]ᵀ δ for ``layer`` (target: its Wb, or a zeroed gradient buffer)."""
        T, local = self.tile, self.local
        n_in, n_out = self.spec.shapes[layer]
        a = src if layer == 0 else self._act[layer - 1]
        self.dev.launch("update_weights", (groups(n_out, T), groups(n_in + 1, T)), local,
                        (a, self._order, offset, int(gather and layer == 0), self._delta[layer], target,
                         n_in, n_out, n, self.real(scale)))

    def _step(self, offset: int, n: int, learning_rate: float) -> None:
        self._forward(n, self.X, True, offset, targets=self.Y, gather_y=True)
        scale = learning_rate / n
        for layer in range(len(self.spec.shapes) - 1, -1, -1):
            if layer > 0:
                self._backprop_delta(n, layer)     # reads W_layer before its update below
            self._update(n, layer, self.Wb[layer], scale, self.X, True, offset)

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        if self.X is None:
            raise UsageError("load_data() must be called before train_epoch()")
        self._ensure_buffers(batch_size)
        self._upload_order(order)
        token = self.dev.timer_start()
        bounds = batch_bounds(len(order), batch_size)
        for start, stop in bounds:
            self._step(start, stop - start, learning_rate)
            if progress is not None:
                progress(stop - start)     # launches are asynchronous: this counts issued work
        self.last_epoch_device_seconds = self.dev.timer_stop(token)   # also waits for the device
        self.steps += len(bounds)

    # -- state and checks -----------------------------------------------------
    def get_weights(self):
        weights, biases = [], []
        for buf, (n_in, n_out) in zip(self.Wb, self.spec.shapes):
            wb = np.empty((n_in + 1, n_out), self.dtype)
            self.dev.download(wb, buf)
            weights.append(np.ascontiguousarray(wb[:n_in]))
            biases.append(wb[n_in].copy())
        return Parameters(weights, biases)

    def set_weights(self, params):
        params.check_against(self.spec)
        for buf, w, b in zip(self.Wb, params.weights, params.biases):
            self.dev.upload(buf, np.vstack([w, b[None, :]]).astype(self.dtype))

    def _stage(self, X, Y=None) -> int:
        n = len(X)
        self._ensure_buffers(max(n, 1))
        self.dev.upload(self._xin, np.ascontiguousarray(X, dtype=self.dtype))
        if Y is not None:
            self.dev.upload(self._yin, np.ascontiguousarray(Y, dtype=self.dtype))
        return n

    def _download_output(self, n: int) -> np.ndarray:
        out = np.empty((n, self.spec.n_outputs), self.dtype)
        self.dev.download(out, self._act[-1])
        return out

    def loss_and_gradients(self, X, Y):
        validate_batch(X, Y, self.spec)
        n = self._stage(X, Y)
        self._forward(n, self._xin, False, targets=self._yin)
        for layer in range(len(self.spec.shapes) - 1, 0, -1):
            self._backprop_delta(n, layer)
        grads = []
        for layer, (n_in, n_out) in enumerate(self.spec.shapes):
            zeros = np.zeros((n_in + 1, n_out), self.dtype)
            buf = self.dev.alloc(zeros.nbytes)
            self.dev.upload(buf, zeros)
            self._update(n, layer, buf, -1.0 / n, self._xin, False)   # 0 - (-1/n)·Σ = mean gradient
            self.dev.download(zeros, buf)
            grads.append(zeros)
        aL = self._download_output(n)
        loss = float(0.5 * np.sum((aL.astype(np.float64) - np.asarray(Y, np.float64)) ** 2) / n)
        return loss, Parameters([g[:-1].copy() for g in grads], [g[-1].copy() for g in grads])

    def predict(self, X):
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.spec.n_inputs:
            raise UsageError(f"inputs must have shape (n, {self.spec.n_inputs}), got {X.shape}")
        chunk = max(self._capacity, 1024)
        out = np.empty((len(X), self.spec.n_outputs), self.dtype)
        for start, stop in batch_bounds(len(X), chunk):
            n = self._stage(X[start:stop])
            self._forward(n, self._xin, False)
            out[start:stop] = self._download_output(n)
        return out

    def close(self):
        if self.dev is not None:
            # free the device buffers while their context is still current (PyCUDA needs this)
            self.Wb, self.X, self.Y, self._capacity, self._order_capacity = [], None, None, 0, 0
            for name in ("_act", "_delta", "_xin", "_yin", "_order"):
                self.__dict__.pop(name, None)
            self.dev.close()
            self.dev = None

    def metadata(self):
        return {
            "device_name": self.dev.name if self.dev else "",
            "device_kind": self.dev.kind if self.dev else "",
            "tile": self.tile,
            "work_per_thread": self.wpt,
            "kernel_launches_per_step": launches_per_step(len(self.spec.shapes)),
            "load_data_seconds": self.transfer_seconds,
        }

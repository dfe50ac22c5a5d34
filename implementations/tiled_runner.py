"""The logic shared by the tiled-kernel backends (``opencl``, ``pycuda``, ``cupy-tiled``): one step, thin adapters.

The kernels are in ``kernels/`` (:mod:`implementations.tiled_kernels`) and
the choice of kernel and grid per product in
:mod:`implementations.tiled_plan`. Everything above them -- buffers, the
order of launches, the epoch loop, the protocol methods -- is written here
once against a small *device API*:

    compute_units, name, kind            build(source, signatures)
    alloc(nbytes) -> buffer              upload(buffer, array)   (blocking)
    download(array, buffer) (blocking)   launch(name, groups3, local2, args)
    finish()                             timer_start() / timer_stop(token) -> s
    active() -> context manager          close()

``opencl_tiled.OpenCLDevice``, ``pycuda_tiled.CudaDevice`` and
``cupy_tiled.CupyDevice`` implement it in a few dozen lines each, so the code
that runs on a GPU is exercised on PoCL by every test of the ``opencl``
backend. Every protocol method runs inside ``dev.active()``: PyCUDA pushes its
context there and pops it on the way out, exceptions included.

Device state: the training set and the parameters are uploaded once and stay
on the device; each layer's weights and bias are one (n_in + 1) x n_out
matrix (bias last). The epoch order is uploaded once per epoch and the
kernels gather the minibatch's rows by index, so a step moves no data between
host and device.
"""
from __future__ import annotations

import time

import numpy as np

from implementations.tiled_kernels import TILE_CONFIGS, group_signatures, kernel_source
from implementations.tiled_plan import Planner
from pgdbench.core.model import Parameters, batch_bounds
from pgdbench.core.protocol import Option, Parallelism, Trainer, validate_batch
from pgdbench.errors import UsageError

#: Every tile configuration of either dtype (the planner then checks that the run's dtype has the one chosen).
TILE_NAMES = tuple(dict.fromkeys(c.name for configs in TILE_CONFIGS.values() for c in configs))


class TiledTrainer(Trainer):
    """Base of the tiled-kernel backends; subclasses only say how to open their device API."""

    parallelism = Parallelism.DEVICE
    device = "gpu"
    serial_counterpart = "numpy"
    uses_threads = False
    #: name of the API's prelude in tiled_kernels.PRELUDES
    api = ""
    #: the planner's options (tiled_plan: ``split`` is auto or a whole number ≥ 1); subclasses add their device's
    options = {"tile": Option("auto", choices=("auto", *TILE_NAMES)),
               "split": "auto",
               "narrow": Option("auto", choices=("auto", "off"))}

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        self.dev = None       # close() must work even if opening the device fails
        self.dev = self.open_device()
        try:
            self._setup(spec, params)
        except BaseException:
            self.close()      # a half-made trainer still gives back its device (PyCUDA: its context)
            raise

    def _setup(self, spec, params) -> None:
        self.planner = self.make_planner(**{k: self.opts[k] for k in ("tile", "split", "narrow")})
        self.real = self.dtype.type
        self._built = set()
        self._capacity = 0
        self._order_capacity = 0
        self._partial_capacity = 0
        self._n_loaded = 0
        self._last_batch = None
        self.X = self.Y = None
        self.transfer_seconds = 0.0        # load_data
        self.order_upload_seconds = 0.0    # the epoch orders, all epochs so far
        self.last_epoch_device_seconds = float("nan")
        self.steps = 0
        with self.dev.active():
            self.Wb = [self.dev.alloc((i + 1) * o * self.dtype.itemsize) for i, o in spec.shapes]
            self._order = self.dev.alloc(4)        # kernels always take a rows buffer, used or not
            self._order_capacity = 1
            self._partials = self.dev.alloc(self.dtype.itemsize)
        self.set_weights(params)

    def open_device(self):
        """Return the device API object (no program built yet)."""
        raise NotImplementedError

    def make_planner(self, **options) -> Planner:
        """A planner for this device (the GEMM timing of the device check makes them with other options)."""
        return Planner(self.dtype, self.dev.compute_units, **options)

    # -- programs and buffers -------------------------------------------------
    def _ensure_group(self, group: str) -> None:
        """Programs are built when a plan first needs them: a run builds only the configurations it uses."""
        if group not in self._built:
            self.dev.build(kernel_source(self.api, self.dtype, group), group_signatures(group))
            self._built.add(group)

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

    def _ensure_partials(self, product) -> None:
        need = product.splits * (product.m + 1) * product.n if product.splits > 1 else 0
        if need > self._partial_capacity:
            self._partials = self.dev.alloc(self._bytes(need))
            self._partial_capacity = need

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
        if len(X) >= 2**31 or X.size >= 2**31:
            raise UsageError(f"{len(X)} examples: the kernels index rows with 32-bit integers")
        X = np.ascontiguousarray(X, dtype=self.dtype)
        Y = np.ascontiguousarray(Y, dtype=self.dtype)
        with self.dev.active():
            start = time.perf_counter()
            self.X = self.dev.alloc(max(X.nbytes, 1))
            self.Y = self.dev.alloc(max(Y.nbytes, 1))
            self.dev.upload(self.X, X)
            self.dev.upload(self.Y, Y)
            self.dev.finish()
            self.transfer_seconds = time.perf_counter() - start
        self._n_loaded = len(X)

    # -- the products of a step (public for the per-product timing of the device check) --------------
    def _launch(self, product, args: tuple, reduce_args: tuple = ()) -> None:
        for launch in product.launches:
            self._ensure_group(launch.group)
        first, *rest = product.launches
        self.dev.launch(first.kernel, first.groups, first.local, args)
        for launch in rest:          # apply_partials of a split weight update
            self.dev.launch(launch.kernel, launch.groups, launch.local, reduce_args)

    def forward_layer(self, layer: int, n: int, src, gather: bool, offset: int = 0, targets=None,
                      gather_y: bool = False, planner=None):
        """Activations of ``layer`` for ``n`` rows (of ``src`` if layer 0); with ``targets``, also the output delta."""
        n_in, n_out = self.spec.shapes[layer]
        product = (planner or self.planner).forward(layer, n, n_in, n_out)
        a = src if layer == 0 else self._act[layer - 1]
        want_delta = int(targets is not None and layer == len(self.spec.shapes) - 1)
        self._launch(product, (a, self._order, offset, int(gather and layer == 0), self.Wb[layer], self._act[layer],
                               n, n_in, n_out, targets if want_delta else self._act[layer], self._delta[layer],
                               int(gather_y), want_delta))
        return product

    def backprop_layer(self, layer: int, n: int, planner=None):
        """δ of layer-1 from δ of ``layer`` (≥ 1), with the current weights of ``layer``."""
        n_in, n_out = self.spec.shapes[layer]
        product = (planner or self.planner).backprop(layer, n, n_out, n_in)
        self._launch(product, (self._delta[layer], self.Wb[layer], self._act[layer - 1], self._delta[layer - 1],
                               n, n_out, n_in))
        return product

    def update_layer(self, layer: int, n: int, target, scale: float, src, gather: bool, offset: int = 0,
                     planner=None):
        """target -= scale · [a 1]ᵀ δ for ``layer`` (target: its Wb, or a zeroed gradient buffer)."""
        n_in, n_out = self.spec.shapes[layer]
        product = (planner or self.planner).update(layer, n_in, n_out, n)
        self._ensure_partials(product)
        a = src if layer == 0 else self._act[layer - 1]
        self._launch(product, (a, self._order, offset, int(gather and layer == 0), self._delta[layer], target,
                               n_in, n_out, n, self.real(scale), self._partials, product.splits),
                     (self._partials, target, (n_in + 1) * n_out, product.splits, self.real(scale)))
        return product

    def _forward(self, n: int, src, gather: bool, offset: int = 0, targets=None, gather_y: bool = False) -> None:
        for layer in range(len(self.spec.shapes)):
            self.forward_layer(layer, n, src, gather, offset, targets, gather_y)

    def _step(self, offset: int, n: int, learning_rate: float) -> None:
        self._forward(n, self.X, True, offset, targets=self.Y, gather_y=True)
        scale = learning_rate / n
        for layer in range(len(self.spec.shapes) - 1, -1, -1):
            if layer > 0:
                self.backprop_layer(layer, n)
            self.update_layer(layer, n, self.Wb[layer], scale, self.X, True, offset)

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        if self.X is None:
            raise UsageError("load_data() must be called before train_epoch()")
        with self.dev.active():
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
        self._last_batch = batch_size

    # -- state and checks -----------------------------------------------------
    def get_weights(self):
        weights, biases = [], []
        with self.dev.active():
            for buf, (n_in, n_out) in zip(self.Wb, self.spec.shapes):
                wb = np.empty((n_in + 1, n_out), self.dtype)
                self.dev.download(wb, buf)
                weights.append(np.ascontiguousarray(wb[:n_in]))
                biases.append(wb[n_in].copy())
        return Parameters(weights, biases)

    def set_weights(self, params):
        params.check_against(self.spec)
        with self.dev.active():
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
        with self.dev.active():
            n = self._stage(X, Y)
            self._forward(n, self._xin, False, targets=self._yin)
            for layer in range(len(self.spec.shapes) - 1, 0, -1):
                self.backprop_layer(layer, n)
            grads = []
            for layer, (n_in, n_out) in enumerate(self.spec.shapes):
                zeros = np.zeros((n_in + 1, n_out), self.dtype)
                buf = self.dev.alloc(zeros.nbytes)
                self.dev.upload(buf, zeros)
                self.update_layer(layer, n, buf, -1.0 / n, self._xin, False)   # 0 - (-1/n)·Σ = mean gradient
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
        with self.dev.active():
            for start, stop in batch_bounds(len(X), chunk):
                n = self._stage(X[start:stop])
                self._forward(n, self._xin, False)
                out[start:stop] = self._download_output(n)
        return out

    def close(self):
        if self.dev is None:
            return
        try:
            with self.dev.active():   # buffers are freed while their context is current
                self.Wb, self.X, self.Y, self._capacity, self._order_capacity = [], None, None, 0, 0
                for name in ("_act", "_delta", "_xin", "_yin", "_order", "_partials"):
                    self.__dict__.pop(name, None)
        finally:
            self.dev.close()
            self.dev = None

    def step_plan(self, batch: int):
        """The products of one step of ``batch`` rows, as planned for this device."""
        return self.planner.step(self.spec.shapes, batch)

    def metadata(self):
        meta = {
            "device_name": self.dev.name if self.dev else "",
            "device_kind": self.dev.kind if self.dev else "",
            "compute_units": self.dev.compute_units if self.dev else None,
            "tile": self.opts["tile"],
            "split": self.opts["split"],
            "narrow": self.opts["narrow"],
            "load_data_seconds": self.transfer_seconds,
        }
        if self._last_batch is not None:
            plan = self.step_plan(self._last_batch)
            meta["kernel_launches_per_step"] = sum(len(p.launches) for p in plan)
            meta["step_plan"] = [f"{p.label}: {p.choice}" for p in plan]
        return meta

"""The launch plan of the tiled backends: which kernel, configuration and grid each product of a step gets.

A step of an L-layer net has 3L - 1 products: L forward (the last one with
the output delta), L - 1 delta propagations and L weight updates. Each
becomes one launch, plus one ``apply_partials`` launch for a weight update
whose batch (its inner dimension) is split over work-groups.

The choices, all overridable by the backends' options:

* ``narrow``: an output at most ``NarrowParams.width`` wide (the 10-unit
  output layer) goes to the narrow kernels (``forward_narrow``,
  ``update_narrow``) instead of a tile grid that would be one column of
  mostly empty tiles; ``narrow=off`` keeps the tiled kernels.
* ``tile``: the largest :data:`~implementations.tiled_kernels.TILE_CONFIGS`
  entry whose grid still gives every compute unit a work-group, else the
  smallest; ``tile=NAME`` forces one for every tiled product.
* ``split``: a weight update whose grid leaves compute units idle splits its
  batch so that there are about two work-groups per compute unit, each split
  at least :data:`MIN_SPLIT_ROWS` rows; ``split=N`` forces N.

These rules are first guesses from the shapes alone; the device check
(``scripts/device-check.sh``) times every configuration of every product
against them on the GPU, so that they can be replaced by measured choices.
"""
from __future__ import annotations

from dataclasses import dataclass

from pgdbench.errors import UsageError
from implementations.tiled_kernels import NARROW, kernel_name, narrow_params, tile_config, tile_configs

#: A split of a weight update's batch is never shorter than this (shorter ones cost more to add up than they save).
MIN_SPLIT_ROWS = 256


def blocks(n: int, size: int) -> int:
    return -(-n // size)


@dataclass(frozen=True)
class Launch:
    group: str                       # the program holding the kernel
    kernel: str                      # its full name
    groups: tuple[int, int, int]     # work-groups per dimension
    local: tuple[int, int]           # work-group shape


@dataclass(frozen=True)
class Product:
    """One product of a step and the launches that compute it.

    ``m`` x ``n`` is the output and ``k`` the inner dimension, counted as the
    GEMM a BLAS would do (without the bias's extra row or column).
    """

    kind: str                        # "forward", "backprop" or "update"
    layer: int
    m: int
    n: int
    k: int
    group: str
    splits: int
    launches: tuple[Launch, ...]

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k

    @property
    def label(self) -> str:
        return f"{self.kind} {self.layer + 1}: {self.m}x{self.k} . {self.k}x{self.n}"

    @property
    def choice(self) -> str:
        return self.group + (f" split {self.splits}" if self.splits > 1 else "")


class Planner:
    """Plans the products of a step for one dtype on a device with ``compute_units`` compute units."""

    def __init__(self, dtype, compute_units: int, tile: str = "auto", split="auto", narrow: str = "auto"):
        self.dtype = dtype
        self.units = max(1, int(compute_units))
        self.configs = tile_configs(dtype)
        self.narrow = narrow_params(dtype)
        tile, split, narrow = str(tile), str(split), str(narrow)
        if tile != "auto":
            try:
                tile_config(dtype, tile)
            except KeyError as exc:
                raise UsageError(f"option tile={tile!r}: {exc.args[0]}; or auto") from None
        if split != "auto" and not (split.isdigit() and int(split) >= 1):
            raise UsageError(f"option split={split!r}: expected auto or a whole number ≥ 1")
        if narrow not in ("auto", "off"):
            raise UsageError(f"option narrow={narrow!r}: expected auto or off")
        self.tile, self.split, self.use_narrow = tile, split, narrow == "auto"

    # -- choices ------------------------------------------------------------
    def _config(self, rows: int, cols: int):
        if self.tile != "auto":
            return tile_config(self.dtype, self.tile)
        for c in self.configs:
            if blocks(rows, c.bm) * blocks(cols, c.bn) >= self.units:
                return c
        return self.configs[-1]

    def _splits(self, grid: int, k: int) -> int:
        if self.split != "auto":
            return int(self.split)
        if grid >= self.units:
            return 1
        return max(1, min(blocks(2 * self.units, grid), k // MIN_SPLIT_ROWS))

    def _is_narrow(self, width: int) -> bool:
        return self.use_narrow and width <= self.narrow.width

    # -- the three products ---------------------------------------------------
    def forward(self, layer: int, m: int, k: int, n: int) -> Product:
        """[A 1] (m x k+1) · Wb ((k+1) x n): the forward product of ``layer`` for m rows."""
        if self._is_narrow(n):
            p = self.narrow
            launch = Launch(NARROW, "forward_narrow", (blocks(m, p.forward_rows), 1, 1), p.forward_local)
            return Product("forward", layer, m, n, k, NARROW, 1, (launch,))
        c = self._config(m, n)
        launch = Launch(c.name, kernel_name("forward_sigmoid", c.name), (blocks(n, c.bn), blocks(m, c.bm), 1), c.local)
        return Product("forward", layer, m, n, k, c.name, 1, (launch,))

    def backprop(self, layer: int, m: int, k: int, n: int) -> Product:
        """δ_layer (m x k) · W_layerᵀ (k x n): the delta of the layer below ``layer``."""
        c = self._config(m, n)
        launch = Launch(c.name, kernel_name("backprop_delta", c.name), (blocks(n, c.bn), blocks(m, c.bm), 1), c.local)
        return Product("backprop", layer, m, n, k, c.name, 1, (launch,))

    def update(self, layer: int, m: int, n: int, k: int) -> Product:
        """[A 1]ᵀ ((m+1) x k) · δ (k x n): the weight update of ``layer`` (m inputs, n outputs, batch k)."""
        if self._is_narrow(n):
            p = self.narrow
            grid = blocks(m + 1, p.m_lanes)
            splits = self._splits(grid, k)
            main = Launch(NARROW, "update_narrow", (grid, splits, 1), p.update_local)
            group = NARROW
        else:
            c = self._config(m + 1, n)
            grid = blocks(m + 1, c.bm) * blocks(n, c.bn)
            splits = self._splits(grid, k)
            main = Launch(c.name, kernel_name("update_weights", c.name),
                          (blocks(n, c.bn), blocks(m + 1, c.bm), splits), c.local)
            group = c.name
        launches = (main,)
        if splits > 1:
            threads = self.narrow.reduce_threads
            launches += (Launch(NARROW, "apply_partials", (blocks((m + 1) * n, threads), 1, 1), (threads, 1)),)
        return Product("update", layer, m, n, k, group, splits, launches)

    # -- a whole step -----------------------------------------------------------
    def step(self, shapes, batch: int) -> list[Product]:
        """The products of one step of ``batch`` rows in launch order (``shapes``: (n_in, n_out) per layer)."""
        out = [self.forward(layer, batch, n_in, n_out) for layer, (n_in, n_out) in enumerate(shapes)]
        for layer in range(len(shapes) - 1, -1, -1):
            n_in, n_out = shapes[layer]
            if layer > 0:
                out.append(self.backprop(layer, batch, n_out, n_in))   # reads W_layer before its update
            out.append(self.update(layer, n_in, n_out, batch))
        return out

    def launches_per_step(self, shapes, batch: int) -> int:
        return sum(len(p.launches) for p in self.step(shapes, batch))

    @staticmethod
    def partial_elements(products) -> int:
        """Elements of the split-K workspace the products need (0 if none splits)."""
        return max([p.splits * (p.m + 1) * p.n for p in products if p.splits > 1], default=0)

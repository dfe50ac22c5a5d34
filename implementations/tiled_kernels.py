"""The kernel sources of the tiled backends and their compile-time configurations.

``kernels/`` holds one source for CUDA and OpenCL: ``common.cluda`` (helpers),
``mlp_step.cluda`` (the three tiled GEMMs with fused epilogues) and
``mlp_narrow.cluda`` (the skinny products and the split-K reduction), written
in a dialect that ``prelude_cuda.h`` and ``prelude_opencl.h`` map onto each
API. A *group* is what one program holds: one :class:`TileConfig` of the
tiled GEMMs (its kernels' names end with the configuration's name), or
``"narrow"``. :func:`kernel_source` writes the defines + prelude + sources of
a group; every runtime (PyCUDA, CuPy's NVRTC, PyOpenCL) builds exactly that.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

KERNEL_DIR = Path(__file__).with_name("kernels")
PRELUDES = {"cuda": "prelude_cuda.h", "opencl": "prelude_opencl.h"}
NARROW = "narrow"

#: Argument kinds of each kernel, in order: P = device buffer, i = int32, r = the real type.
SIGNATURES = {
    "forward_sigmoid": "PPiiPPiiiPPii",
    "backprop_delta": "PPPPiii",
    "update_weights": "PPiiPPiiirPi",
}
NARROW_SIGNATURES = {
    "forward_narrow": SIGNATURES["forward_sigmoid"],
    "update_narrow": SIGNATURES["update_weights"],
    "apply_partials": "PPiir",
}

#: Static local memory per work-group that every CUDA GPU and most OpenCL GPUs offer.
LOCAL_MEMORY_LIMIT = 48 * 1024


@dataclass(frozen=True)
class TileConfig:
    """A BM x BN output block per work-group, BK of the inner dimension per step, TM x TN results per thread."""

    name: str
    bm: int
    bn: int
    bk: int
    tm: int
    tn: int

    @property
    def local(self) -> tuple[int, int]:
        """Work-group shape: (threads along n, threads along m)."""
        return (self.bn // self.tn, self.bm // self.tm)

    @property
    def threads(self) -> int:
        return self.local[0] * self.local[1]

    def local_bytes(self, dtype) -> int:
        """Both operands, double-buffered, rows padded by 4."""
        return 2 * self.bk * ((self.bm + 4) + (self.bn + 4)) * np.dtype(dtype).itemsize

    def defines(self) -> dict:
        return {"BM": self.bm, "BN": self.bn, "BK": self.bk, "TM": self.tm, "TN": self.tn,
                "KNAME(base)": f"base ## _{self.name}"}


# Largest first: the plan takes the first one that still gives every compute unit a work-group.
# 128x128 with 8x8 per thread is the ladder's top step for the large products; the smaller ones
# keep the device busy when the output has few blocks (small batches, 785-row updates).
TILE_CONFIGS = {
    "float32": (
        TileConfig("128x128", 128, 128, 8, 8, 8),
        TileConfig("128x64", 128, 64, 16, 8, 8),
        TileConfig("64x64", 64, 64, 16, 8, 4),
        TileConfig("32x32", 32, 32, 16, 4, 4),
    ),
    # doubles take twice the registers and local memory: half the results per thread, BK 8
    # (at BK 16 ptxas spills 32x32's update_weights on sm_90)
    "float64": (
        TileConfig("64x64", 64, 64, 8, 8, 4),
        TileConfig("32x32", 32, 32, 8, 4, 4),
    ),
}


@dataclass(frozen=True)
class NarrowParams:
    """Compile-time shape of the narrow kernels (see mlp_narrow.cluda)."""

    width: int = 16       # NS: the widest output they take
    k_lanes: int = 16     # NKT: forward_narrow's lanes along k ...
    row_groups: int = 16  # NRG: ... times row groups
    rows_per_group: int = 2
    k_unroll: int = 4
    m_lanes: int = 32     # NMT: update_narrow's lanes along m ...
    k_groups: int = 8     # NKG: ... times groups along k
    rows_per_step: int = 16   # NUK: batch rows per k group per step
    reduce_threads: int = 256

    @property
    def forward_local(self) -> tuple[int, int]:
        return (self.k_lanes, self.row_groups)

    @property
    def forward_rows(self) -> int:
        """Output rows of one forward_narrow work-group."""
        return self.row_groups * self.rows_per_group

    @property
    def update_local(self) -> tuple[int, int]:
        return (self.m_lanes, self.k_groups)

    @property
    def update_step(self) -> int:
        """Batch rows one update_narrow work-group stages per step (splits are multiples of it)."""
        return self.k_groups * self.rows_per_step

    def defines(self) -> dict:
        return {"NS": self.width, "NKT": self.k_lanes, "NRG": self.row_groups, "NRPG": self.rows_per_group,
                "NKU": self.k_unroll, "NMT": self.m_lanes, "NKG": self.k_groups, "NUK": self.rows_per_step,
                "NAP": self.reduce_threads}


# doubles: fewer rows per update step, or ptxas spills on sm_90
NARROW_PARAMS = {"float32": NarrowParams(), "float64": NarrowParams(rows_per_step=8)}


def narrow_params(dtype) -> NarrowParams:
    return NARROW_PARAMS[dtype_name(dtype)]


def dtype_name(dtype) -> str:
    name = np.dtype(dtype).name
    if name not in TILE_CONFIGS:
        raise ValueError(f"the tiled kernels take float32 or float64, not {name}")
    return name


def tile_configs(dtype) -> tuple[TileConfig, ...]:
    return TILE_CONFIGS[dtype_name(dtype)]


def tile_config(dtype, name: str) -> TileConfig:
    for c in tile_configs(dtype):
        if c.name == name:
            return c
    known = ", ".join(c.name for c in tile_configs(dtype))
    raise KeyError(f"no tile configuration {name!r} for {dtype_name(dtype)} (known: {known})")


def groups(dtype) -> list[str]:
    """Every program a runtime may build for ``dtype``."""
    return [c.name for c in tile_configs(dtype)] + [NARROW]


def kernel_name(base: str, group: str) -> str:
    return base if group == NARROW else f"{base}_{group}"


def group_signatures(group: str) -> dict[str, str]:
    """Full kernel name -> argument kinds, for the kernels of one program."""
    if group == NARROW:
        return dict(NARROW_SIGNATURES)
    return {kernel_name(base, group): sig for base, sig in SIGNATURES.items()}


def kernel_source(api: str, dtype, group: str) -> str:
    """Compile-time parameters + the API's prelude + the shared sources of one program."""
    if api not in PRELUDES:
        raise ValueError(f"api must be one of {sorted(PRELUDES)}, got {api!r}")
    name = dtype_name(dtype)
    if group == NARROW:
        defines, body = narrow_params(dtype).defines(), "mlp_narrow.cluda"
    else:
        defines, body = tile_config(dtype, group).defines(), "mlp_step.cluda"
    real = {"float32": "float", "float64": "double"}[name]
    header = f"#define REAL {real}\n#define REAL_IS_DOUBLE {int(name == 'float64')}\n"
    header += "".join(f"#define {k} {v}\n" for k, v in defines.items())
    parts = [PRELUDES[api], "common.cluda", body]
    return header + "\n".join((KERNEL_DIR / p).read_text() for p in parts)


def check_local_memory(dtype) -> None:
    """Every configuration fits the static local memory of a work-group (a test holds the table to this)."""
    for c in tile_configs(dtype):
        if c.local_bytes(dtype) > LOCAL_MEMORY_LIMIT:
            raise ValueError(f"tile {c.name} needs {c.local_bytes(dtype)} bytes of local memory in {dtype_name(dtype)}")

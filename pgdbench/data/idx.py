"""Reading IDX files (the MNIST format), with every header field checked."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from pgdbench.errors import DataError

#: magic number → (number of dimensions, meaning), for the unsigned-byte files MNIST uses
MAGIC = {0x00000801: 1, 0x00000803: 3}


def read_idx(path, expect_dims: tuple[int, ...] | None = None) -> np.ndarray:
    """Read a (optionally gzipped) IDX file of unsigned bytes into an array.

    ``expect_dims``: the shape the file must have; ``None`` for any but the count
    in the first dimension (an element ``None`` in the tuple accepts any size there).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in MAGIC:
        raise DataError(f"{path}: bad magic number 0x{magic:08x}; expected 0x00000801 (labels) or 0x00000803 (images)")
    ndim = MAGIC[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header")
    dims = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    if expect_dims is not None:
        if len(expect_dims) != ndim or any(e is not None and e != d for e, d in zip(expect_dims, dims)):
            raise DataError(f"{path}: dimensions {dims} in the header, expected {expect_dims}")
    expected = int(np.prod(dims)) if dims else 0
    body = len(raw) - header
    if body < expected:
        raise DataError(f"{path}: truncated: header promises {expected} bytes of data for dimensions {dims}, file has {body}")
    if body > expected:
        raise DataError(f"{path}: {body - expected} bytes of trailing data after the {dims} array: not a valid IDX file")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)

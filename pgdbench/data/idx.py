"""Reading IDX files (the MNIST format), with every header field checked before the body is read.

Memory stays within the array the header promises: a raw file's size is
compared with the header before a byte of the body is read, and a gzip
stream is decompressed only up to one byte past the promised size (a gzip
bomb under an uncompressed file's name stops there).
"""
from __future__ import annotations

import gzip
import io
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pgdbench.errors import DataError

#: magic number → (number of dimensions, meaning), for the unsigned-byte files MNIST uses
MAGIC = {0x00000801: 1, 0x00000803: 3}


@contextmanager
def _opened(path: Path):
    """(stream of the IDX bytes, compressed?, size of the file on disk), with read errors as DataError."""
    compressed = False
    try:
        with open(path, "rb") as raw:
            size = raw.seek(0, io.SEEK_END)
            raw.seek(0)
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            with (gzip.GzipFile(fileobj=raw) if compressed else raw) as stream:
                yield stream, compressed, size
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an IDX file") from None
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated {'gzip data' if compressed else 'file'} ({exc})") from None


def _read_header(path: Path, stream) -> tuple[int, tuple[int, ...]]:
    start = stream.read(4)
    if len(start) < 4:
        raise DataError(f"{path}: too short to be an IDX file ({len(start)} bytes)")
    magic = int.from_bytes(start, "big")
    if magic not in MAGIC:
        raise DataError(f"{path}: bad magic number 0x{magic:08x}; expected 0x00000801 (labels) or 0x00000803 (images)")
    ndim = MAGIC[magic]
    raw = stream.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(f"{path}: truncated header")
    return 4 + 4 * ndim, tuple(int.from_bytes(raw[4 * k: 4 * k + 4], "big") for k in range(ndim))


def read_idx_dims(path) -> tuple[int, ...]:
    """The dimensions an IDX file's header declares (reads the header only)."""
    path = Path(path)
    with _opened(path) as (stream, _, _):
        return _read_header(path, stream)[1]


def read_idx(path, expect_dims: tuple[int, ...] | None = None) -> np.ndarray:
    """Read a (optionally gzipped) IDX file of unsigned bytes into an array.

    ``expect_dims``: the shape the file must have; ``None`` for any but the count
    in the first dimension (an element ``None`` in the tuple accepts any size there).
    """
    path = Path(path)
    with _opened(path) as (stream, compressed, size):
        header, dims = _read_header(path, stream)
        if expect_dims is not None:
            if len(expect_dims) != len(dims) or any(e is not None and e != d for e, d in zip(expect_dims, dims)):
                raise DataError(f"{path}: dimensions {dims} in the header, expected {expect_dims}")
        expected = 1
        for d in dims:
            expected *= d
        if not compressed:  # the file's size says whether the body fits the header, before it is read
            body = size - header
            if body < expected:
                raise DataError(f"{path}: truncated: header promises {expected} bytes of data for dimensions "
                                f"{dims}, file has {body}")
            if body > expected:
                raise DataError(f"{path}: {body - expected} bytes of trailing data after the {dims} array: "
                                f"not a valid IDX file")
        out = np.empty(expected, np.uint8)
        view, got = memoryview(out), 0
        while got < expected:
            n = stream.readinto(view[got:])
            if not n:
                raise DataError(f"{path}: truncated: header promises {expected} bytes of data for dimensions "
                                f"{dims}, file has {got}")
            got += n
        if compressed and stream.read(1):  # one byte more is enough to know: decompress no further
            raise DataError(f"{path}: more data than the {expected} bytes its header promises for dimensions "
                            f"{dims}: not a valid IDX file")
    return out.reshape(dims)

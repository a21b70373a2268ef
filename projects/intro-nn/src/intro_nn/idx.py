"""Reader for the IDX format MNIST ships in (optionally gzip-wrapped), checked byte by byte."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from shared.errors import UserError

# IDX type codes -> numpy dtypes (big-endian where it matters).
IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxError(UserError):
    """An IDX file that is not what it claims to be."""


def read_idx(path: str | Path, *, expect_ndim: int | None = None) -> np.ndarray:
    """Parse an IDX file: magic (0, 0, type, ndim), ndim big-endian sizes, then the payload."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise IdxError(f"{path}: cannot read ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IdxError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    type_code, ndim = raw[2], raw[3]
    if type_code not in IDX_TYPES:
        raise IdxError(f"{path}: unknown IDX data type 0x{type_code:02x}")
    if expect_ndim is not None and ndim != expect_ndim:
        raise IdxError(f"{path}: expected {expect_ndim} dimensions, the header says {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{path}: truncated header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[type_code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IdxError(
            f"{path}: payload is {len(raw) - header} bytes, dims {dims} need {expected} "
            "(truncated or corrupt file: download it again)"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))
    )


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as IDX (uint8 only: enough for tests and small exports)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + array.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path

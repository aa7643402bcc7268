"""RGB pixels -> a PNG data URI, with the standard library only (no PIL in figures)."""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np


def png_data_uri(rgb: np.ndarray) -> str:
    """Encode an (H, W, 3) uint8 picture as a ``data:image/png;base64,...`` URI.

    A plotly Image trace draws a URI source as one compressed picture, much smaller on the wire
    than its pixels as an array.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    # Each row starts with filter type 0 (none); zlib does the compression.
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, -1)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
    png += _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + _chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

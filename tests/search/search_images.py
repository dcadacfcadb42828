"""Helpers for the search tests: digits as PNG bytes, and a decompression bomb."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from tripletnet.data import load_dataset


def digit_png(row: int = 0, scale: int = 1) -> bytes:
    """Test digit ``row`` (0..16 floats) drawn as a greyscale PNG, ``scale`` times enlarged."""
    pixels = load_dataset("digits").test.x[row].reshape(8, 8) * (255.0 / 16.0)
    image = Image.fromarray(pixels.astype(np.uint8)).resize((8 * scale, 8 * scale))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data and the CRC of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A decompression bomb: a valid 8-bit greyscale PNG header claiming ``width`` x ``height``
    pixels (400 million by default), with a tiny IDAT. 69 bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )

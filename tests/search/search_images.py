"""Helpers for the search tests: digits as PNG bytes."""

from __future__ import annotations

import io

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

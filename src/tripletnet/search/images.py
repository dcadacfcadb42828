"""Images in, raw samples out: the same format the dataset loaders return.

A model's ``input_shape`` says what it eats: (C, H, W) uint8 images, or (64,) for the 8x8
digits as floats 0..16. An upload is converted to that (grey or RGB, resized to H x W) before
the run's normaliser sees it, exactly like a dataset sample.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import TripletnetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_PIXELS = 40_000_000  # refuse decompression bombs
THUMBNAIL_SIDE = 32
DIGITS_SIDE, DIGITS_MAX = 8, 16.0


class ImageError(TripletnetError, ValueError):
    """Bytes that are not a readable image, or an image too large to decode."""


def decode_image(data: bytes, name: str = "upload") -> Image.Image:
    """Decode image bytes (PNG, JPEG, ...) or raise ImageError saying what went wrong."""
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise ImageError(f"{name}: {image.width}x{image.height} pixels is too large")
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if isinstance(error, ImageError):
            raise
        raise ImageError(
            f"{name} is not a readable image (send a PNG, JPEG, BMP, GIF or WebP file)"
        ) from error
    return image


def read_image(path: Path) -> Image.Image:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"cannot read {path}: {error.strerror}") from error
    return decode_image(data, str(path))


def to_sample(image: Image.Image, input_shape: Sequence[int]) -> np.ndarray:
    """Convert an image to one raw sample of ``input_shape``: (C, H, W) uint8 or (64,) digits."""
    shape = tuple(input_shape)
    if shape == (DIGITS_SIDE * DIGITS_SIDE,):
        grey = image.convert("L").resize((DIGITS_SIDE, DIGITS_SIDE), Image.Resampling.BILINEAR)
        return np.asarray(grey, dtype=np.float32).reshape(-1) * (DIGITS_MAX / 255.0)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ImageError(
            f"the model takes inputs of shape {list(shape)}, which are not images; "
            "query it with a vector instead"
        )
    channels, height, width = shape
    converted = image.convert("L" if channels == 1 else "RGB").resize(
        (width, height), Image.Resampling.BILINEAR
    )
    pixels = np.asarray(converted, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1).copy()


def thumbnail(sample: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """A small (h, w, C) uint8 picture of a raw sample, at most THUMBNAIL_SIDE a side."""
    shape = tuple(input_shape)
    if shape == (DIGITS_SIDE * DIGITS_SIDE,):
        grey = np.clip(np.asarray(sample) * (255.0 / DIGITS_MAX), 0, 255).astype(np.uint8)
        return grey.reshape(DIGITS_SIDE, DIGITS_SIDE, 1)
    if len(shape) != 3:
        raise ImageError(f"cannot draw a thumbnail of a sample of shape {list(shape)}")
    pixels = np.asarray(sample, dtype=np.uint8).transpose(1, 2, 0)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)
    small = np.asarray(image, dtype=np.uint8)
    return small[..., None] if small.ndim == 2 else small


def png_bytes(picture: np.ndarray, scale: int = 1) -> bytes:
    """Encode an (h, w, C) uint8 array as PNG, enlarged ``scale`` times (nearest neighbour)."""
    pixels = picture[..., 0] if picture.shape[2] == 1 else picture
    image = Image.fromarray(pixels)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def is_image_model(input_shape: Sequence[int]) -> bool:
    shape = tuple(input_shape)
    return shape == (DIGITS_SIDE * DIGITS_SIDE,) or (len(shape) == 3 and shape[0] in (1, 3))

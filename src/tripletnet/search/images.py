"""Images in, raw samples out: the same format the dataset loaders return.

A model eats (C, H, W) images whose pixels run from 0 to ``top``: uint8 0..255 for the image
datasets, float32 0..16 for scikit-learn's 8x8 digits. An upload is converted to that (grey or
RGB, resized and centre-cropped to H x W, rescaled) before the run's normaliser sees it, exactly like a dataset sample.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import images as data_images
from ..data.images import UnreadableImageError, open_image
from ..errors import TripletnetError

THUMBNAIL_SIDE = 32


class ImageError(TripletnetError, ValueError):
    """Bytes that are not a readable image, or an image too large to decode."""


class ImageTooLargeError(ImageError):
    """An image whose header claims more pixels than MAX_PIXELS (e.g. a decompression bomb)."""


def decode_image(data: bytes, name: str = "upload") -> Image.Image:
    """Decode image bytes (PNG, JPEG, ...) with the data layer's decoder (its pixel limit is
    checked from the header, before any pixel is decoded), or raise ImageError (ImageTooLargeError
    for a decompression bomb) saying what went wrong and what to send instead."""
    try:
        return open_image(data, name)
    except data_images.ImageTooLargeError as error:
        raise ImageTooLargeError(str(error)) from error
    except UnreadableImageError as error:
        raise ImageError(f"{error} (send a PNG, JPEG, BMP, GIF, WebP or TIFF file)") from error


def read_image(path: Path) -> Image.Image:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"cannot read {path}: {error.strerror}") from error
    return decode_image(data, str(path))


@dataclass(frozen=True)
class RawFormat:
    """What a model's dataset loader returns per sample: ``shape`` with values 0..``top``."""

    shape: tuple[int, ...]
    top: float = 255.0

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3 and self.shape[0] in (1, 3)

    def to_sample(self, image: Image.Image) -> np.ndarray:
        """Convert an image to one raw sample: (C, H, W) uint8, or float32 when top != 255.
        A square input is made as ``--image-size`` makes training samples (the shorter side
        resized, the centre cropped), so a non-square photo is not squashed."""
        if not self.is_image:
            raise ImageError(
                f"the model takes inputs of shape {list(self.shape)}, which are not images; "
                "query it with a vector instead"
            )
        channels, height, width = self.shape
        try:
            if height == width:  # as the data loaders: shorter side resized, centre-cropped
                sample = data_images.to_array(image, channels, height)
            else:
                converted = image.convert("L" if channels == 1 else "RGB").resize(
                    (width, height), Image.Resampling.BILINEAR
                )
                pixels = np.asarray(converted, dtype=np.uint8)
                sample = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1).copy()
        except (ValueError, OSError, UnreadableImageError) as error:  # e.g. a LAB TIFF
            raise ImageError(
                f"cannot convert an image of mode {image.mode} to "
                f"{'greyscale' if channels == 1 else 'RGB'}; send a greyscale or RGB image"
            ) from error
        if self.top == 255.0:
            return sample
        return sample.astype(np.float32) * np.float32(self.top / 255.0)

    def thumbnail(self, sample: np.ndarray) -> np.ndarray:
        """A small (h, w, C) uint8 picture of a raw sample, at most THUMBNAIL_SIDE a side."""
        if not self.is_image:
            raise ImageError(f"cannot draw a thumbnail of a sample of shape {list(self.shape)}")
        scaled = np.asarray(sample, dtype=np.float32) * (255.0 / self.top)
        pixels = np.clip(np.rint(scaled), 0, 255).astype(np.uint8).transpose(1, 2, 0)
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

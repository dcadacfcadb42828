"""Safe image decoding for the data layer: a pixel limit of our own, one error per bad file.

``open_image`` reads the header, refuses more than MAX_PIXELS pixels (a decompression bomb)
whatever Pillow's global ``Image.MAX_IMAGE_PIXELS`` is, then decodes every pixel so that a
truncated file fails here, naming the file, rather than later in a worker.
``to_array`` turns an image into the (C, H, W) uint8 sample the models eat.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataFileError

MAX_PIXELS = 40_000_000
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})

Image.init()  # registers the plugins, so that Image.OPEN lists what this Pillow can read
_SUFFIX_FORMATS = {
    ".png": "PNG",
    ".apng": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".bmp": "BMP",
    ".dib": "DIB",
    ".gif": "GIF",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".pbm": "PPM",
    ".pgm": "PPM",
    ".ppm": "PPM",
    ".pnm": "PPM",
    ".tga": "TGA",
    ".jp2": "JPEG2000",
    ".j2k": "JPEG2000",
    ".jpx": "JPEG2000",
    ".avif": "AVIF",
    ".qoi": "QOI",
    ".pcx": "PCX",
    ".sgi": "SGI",
    ".ico": "ICO",
}
# Pixel formats only: no EPS (Ghostscript), WMF or container stubs ever sees a file.
IMAGE_SUFFIXES = frozenset(s for s, f in _SUFFIX_FORMATS.items() if f in Image.OPEN)
FORMATS = tuple(sorted({f for f in _SUFFIX_FORMATS.values() if f in Image.OPEN}))
_WARNINGS = threading.Lock()  # catch_warnings changes process-wide state: one thread at a time


class UnreadableImageError(DataFileError):
    """A file that is not a readable image: corrupt, truncated, too large, or not an image."""


class ImageTooLargeError(UnreadableImageError):
    """An image whose header claims more than MAX_PIXELS pixels (e.g. a decompression bomb)."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding a pixel."""

    mode: str
    width: int
    height: int

    @property
    def channels(self) -> int:
        """1 for greyscale modes (GREY_MODES), else 3."""
        return 1 if self.mode in GREY_MODES else 3


def is_image_file(path: str | Path) -> bool:
    """True when the suffix (any case) is one of IMAGE_SUFFIXES."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _read_bytes(source: str | Path | bytes, name: str) -> bytes:
    if isinstance(source, bytes):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as error:
        raise UnreadableImageError(f"cannot read {name}: {error.strerror or error}") from error


def _open_header(data: bytes, name: str) -> Image.Image:
    """Pillow's lazy open, with our pixel limit checked before any pixel is decoded."""
    too_large = f"more than the {MAX_PIXELS:,} pixels allowed (a decompression bomb?)"
    try:
        with _WARNINGS, warnings.catch_warnings():  # DecompressionBombWarning, odd TIFF tags
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as error:  # over twice Pillow's own limit
        raise ImageTooLargeError(f"{name} is too large to decode: {too_large}") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise UnreadableImageError(f"{name} is not a readable image ({_reason(error)})") from error
    if image.width * image.height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{name} is too large to decode: {image.width}x{image.height} pixels, {too_large}"
        )
    return image


def _reason(error: BaseException) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "not an image format Pillow reads"
    return str(error) or type(error).__name__


def read_header(source: str | Path | bytes, name: str | None = None) -> ImageHeader:
    """The mode and size of an image, from its header only (bomb-checked like open_image)."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    image = _open_header(_read_bytes(source, label), label)
    return ImageHeader(image.mode, image.width, image.height)


def open_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Decode a file (or its bytes) into a loaded PIL image.

    Raises UnreadableImageError naming ``name`` (default: the path) and the reason for a missing,
    corrupt, truncated or non-image file, and for more than MAX_PIXELS pixels.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    image = _open_header(_read_bytes(source, label), label)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, UserWarning) as error:
        # UserWarning: Pillow's warnings about a damaged file, where warnings are made errors
        raise UnreadableImageError(f"{label} is corrupt or truncated ({_reason(error)})") from error
    return image


def to_array(image: Image.Image, channels: int, size: int | None = None) -> np.ndarray:
    """A (C, size, size) uint8 array: ``image`` in L (C=1) or RGB (C=3), its shorter side resized
    to ``size`` (bilinear, antialiased when shrinking) and centre-cropped to a square.

    ``size=None`` keeps the image's own (C, H, W). The crop and the resize are one Pillow call:
    the centred square of side min(W, H) is resampled straight to size x size.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow warns when a palette's transparency is dropped
    target = "L" if channels == 1 else "RGB"
    try:
        image = image if image.mode == target else image.convert(target)
    except (ValueError, OSError) as error:  # e.g. a LAB or CMYK-with-profile oddity
        raise UnreadableImageError(
            f"cannot convert an image of mode {image.mode} to "
            f"{'greyscale' if channels == 1 else 'RGB'}"
        ) from error
    if size is not None:
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        if (width, height) != (size, size):
            image = image.resize(
                (size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side)
            )
    if image.mode == "L":
        return np.array(image, dtype=np.uint8)[None]  # a writable copy
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))

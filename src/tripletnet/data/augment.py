"""Augmentations of (N, C, H, W) tensor batches, on the batch's device, drawn from torch's global
generator (random numbers are drawn on the CPU, so a seed gives the same augmentations on any
device).

``augment``: mild augmentation for fine-tuning (Hoffer, Hubara & Ailon 2016), small translations
and horizontal mirroring of a normalised batch. ``ImageAugmentation``: random resized crop,
horizontal flip and colour jitter for training on photos; no torchvision needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import TripletnetError
from ..windows import crop_windows


def check_shift(max_shift: int, input_shape: tuple[int, ...]) -> None:
    """Refuse a ``max_shift`` that can move an image of ``input_shape`` (C, H, W) wholly out of
    its frame (a shift >= H or W leaves only replicated edge pixels); vectors take none."""
    if max_shift <= 0 or len(input_shape) != 3:
        return
    height, width = input_shape[1:]
    if max_shift >= min(height, width):
        raise TripletnetError(
            f"--augment-shift {max_shift} is too large for {height}x{width} images: a shift of "
            f"{min(height, width)} or more can move an image wholly out of its frame, leaving "
            f"only copies of its edge; the largest shift allowed is {min(height, width) - 1}"
        )


def augment(batch: torch.Tensor, max_shift: int = 0, mirror: bool = False) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels each way (edges replicated) and, with
    ``mirror``, flip half of them left-right. Uses torch's global generator (seeded by the trainer).
    Vectors (N, D) and ``max_shift=0, mirror=False`` pass through unchanged.
    """
    if batch.ndim != 4 or (max_shift == 0 and not mirror):
        return batch
    n, _, height, width = batch.shape
    if max_shift:
        padded = F.pad(batch, (max_shift,) * 4, mode="replicate")
        top, left = torch.randint(0, 2 * max_shift + 1, (2, n)).to(batch.device)
        batch = crop_windows(padded, top, left, height, width)
    if mirror:
        flip = (torch.rand(n) < 0.5).to(batch.device)[:, None, None, None]
        batch = torch.where(flip, batch.flip(-1), batch)
    return batch


def _images(batch: torch.Tensor, what: str) -> torch.Tensor:
    """``batch`` as float (N, C, H, W); an integer batch is converted."""
    if batch.ndim != 4:
        raise ValueError(f"{what} takes a batch of images (N, C, H, W), got {tuple(batch.shape)}")
    return batch if batch.is_floating_point() else batch.float()


def random_resized_crop(
    batch: torch.Tensor,
    scale: tuple[float, float] = (0.16, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    tries: int = 10,
) -> torch.Tensor:
    """Crop each image at its own random box and resize it back to the batch's H x W
    (Szegedy et al. 2015, "Going deeper with convolutions"; torchvision's RandomResizedCrop).

    A box covers a fraction of the image's area drawn from U(``scale``) with an aspect ratio
    w/h drawn log-uniformly from ``ratio``; of ``tries`` draws the first that fits is used (the
    whole image when none does), placed uniformly. All boxes are sampled in one batched
    ``F.grid_sample`` (bilinear, sub-pixel boxes). Returns a float batch.
    """
    x = _images(batch, "random_resized_crop")
    n, _, height, width = x.shape
    area = height * width * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, tries))
    low, high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(low + (high - low) * torch.rand(n, tries))
    box_w, box_h = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    fits = (box_w <= width) & (box_h <= height)
    first = fits.int().argmax(dim=1)  # the first try that fits (0 when none does)
    rows = torch.arange(n)
    box_w = torch.where(fits.any(1), box_w[rows, first], torch.tensor(float(width)))
    box_h = torch.where(fits.any(1), box_h[rows, first], torch.tensor(float(height)))
    left, top = torch.rand(n) * (width - box_w), torch.rand(n) * (height - box_h)
    # affine map from output to input coordinates, both normalised to [-1, 1] (pixel edges)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = box_w / width, (2 * left + box_w) / width - 1
    theta[:, 1, 1], theta[:, 1, 2] = box_h / height, (2 * top + box_h) / height - 1
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def horizontal_flip(batch: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    """Flip each image left-right with probability ``p`` (dtype kept)."""
    if batch.ndim != 4:
        raise ValueError(f"horizontal_flip takes images (N, C, H, W), got {tuple(batch.shape)}")
    flip = (torch.rand(len(batch)) < p).to(batch.device)[:, None, None, None]
    return torch.where(flip, batch.flip(-1), batch)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """Luma Y' = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601), (N, 1, H, W)."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
    return (x * weights[:, None, None]).sum(1, keepdim=True)


def colour_jitter(batch: torch.Tensor, strength: float, top: float | None = None) -> torch.Tensor:
    """Scale brightness, contrast and saturation by random factors in [1 - s, 1 + s] per image.

    Brightness: x * b. Contrast: blend with the image's mean luma m: m + c (x - m). Saturation
    (3 channels only): blend with the luma image g: g + s (x - g). Apply it to raw pixel values
    (before normalisation); with ``top`` (255 for a uint8 batch) results are clamped to
    [0, top] after each step. Returns a float batch; ``strength=0`` returns ``batch`` unchanged.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"colour jitter strength must lie in [0, 1], got {strength}")
    if strength == 0:
        return batch
    if top is None and batch.dtype == torch.uint8:
        top = 255.0
    x = _images(batch, "colour_jitter")
    n = len(x)
    factors = (1 + strength * (2 * torch.rand(n, 3) - 1)).to(x.device, x.dtype)
    brightness, contrast, saturation = (factors[:, k, None, None, None] for k in range(3))

    def clamp(t: torch.Tensor) -> torch.Tensor:
        return t.clamp(0.0, top) if top is not None else t

    x = clamp(x * brightness)
    mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
    x = clamp(mean + contrast * (x - mean))
    if x.shape[1] == 3:
        grey = _grey(x)
        x = clamp(grey + saturation * (x - grey))
    return x


@dataclass(frozen=True)
class ImageAugmentation:
    """Training augmentations for image batches, in this order: random resized crop, horizontal
    flip, colour jitter of strength ``jitter``; ``top`` clamps jittered values (255 for uint8).
    Vectors (N, D) and an inactive augmentation pass through unchanged."""

    crop: bool = False
    flip: bool = False
    jitter: float = 0.0
    top: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"colour jitter strength must lie in [0, 1], got {self.jitter}")

    @property
    def active(self) -> bool:
        return self.crop or self.flip or self.jitter > 0

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.ndim != 4 or not self.active:
            return batch
        top = self.top if self.top is not None else (255.0 if batch.dtype == torch.uint8 else None)
        if self.crop:
            batch = random_resized_crop(batch)
        if self.flip:
            batch = horizontal_flip(batch)
        if self.jitter:
            batch = colour_jitter(batch, self.jitter, top)
        return batch

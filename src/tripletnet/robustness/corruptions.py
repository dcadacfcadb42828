"""Common corruptions of image batches, on tensors, seeded, five severities each.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations" (ICLR 2019): ImageNet-C's noise, blur, weather and digital families; Mu & Gilmer,
"MNIST-C: A Robustness Benchmark for Computer Vision" (2019): the corruptions that make sense for
grayscale digits. Every function takes an (N, C, H, W) float batch in [0, 1] on any device, a
severity from 0 to 5 and a CPU ``torch.Generator`` (random numbers are drawn on the CPU, so a
seed gives the same images on any device), and returns a batch in [0, 1]. Severity 0 is the
identity; the change grows with the severity (one random draw per image, scaled by it).
Spatial parameters are given for 28-pixel images and scaled by the image size. JPEG goes
through Pillow; frost is left out (it needs ImageNet-C's frost photographs).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import TripletnetError

SEVERITIES = (1, 2, 3, 4, 5)
Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]


class CorruptionError(TripletnetError, ValueError):
    """An unknown corruption, a severity out of range, or a batch that is not images."""


def _rand(x: torch.Tensor, generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(x.device, x.dtype)


def _randn(x: torch.Tensor, generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=generator).to(x.device, x.dtype)


def _signs(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.where(_rand(x, generator, len(x)) < 0.5, -1.0, 1.0).to(x.dtype)


def _scale(x: torch.Tensor) -> float:
    """Spatial parameters are for 28-pixel images; this is the batch's size relative to that."""
    return min(x.shape[-2:]) / 28.0


def _pad_mode(x: torch.Tensor) -> str:
    return "zeros" if x.shape[1] == 1 else "reflection"  # digits lie on black


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample each image through its (N, 2, 3) affine map (output -> input, [-1, 1] coords)."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode=_pad_mode(x), align_corners=False)


def _identity_theta(x: torch.Tensor) -> torch.Tensor:
    return torch.eye(2, 3, device=x.device, dtype=x.dtype).repeat(len(x), 1, 1)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur, reflected edges."""
    if sigma <= 0:
        return x
    radius = max(1, min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    return _separable(x, kernel / kernel.sum())


def _separable(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    c, r = x.shape[1], len(kernel) // 2
    padded = F.pad(x, (r, r, r, r), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _blend(x: torch.Tensor, y: torch.Tensor, amount: float) -> torch.Tensor:
    return (x + amount * (y - x)).clamp(0, 1)


def _smooth_noise(x: torch.Tensor, generator: torch.Generator, cells: int) -> torch.Tensor:
    """One random value per image on a ``cells`` x ``cells`` grid, upsampled bicubically."""
    n, _, h, w = x.shape
    coarse = _rand(x, generator, n, 1, cells, cells)
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)


# noise ------------------------------------------------------------------------------------


def gaussian_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """x + N(0, c^2), c = 0.08 ... 0.38 (ImageNet-C's)."""
    c = (0.08, 0.12, 0.18, 0.26, 0.38)[severity - 1]
    return (x + c * _randn(x, generator, *x.shape)).clamp(0, 1)


def shot_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Poisson(x c) / c: photon noise, c = 60 ... 3 photons at full intensity."""
    c = (60.0, 25.0, 12.0, 5.0, 3.0)[severity - 1]
    counts = torch.poisson((x * c).float().cpu(), generator=generator).to(x.device, x.dtype)
    return (counts / c).clamp(0, 1)


def impulse_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Salt and pepper on a fraction c = 0.03 ... 0.27 of the pixels (the same draw at every
    severity, so a higher one changes a superset of the pixels)."""
    c = (0.03, 0.06, 0.09, 0.17, 0.27)[severity - 1]
    u = _rand(x, generator, *x.shape)
    return torch.where(u < c / 2, 0.0, torch.where(u > 1 - c / 2, 1.0, x))


# blur -------------------------------------------------------------------------------------


def defocus_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Convolution with a disc of radius 0.6 ... 2.5 pixels (at 28 px); each tap weighs the
    fraction of its pixel inside the disc (8 x 8 subsamples)."""
    radius = (0.6, 1.0, 1.5, 2.0, 2.5)[severity - 1] * _scale(x)
    r = max(1, min(math.ceil(radius), min(x.shape[-2:]) // 2 - 1))
    fine = (torch.arange(-8 * r - 4, 8 * r + 4, device=x.device, dtype=x.dtype) + 0.5) / 8
    inside = ((fine[:, None] ** 2 + fine[None, :] ** 2) <= radius**2).to(x.dtype)
    disc = F.avg_pool2d(inside[None, None], 8)[0, 0]
    c = x.shape[1]
    padded = F.pad(x, (r, r, r, r), mode="reflect")
    return F.conv2d(padded, (disc / disc.sum()).repeat(c, 1, 1, 1), groups=c).clamp(0, 1)


def glass_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian blur (sigma), local pixel jitter of up to ``delta`` pixels, ``iterations`` times,
    blurred again (ImageNet-C's frosted glass)."""
    sigma, delta, iterations = ((0.4, 1, 1), (0.5, 1, 2), (0.6, 1, 3), (0.7, 2, 2), (0.9, 2, 3))[
        severity - 1
    ]
    s = _scale(x)
    y = _gaussian_blur(x, sigma * s)
    n, _, h, w = x.shape
    for _ in range(iterations):
        shift = (2 * _rand(x, generator, n, h, w, 2) - 1) * delta * s
        base = F.affine_grid(_identity_theta(x), list(x.shape), align_corners=False)
        grid = base + shift * torch.tensor([2 / w, 2 / h], device=x.device, dtype=x.dtype)
        y = F.grid_sample(y, grid, mode="nearest", padding_mode="border", align_corners=False)
    return _gaussian_blur(y, sigma * s).clamp(0, 1)


def _along(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """The mean of copies of each image translated by (N, T, 2) pixel offsets."""
    n, _, h, w = x.shape
    total = torch.zeros_like(x)
    for t in range(offsets.shape[1]):
        theta = _identity_theta(x)
        theta[:, 0, 2] = 2 * offsets[:, t, 0] / w
        theta[:, 1, 2] = 2 * offsets[:, t, 1] / h
        total = total + _affine(x, theta)
    return total / offsets.shape[1]


def motion_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """The mean along a line of length 2 ... 8 pixels (at 28 px) at a random angle."""
    length = (2.0, 3.0, 4.0, 6.0, 8.0)[severity - 1] * _scale(x)
    angle = _rand(x, generator, len(x)) * math.pi
    steps = torch.linspace(0, 1, 9, device=x.device, dtype=x.dtype)
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return _along(x, steps[None, :, None] * length * direction[:, None, :]).clamp(0, 1)


def zoom_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """The mean of the image zoomed in by 1 to 1.06 ... 1.3 (ImageNet-C's zoom blur)."""
    top = (1.06, 1.11, 1.16, 1.21, 1.3)[severity - 1]
    total = x.clone()
    zooms = torch.linspace(1.0, top, 6)[1:]
    for zoom in zooms:
        total = total + _affine(x, _identity_theta(x) / float(zoom))
    return (total / (len(zooms) + 1)).clamp(0, 1)


# weather ----------------------------------------------------------------------------------


def _fractal(x: torch.Tensor, generator: torch.Generator, decay: float) -> torch.Tensor:
    """Plasma-like noise in [0, 1]: octaves of smooth noise, amplitude ``decay`` per octave."""
    total, weight = torch.zeros_like(x[:, :1]), 1.0
    for cells in (2, 4, 8, 16):
        total = total + weight * _smooth_noise(x, generator, cells)
        weight *= decay
    low = total.amin(dim=(2, 3), keepdim=True)
    high = total.amax(dim=(2, 3), keepdim=True)
    return (total - low) / (high - low + 1e-8)


def fog(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """(x + a fractal) * max / (max + a), a = 0.4 ... 1.2 (ImageNet-C's fog, plasma noise)."""
    amount, decay = ((0.4, 0.6), (0.6, 0.55), (0.8, 0.5), (1.0, 0.45), (1.2, 0.4))[severity - 1]
    top = x.amax(dim=(1, 2, 3), keepdim=True)
    fogged = (x + amount * _fractal(x, generator, decay)) * top / (top + amount)
    return fogged.clamp(0, 1)


def snow(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Whitened image plus motion-blurred flakes: sparse bright points (density 2 ... 10 %)
    smeared along one random direction per image, and the scene brightened toward grey."""
    density, whiten = ((0.02, 0.15), (0.04, 0.25), (0.06, 0.35), (0.08, 0.45), (0.10, 0.55))[
        severity - 1
    ]
    n, _, h, w = x.shape
    flakes = (_rand(x, generator, n, 1, h, w) < density).to(x.dtype)
    angle = _rand(x, generator, n) * math.pi
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    steps = torch.linspace(0, 1, 5, device=x.device, dtype=x.dtype) * 3 * _scale(x)
    streaks = (_along(flakes, steps[None, :, None] * direction[:, None, :]) * 2.5).clamp(0, 1)
    grey = x.mean(dim=1, keepdim=True) * 1.5 + 0.5
    scene = _blend(x, torch.maximum(x, grey.clamp(0, 1)), whiten)
    return torch.maximum(scene, streaks.expand_as(x)).clamp(0, 1)


def spatter(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Blobs of mud: smoothed noise above a threshold that falls with severity (the same noise
    at every severity, so blobs only grow); mud is white on dark images, brown on colour."""
    threshold = (0.72, 0.68, 0.64, 0.6, 0.56)[severity - 1]
    blobs = _gaussian_blur(_rand(x, generator, len(x), 1, *x.shape[-2:]), 1.2 * _scale(x))
    blobs = (blobs - blobs.mean()) / (blobs.std() + 1e-8) * 0.12 + 0.5
    mask = (blobs > threshold).to(x.dtype)
    mud = (
        torch.ones_like(x)
        if x.shape[1] == 1
        else torch.tensor([0.4, 0.25, 0.1], device=x.device, dtype=x.dtype)
        .view(1, 3, 1, 1)
        .expand_as(x)
    )
    return x * (1 - mask) + mud * mask


# digital ----------------------------------------------------------------------------------


def brightness(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """x + c, c = 0.1 ... 0.5 (ImageNet-C adds it to HSV's value; for grey images the same)."""
    return (x + (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]).clamp(0, 1)


def contrast(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """(x - m) c + m around each image's mean m, c = 0.4 ... 0.05."""
    c = (0.4, 0.3, 0.2, 0.1, 0.05)[severity - 1]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * c + mean).clamp(0, 1)


def elastic_transform(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """A smooth random displacement field of amplitude 0.5 ... 2.5 pixels (at 28 px)."""
    amplitude = (0.5, 1.0, 1.5, 2.0, 2.5)[severity - 1] * _scale(x)
    n, _, h, w = x.shape
    field = torch.cat([_smooth_noise(x, generator, 5), _smooth_noise(x, generator, 5)], dim=1)
    field = (2 * field - 1).permute(0, 2, 3, 1) * amplitude
    base = F.affine_grid(_identity_theta(x), list(x.shape), align_corners=False)
    grid = base + field * torch.tensor([2 / w, 2 / h], device=x.device, dtype=x.dtype)
    return F.grid_sample(x, grid, padding_mode=_pad_mode(x), align_corners=False).clamp(0, 1)


def pixelate(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Area-downsample to a fraction 0.8 ... 0.35 of the size, then nearest-upsample back."""
    fraction = (0.8, 0.65, 0.55, 0.45, 0.35)[severity - 1]
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h * fraction)), max(1, round(w * fraction))),
                          mode="area")  # fmt: skip
    return F.interpolate(small, size=(h, w), mode="nearest")


def jpeg_compression(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Encoded and decoded by Pillow at JPEG quality 25, 18, 15, 10, 7 (ImageNet-C's)."""
    quality = (25, 18, 15, 10, 7)[severity - 1]
    pixels = (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    out = np.empty_like(pixels)
    for i, image in enumerate(pixels):
        mode = "L" if image.shape[0] == 1 else "RGB"
        buffer = io.BytesIO()
        Image.fromarray(np.moveaxis(image, 0, -1).squeeze(-1 if mode == "L" else ())).save(
            buffer, format="JPEG", quality=quality
        )
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(mode))
        out[i] = decoded[None] if mode == "L" else np.moveaxis(decoded, -1, 0)
    return torch.from_numpy(out).to(x.device, x.dtype) / 255


def shear(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Horizontal shear by 0.15 ... 0.75, random sign (MNIST-C)."""
    c = (0.15, 0.3, 0.45, 0.6, 0.75)[severity - 1]
    theta = _identity_theta(x)
    theta[:, 0, 1] = c * _signs(x, generator)
    return _affine(x, theta)


def scale(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Shrunk about the centre to 0.9 ... 0.5 of its size (MNIST-C)."""
    factor = (0.9, 0.8, 0.7, 0.6, 0.5)[severity - 1]
    return _affine(x, _identity_theta(x) / factor)


def rotate(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Rotation by 10 ... 60 degrees, random sign (MNIST-C)."""
    angle = math.radians((10, 20, 30, 45, 60)[severity - 1]) * _signs(x, generator)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(len(x), 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    return _affine(x, theta)


def translate(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Shift by 1.5 ... 7.5 pixels (at 28 px) in a random direction (MNIST-C)."""
    pixels = (1.5, 3.0, 4.5, 6.0, 7.5)[severity - 1] * _scale(x)
    angle = _rand(x, generator, len(x)) * 2 * math.pi
    offsets = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)[:, None, :] * pixels
    return _along(x, offsets)


def stripe(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Invert a vertical band 2 ... 10 pixels wide (at 28 px) at a random place (MNIST-C)."""
    width = (2, 4, 6, 8, 10)[severity - 1] * _scale(x)
    w = x.shape[-1]
    start = _rand(x, generator, len(x)) * (w - width)
    columns = torch.arange(w, device=x.device, dtype=x.dtype)
    band = (columns >= start[:, None]) & (columns < start[:, None] + width)
    return torch.where(band[:, None, None, :], 1 - x, x)


def _draw(x: torch.Tensor, points: torch.Tensor, every: int) -> torch.Tensor:
    """White polylines through (N, L, P, 2) points in [0, 1] (x, y), sampled densely; with
    ``every`` > 1 only every such sample is drawn (a dotted line)."""
    n, _, h, w = x.shape
    start, end = points[:, :, :-1], points[:, :, 1:]
    samples = 4 * max(h, w)
    t = torch.linspace(0, 1, samples, device=x.device, dtype=x.dtype)[::every]
    path = start[..., None, :] + t[:, None] * (end - start)[..., None, :]  # N, L, P-1, T, 2
    cols = (path[..., 0] * (w - 1)).round().long().clamp(0, w - 1).reshape(n, -1)
    rows = (path[..., 1] * (h - 1)).round().long().clamp(0, h - 1).reshape(n, -1)
    mask = torch.zeros(n, h * w, device=x.device, dtype=x.dtype)
    mask.scatter_(1, rows * w + cols, 1.0)
    return torch.maximum(x, mask.view(n, 1, h, w).expand_as(x))


def dotted_line(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """1 ... 5 random dotted white lines (MNIST-C); the first lines are the same at every
    severity."""
    lines = severity
    points = _rand(x, generator, len(x), 5, 2, 2)[:, :lines]
    return _draw(x, points, every=8)


def zigzag(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """1 ... 5 random white zigzags of four segments (MNIST-C)."""
    points = _rand(x, generator, len(x), 5, 5, 2)[:, :severity]
    return _draw(x, points, every=1)


def canny_edges(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Blend toward the image's edge map (Sobel gradient magnitude, smoothed, thinned by a
    threshold at half its maximum: an approximation of MNIST-C's Canny edges), weight 0.2 ... 1.
    """
    amount = (0.2, 0.4, 0.6, 0.8, 1.0)[severity - 1]
    grey = _gaussian_blur(x.mean(dim=1, keepdim=True), 0.5)
    sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=x.device, dtype=x.dtype)
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, sobel.view(1, 1, 3, 3))
    gy = F.conv2d(padded, sobel.t().contiguous().view(1, 1, 3, 3))
    magnitude = torch.sqrt(gx**2 + gy**2)
    top = magnitude.amax(dim=(2, 3), keepdim=True)
    edges = (magnitude > 0.5 * top).to(x.dtype).expand_as(x)
    return _blend(x, edges, amount)


MNIST_C: dict[str, Corruption] = {
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "shear": shear,
    "scale": scale,
    "rotate": rotate,
    "brightness": brightness,
    "translate": translate,
    "stripe": stripe,
    "fog": fog,
    "spatter": spatter,
    "dotted_line": dotted_line,
    "zigzag": zigzag,
    "canny_edges": canny_edges,
}
IMAGENET_C: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "elastic_transform": elastic_transform,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}
ALL: dict[str, Corruption] = {**IMAGENET_C, **MNIST_C}


def catalogue(channels: int) -> dict[str, Corruption]:
    """The corruptions that apply: MNIST-C's for grayscale images, ImageNet-C's for colour."""
    return MNIST_C if channels == 1 else IMAGENET_C


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """``name`` at ``severity`` (0: ``x`` itself) on an (N, C, H, W) batch in [0, 1], seeded."""
    if name not in ALL:
        raise CorruptionError(f"unknown corruption {name!r}; choose from {', '.join(ALL)}")
    if not 0 <= severity <= 5:
        raise CorruptionError(f"severity must be from 0 to 5, got {severity}")
    if x.ndim != 4:
        raise CorruptionError(f"corruptions take images (N, C, H, W), got {tuple(x.shape)}")
    if severity == 0:
        return x
    generator = torch.Generator().manual_seed(seed)
    return ALL[name](x.float(), severity, generator).to(x.dtype)


def random_corruption(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of the batch through one random corruption of its catalogue at a random
    severity 1-5 (training augmentation; per image, grouped by corruption)."""
    table = catalogue(x.shape[1])
    names = list(table)
    choice = torch.randint(len(names), (len(x),), generator=generator)
    level = torch.randint(1, 6, (len(x),), generator=generator)
    out = x.clone()
    for index in choice.unique().tolist():
        for severity in level[choice == index].unique().tolist():
            rows = ((choice == index) & (level == severity)).nonzero()[:, 0].to(x.device)
            out[rows] = table[names[index]](x[rows], int(severity), generator)
    return out


def augmix(
    x: torch.Tensor, generator: torch.Generator, width: int = 3, depth: int = 3
) -> torch.Tensor:
    """AugMix (Hendrycks et al., ICLR 2020): ``width`` chains of 1 to ``depth`` random
    corruptions, mixed with Dirichlet(1) weights w, then blended with the image:
    (1 - m) x + m sum_i w_i chain_i(x), m ~ Beta(1, 1) per image."""
    exponential = -torch.log(torch.rand(len(x), width, generator=generator).clamp_min(1e-12))
    weights = exponential / exponential.sum(1, keepdim=True)  # Dirichlet(1, ..., 1)
    m = torch.rand(len(x), generator=generator).to(x.device, x.dtype).view(-1, 1, 1, 1)
    mixed = torch.zeros_like(x)
    for chain in range(width):
        y = x
        for _ in range(int(torch.randint(1, depth + 1, (1,), generator=generator))):
            y = random_corruption(y, generator)
        mixed = mixed + weights[:, chain].to(x.device, x.dtype).view(-1, 1, 1, 1) * y
    return (1 - m) * x + m * mixed


def corrupted(batch: torch.Tensor, top: float | None, kind: str = "random") -> torch.Tensor:
    """Training augmentation of raw pixels in [0, ``top``]: half the images, drawn at random,
    through ``random_corruption`` ("random") or ``augmix`` ("augmix"); torch's global
    generator draws (the trainer seeds it each epoch). Returns a float batch."""
    top = top or 1.0
    x = batch.float() / top
    chosen = (torch.rand(len(x)) < 0.5).nonzero()[:, 0].to(x.device)
    if len(chosen):
        change = augmix if kind == "augmix" else random_corruption
        x = x.index_copy(0, chosen, change(x[chosen], torch.default_generator))
    return x * top

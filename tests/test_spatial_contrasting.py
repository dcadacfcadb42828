"""Spatial contrasting: the loss against a brute-force loop, patch sampling, feature maps."""

from __future__ import annotations

import math

import pytest
import torch

from tripletnet.data.augment import augment
from tripletnet.errors import TripletnetError
from tripletnet.losses.spatial_contrasting import (
    SpatialContrastingLoss,
    sample_patch_pairs,
    spatial_contrasting_loss,
)
from tripletnet.models import build_model
from tripletnet.models.feature_maps import default_layer, feature_map


def brute_force_loss(first: torch.Tensor, second: torch.Tensor) -> float:
    n = len(first)
    dist = [[math.dist(first[i].tolist(), second[j].tolist()) for j in range(n)] for i in range(n)]
    rows = cols = 0.0
    for i in range(n):
        rows -= math.log(math.exp(-dist[i][i]) / sum(math.exp(-dist[i][k]) for k in range(n)))
        cols -= math.log(math.exp(-dist[i][i]) / sum(math.exp(-dist[k][i]) for k in range(n)))
    return 0.5 * (rows + cols) / n


def test_loss_matches_brute_force_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    first, second = torch.randn(2, 6, 4, generator=generator, dtype=torch.float64)
    loss = spatial_contrasting_loss(first, second)
    assert loss.item() == pytest.approx(brute_force_loss(first, second), rel=1e-9)


def test_identical_features_give_finite_gradients() -> None:
    first = torch.ones(4, 3, requires_grad=True)
    second = torch.ones(4, 3, requires_grad=True)
    loss = spatial_contrasting_loss(first, second)
    loss.backward()
    assert torch.isfinite(loss)
    assert first.grad is not None and torch.isfinite(first.grad).all()
    assert second.grad is not None and torch.isfinite(second.grad).all()
    assert loss.item() == pytest.approx(math.log(4), rel=1e-5)  # all distances equal: uniform


def test_loss_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        spatial_contrasting_loss(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="at least 2"):
        spatial_contrasting_loss(torch.zeros(1, 2), torch.zeros(1, 2))


def windows(image: torch.Tensor, size: int, pool: str) -> list[torch.Tensor]:
    """Every size x size window of a (C, H, W) map, pooled: the brute-force candidates."""
    _, height, width = image.shape
    out = []
    for top in range(height - size + 1):
        for left in range(width - size + 1):
            patch = image[:, top : top + size, left : left + size].flatten(1)
            out.append(patch.mean(1) if pool == "avg" else patch.amax(1))
    return out


@pytest.mark.parametrize(("size", "pool"), [(1, "avg"), (2, "avg"), (2, "max"), (3, "max")])
def test_patches_are_two_distinct_pooled_windows_of_their_own_image(size: int, pool: str) -> None:
    generator = torch.Generator().manual_seed(1)
    maps = torch.randn(8, 3, 4, 5, generator=generator)
    first, second = sample_patch_pairs(maps, size, pool, generator)  # type: ignore[arg-type]
    assert first.shape == second.shape == (8, 3)
    for n in range(8):
        candidates = windows(maps[n], size, pool)
        index_first = [i for i, c in enumerate(candidates) if torch.allclose(c, first[n])]
        index_second = [i for i, c in enumerate(candidates) if torch.allclose(c, second[n])]
        assert index_first and index_second
        if pool == "avg":  # random averages are unique, so the windows themselves differ
            assert index_first != index_second


def test_a_patch_with_one_place_only_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="one place only"):  # both patches would be the same
        sample_patch_pairs(torch.randn(3, 2, 4, 4), 4, "avg")


def test_patch_larger_than_map_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="does not fit the 3x3 feature map"):
        sample_patch_pairs(torch.zeros(2, 1, 3, 3), patch_size=4)
    with pytest.raises(ValueError, match="pooling"):
        SpatialContrastingLoss(pooling="median")  # type: ignore[arg-type]


def test_loss_module_trains_through_a_feature_map() -> None:
    model = build_model("semisup-mnist", (1, 8, 8))
    layer = default_layer(model, (1, 8, 8))
    maps = feature_map(model, torch.randn(6, 1, 8, 8), layer)
    assert maps.shape[-2:] == (3, 3)
    loss = SpatialContrastingLoss(patch_size=2)(maps)
    loss.backward()
    assert all(p.grad is not None for p in model.net[0].parameters())


@pytest.mark.parametrize(
    ("name", "shape", "expected"),
    [("semisup-mnist", (1, 28, 28), (128, 6, 6)), ("mnist", (1, 28, 28), (128, 3, 3))],
)
def test_default_layer_is_the_last_spatial_map(
    name: str, shape: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    model = build_model(name, shape)
    maps = feature_map(model, torch.zeros(2, *shape), default_layer(model, shape))
    assert tuple(maps.shape[1:]) == expected


def test_feature_map_errors_name_the_fix() -> None:
    model = build_model("semisup-mnist", (1, 8, 8))
    with pytest.raises(TripletnetError, match="earlier layer"):
        feature_map(model, torch.zeros(2, 1, 8, 8), len(model.net))
    with pytest.raises(TripletnetError, match="no spatial feature map"):
        default_layer(build_model("mlp", (64,)), (64,))


def test_default_layer_leaves_room_for_two_patches() -> None:
    model = build_model("small-conv", (1, 8, 8))  # maps: 8x8, 4x4, then 2x2
    assert feature_map(model, torch.zeros(2, 1, 8, 8), default_layer(model, (1, 8, 8))).shape[
        -2:
    ] == (2, 2)
    layer = default_layer(model, (1, 8, 8), patch_size=2)
    assert feature_map(model, torch.zeros(2, 1, 8, 8), layer).shape[-2:] == (4, 4)


def test_augment_shifts_and_mirrors_within_the_image() -> None:
    batch = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    assert augment(batch) is batch
    torch.manual_seed(0)
    shifted = augment(batch, max_shift=1)
    assert shifted.shape == batch.shape
    for n in range(2):  # each output is the image translated by at most one pixel, edges kept
        padded = torch.nn.functional.pad(batch[n : n + 1], (1, 1, 1, 1), mode="replicate")[0]
        assert any(
            torch.equal(shifted[n], padded[:, y : y + 4, x : x + 4])
            for y in range(3)
            for x in range(3)
        )
    mirrored = augment(batch, mirror=True)
    for n in range(2):
        assert torch.equal(mirrored[n], batch[n]) or torch.equal(mirrored[n], batch[n].flip(-1))

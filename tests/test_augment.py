"""Image augmentations on tensors: shapes, seeding, and the identities they must reduce to."""

from __future__ import annotations

import pytest
import torch

from tripletnet.data.augment import (
    ImageAugmentation,
    augment,
    check_shift,
    colour_jitter,
    horizontal_flip,
    random_resized_crop,
)
from tripletnet.errors import TripletnetError


@pytest.fixture(params=[1, 3], ids=["grey", "rgb"])
def batch(request: pytest.FixtureRequest) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(6, request.param, 12, 16, generator=generator) * 255


def test_shapes_and_determinism_under_a_seed(batch: torch.Tensor) -> None:
    augmentation = ImageAugmentation(crop=True, flip=True, jitter=0.4)
    assert augmentation.active and not ImageAugmentation().active
    torch.manual_seed(3)
    first = augmentation(batch)
    torch.manual_seed(3)
    second = augmentation(batch)
    torch.manual_seed(4)
    third = augmentation(batch)
    assert first.shape == batch.shape
    assert torch.equal(first, second) and not torch.equal(first, third)


def test_crop_of_the_whole_image_is_the_identity(batch: torch.Tensor) -> None:
    out = random_resized_crop(batch, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(out, batch, atol=1e-3, rtol=1e-5)
    square = batch[..., :12]  # a square image: the box fits exactly
    torch.testing.assert_close(
        random_resized_crop(square, scale=(1.0, 1.0), ratio=(1.0, 1.0)), square, atol=1e-3, rtol=0
    )


def test_crops_differ_per_image_and_stay_in_range(batch: torch.Tensor) -> None:
    same = batch[:1].expand(8, -1, -1, -1)
    torch.manual_seed(0)
    out = random_resized_crop(same, scale=(0.2, 0.5))
    assert out.shape == same.shape
    assert not torch.allclose(out[0], out[1])
    assert out.min() >= batch.min() - 1e-3 and out.max() <= batch.max() + 1e-3


def test_flip_matches_torch_flip_where_chosen(batch: torch.Tensor) -> None:
    torch.manual_seed(5)
    chosen = torch.rand(len(batch)) < 0.5
    torch.manual_seed(5)
    out = horizontal_flip(batch)
    assert 0 < int(chosen.sum()) < len(batch)
    for image, original, flipped in zip(out, batch, chosen, strict=True):
        assert torch.equal(image, original.flip(-1) if flipped else original)
    assert torch.equal(horizontal_flip(batch, p=0.0), batch)


def test_jitter_zero_is_the_identity_and_jitter_keeps_uint8_in_range(batch: torch.Tensor) -> None:
    assert colour_jitter(batch, 0.0) is batch
    pixels = batch.to(torch.uint8)
    torch.manual_seed(0)
    out = colour_jitter(pixels, 0.9)
    assert out.dtype == torch.float32 and out.shape == batch.shape
    assert out.min() >= 0 and out.max() <= 255
    assert not torch.allclose(out, pixels.float())
    with pytest.raises(ValueError, match="strength"):
        colour_jitter(batch, 1.5)


def test_brightness_only_scales_a_grey_image() -> None:
    grey = torch.full((4, 1, 5, 5), 100.0)
    torch.manual_seed(0)
    out = colour_jitter(grey, 0.5)
    torch.manual_seed(0)
    factors = 1 + 0.5 * (2 * torch.rand(4, 3) - 1)
    # a constant image: contrast and saturation leave it, brightness scales it
    torch.testing.assert_close(out[:, 0, 0, 0], 100.0 * factors[:, 0])


def test_vectors_pass_through() -> None:
    vectors = torch.rand(4, 7)
    assert ImageAugmentation(crop=True, flip=True, jitter=0.2)(vectors) is vectors
    with pytest.raises(ValueError, match="N, C, H, W"):
        random_resized_crop(vectors)


def test_a_shift_must_leave_part_of_the_image() -> None:
    check_shift(7, (1, 8, 8))  # the largest that keeps a row and a column of the image
    check_shift(100, (64,))  # vectors are not shifted
    for shift, shape in ((8, (1, 8, 8)), (100, (1, 8, 8)), (12, (3, 12, 16))):
        with pytest.raises(TripletnetError, match=r"largest shift allowed is \d+"):
            check_shift(shift, shape)
    with pytest.raises(TripletnetError, match=r"too large for 12x16 images.*allowed is 11"):
        check_shift(12, (3, 12, 16))
    torch.manual_seed(0)
    shifted = augment(torch.arange(64.0).reshape(1, 1, 8, 8).repeat(50, 1, 1, 1), 7)
    assert shifted.shape == (50, 1, 8, 8)

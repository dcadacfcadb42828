"""Uploads become the same raw samples the dataset loaders return."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from search_images import digit_png

from tripletnet.data import load_dataset
from tripletnet.search.images import ImageError, RawFormat, decode_image


def test_a_digit_png_becomes_the_digits_sample_it_was_drawn_from() -> None:
    raw = RawFormat((1, 8, 8), top=16.0)
    sample = raw.to_sample(decode_image(digit_png(5)))
    expected = load_dataset("digits").test.x[5]
    assert sample.dtype == np.float32 and sample.shape == (1, 8, 8)
    np.testing.assert_allclose(sample, expected, atol=16 / 255)


def test_image_datasets_get_uint8_pixels_of_the_model_shape() -> None:
    picture = Image.new("RGB", (40, 20), (255, 128, 0))
    grey = RawFormat((1, 28, 28)).to_sample(picture)
    colour = RawFormat((3, 32, 32)).to_sample(picture)
    assert (grey.dtype, grey.shape, colour.shape) == (np.uint8, (1, 28, 28), (3, 32, 32))
    assert colour[:, 0, 0].tolist() == [255, 128, 0]


def test_thumbnails_undo_the_pixel_range() -> None:
    sample = np.full((1, 8, 8), 16.0, dtype=np.float32)
    picture = RawFormat((1, 8, 8), top=16.0).thumbnail(sample)
    assert picture.shape == (8, 8, 1) and int(picture.min()) == 255


def test_a_model_of_vectors_takes_no_images() -> None:
    with pytest.raises(ImageError, match="query it with a vector"):
        RawFormat((64,)).to_sample(Image.new("L", (8, 8)))

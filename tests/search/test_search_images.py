"""Uploads become the same raw samples the dataset loaders return."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from search_images import digit_png

from tripletnet.data import load_dataset
from tripletnet.data.images import to_array
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


def test_a_wide_photo_is_centre_cropped_as_training_images_are() -> None:
    """A 60 x 20 upload is not squashed: its centre 20 x 20 square is the sample, exactly as
    the folder and CSV loaders (``--image-size``) make a training image of it."""
    pixels = np.zeros((20, 60, 3), dtype=np.uint8)
    pixels[:, 20:40] = (10, 200, 30)  # the centre square; the sides are black
    picture = Image.fromarray(pixels)
    sample = RawFormat((3, 10, 10)).to_sample(picture)
    np.testing.assert_array_equal(sample, to_array(picture, 3, 10))
    colour = np.array([10, 200, 30])[:, None, None]
    assert (sample[:, :, 1:-1] == colour).all()  # the colour, not the black sides ...
    assert (sample[:, :, [0, -1]] >= 0.8 * colour).all()  # (the filter's reach blends a little)
    stretched = np.asarray(picture.resize((10, 10), Image.Resampling.BILINEAR))
    assert stretched[:, 0].max() == 0  # squashing would have kept the black sides


def test_thumbnails_undo_the_pixel_range() -> None:
    sample = np.full((1, 8, 8), 16.0, dtype=np.float32)
    picture = RawFormat((1, 8, 8), top=16.0).thumbnail(sample)
    assert picture.shape == (8, 8, 1) and int(picture.min()) == 255


def test_a_model_of_vectors_takes_no_images() -> None:
    with pytest.raises(ImageError, match="query it with a vector"):
        RawFormat((64,)).to_sample(Image.new("L", (8, 8)))

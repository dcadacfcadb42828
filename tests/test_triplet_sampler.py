"""Hoffer's random triplets: classes right, anchor != positive, uniform classes, seeded."""

import numpy as np
import pytest

from tripletnet.errors import TripletnetError
from tripletnet.sampling import RandomTripletSampler, fixed_test_triplets


@pytest.fixture
def labels() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.permutation(np.repeat(np.arange(5), [2, 3, 10, 40, 100]))


def test_classes_and_distinct_anchor_positive(labels: np.ndarray) -> None:
    triplets = RandomTripletSampler(labels).sample(20_000, np.random.default_rng(0))
    anchor, positive, negative = triplets.T
    assert (anchor != positive).all()
    assert (labels[anchor] == labels[positive]).all()
    assert (labels[anchor] != labels[negative]).all()


def test_anchor_class_is_uniform_not_frequency_weighted(labels: np.ndarray) -> None:
    triplets = RandomTripletSampler(labels).sample(50_000, np.random.default_rng(0))
    share = np.bincount(labels[triplets[:, 0]], minlength=5) / len(triplets)
    np.testing.assert_allclose(share, 0.2, atol=0.01)


def test_every_member_of_a_class_is_drawn(labels: np.ndarray) -> None:
    triplets = RandomTripletSampler(labels).sample(50_000, np.random.default_rng(0))
    assert set(np.unique(triplets)) == set(range(len(labels)))


def test_epochs_are_seeded_and_fresh(labels: np.ndarray) -> None:
    sampler = RandomTripletSampler(labels)
    np.testing.assert_array_equal(
        sampler.epoch(100, seed=3, epoch=2), sampler.epoch(100, seed=3, epoch=2)
    )
    assert not np.array_equal(
        sampler.epoch(100, seed=3, epoch=2), sampler.epoch(100, seed=3, epoch=3)
    )
    assert not np.array_equal(
        sampler.epoch(100, seed=3, epoch=2), sampler.epoch(100, seed=4, epoch=2)
    )


def test_fixed_test_triplets_are_fixed(labels: np.ndarray) -> None:
    np.testing.assert_array_equal(
        fixed_test_triplets(labels, 50, 0), fixed_test_triplets(labels, 50, 0)
    )


def test_classes_with_one_sample_serve_only_as_negatives() -> None:
    labels = np.array([0, 0, 1, 2])
    triplets = RandomTripletSampler(labels).sample(1000, np.random.default_rng(0))
    assert (labels[triplets[:, 0]] == 0).all()
    assert set(labels[triplets[:, 2]]) == {1, 2}


def test_single_class_is_a_clear_error() -> None:
    with pytest.raises(TripletnetError, match="at least two classes"):
        RandomTripletSampler(np.zeros(10, dtype=int))

"""The P x K sampler: class balance, coverage, seeding, ranks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from tripletnet.checks import InvalidInputError
from tripletnet.sampling import PKSampler

LABELS = np.repeat(np.arange(12), [40, 3, 1, 17, 20, 20, 25, 20, 8, 20, 9, 16])


def test_batches_have_p_classes_of_k_and_cover_every_sample() -> None:
    sampler = PKSampler(LABELS, classes_per_batch=4, samples_per_class=5, seed=7)
    batches = sampler.epoch_batches(0)
    for batch in batches:
        assert len(batch) == 20
        classes, counts = np.unique(LABELS[batch], return_counts=True)
        assert len(classes) == 4 and set(counts) == {5}
    seen = np.concatenate(batches)
    assert set(seen) == set(range(len(LABELS)))
    assert len(seen) < 1.3 * len(LABELS)  # few repeats: only the top-ups


def test_seeded_per_epoch_and_usable_as_batch_sampler() -> None:
    sampler = PKSampler(LABELS, 3, 4, seed=1)
    again = PKSampler(LABELS, 3, 4, seed=1)
    assert all(
        np.array_equal(a, b) for a, b in zip(sampler.batches(2), again.batches(2), strict=True)
    )
    assert not np.array_equal(sampler.epoch_batches(0)[0], sampler.epoch_batches(1)[0])
    loader = torch.utils.data.DataLoader(torch.arange(len(LABELS)), batch_sampler=sampler)
    sampler.set_epoch(1)
    first = next(iter(loader))
    assert len(loader) == len(sampler.epoch_batches(1))
    assert first.tolist() == sampler.epoch_batches(1)[0].tolist()


def test_ranks_split_the_epoch() -> None:
    whole = PKSampler(LABELS, 4, 4, seed=0).epoch_batches(0)
    ranks = [
        PKSampler(LABELS, 4, 4, seed=0, rank=r, world_size=3).epoch_batches(0) for r in range(3)
    ]
    assert len({len(part) for part in ranks}) == 1
    assert [b.tolist() for b in ranks[1]] == [b.tolist() for b in whole[1 : 3 * len(ranks[0]) : 3]]


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="distinct classes"):
        PKSampler(LABELS, 13, 2)
    with pytest.raises(InvalidInputError):
        PKSampler(LABELS, 0, 2)
    with pytest.raises(InvalidInputError, match="rank"):
        PKSampler(LABELS, 2, 2, rank=2, world_size=2)


def test_given_as_sampler_it_says_batch_sampler() -> None:
    """As ``sampler=`` (where pytorch-metric-learning's MPerClassSampler goes) the DataLoader
    would batch whole index lists together: refused, naming ``batch_sampler=``."""
    data = TensorDataset(torch.arange(len(LABELS)))
    for batch_size in (1, 16):
        loader = DataLoader(data, sampler=PKSampler(LABELS, 4, 4), batch_size=batch_size)
        with pytest.raises(InvalidInputError, match="batch_sampler=PKSampler"):
            next(iter(loader))

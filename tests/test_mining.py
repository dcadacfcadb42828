"""Miners against plain loops over the batch's pairs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tripletnet import mining
from tripletnet.checks import InvalidInputError
from tripletnet.distances import CosineSimilarity, Euclidean


def data(size: int = 30, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(size, 6, dtype=torch.float64, generator=generator)
    return x, torch.randint(0, classes, (size,), generator=generator)


def as_set(triplets: mining.Triplets) -> set[tuple[int, int, int]]:
    return set(zip(*(t.tolist() for t in triplets), strict=True))


def positives(y: torch.Tensor, a: int) -> list[int]:
    return [p for p in range(len(y)) if p != a and y[p] == y[a]]


def negatives(y: torch.Tensor, a: int) -> list[int]:
    return [n for n in range(len(y)) if y[n] != y[a]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_all_and_batch_hard(seed: int) -> None:
    x, y = data(seed=seed)
    d = Euclidean().matrix(x)
    expected = {(a, p, n) for a in range(len(y)) for p in positives(y, a) for n in negatives(y, a)}
    assert as_set(mining.BatchAllMiner()(x, y)) == expected
    hard = set()
    for a in range(len(y)):
        if positives(y, a) and negatives(y, a):
            p = max(positives(y, a), key=lambda i: float(d[a, i]))
            n = min(negatives(y, a), key=lambda i: float(d[a, i]))
            hard.add((a, p, n))
    assert as_set(mining.BatchHardMiner()(x, y)) == hard


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_semi_hard_and_easy_positive(seed: int) -> None:
    x, y = data(seed=seed)
    d = Euclidean().matrix(x)
    semi = set()
    for a in range(len(y)):
        for p in positives(y, a):
            farther = [n for n in negatives(y, a) if d[a, p] < d[a, n] < d[a, p] + 1.0]
            if farther:
                semi.add((a, p, min(farther, key=lambda i: float(d[a, i]))))
    assert as_set(mining.SemiHardMiner(margin=1.0)(x, y)) == semi
    easy = set()
    for a in range(len(y)):
        if positives(y, a):
            p = min(positives(y, a), key=lambda i: float(d[a, i]))
            farther = [n for n in negatives(y, a) if d[a, n] > d[a, p]]
            if farther:
                easy.add((a, p, min(farther, key=lambda i: float(d[a, i]))))
    assert as_set(mining.EasyPositiveMiner()(x, y)) == easy


def test_pair_miners() -> None:
    x, y = data()
    s = CosineSimilarity().matrix(x)
    mined = mining.MultiSimilarityMiner(epsilon=0.1)(x, y)
    for a in range(len(y)):
        pos, neg = positives(y, a), negatives(y, a)
        for n in neg:
            keep = bool(pos) and float(s[a, n]) + 0.1 > min(float(s[a, p]) for p in pos)
            assert bool(mined.negative[a, n]) == keep
        for p in pos:
            keep = bool(neg) and float(s[a, p]) - 0.1 < max(float(s[a, n]) for n in neg)
            assert bool(mined.positive[a, p]) == keep
    d = Euclidean().matrix(x)
    margin = mining.PairMarginMiner(pos_margin=3.0, neg_margin=3.5)(x, y)
    for a in range(len(y)):
        assert {p for p in positives(y, a) if d[a, p] > 3.0} == set(
            margin.positive[a].nonzero().view(-1).tolist()
        )
        assert {n for n in negatives(y, a) if d[a, n] < 3.5} == set(
            margin.negative[a].nonzero().view(-1).tolist()
        )


def test_distance_weighted_draws_valid_seeded_negatives() -> None:
    x, y = data(size=60, classes=5)
    x = F.normalize(x, dim=1)
    first = mining.DistanceWeightedMiner(seed=3)(x, y)
    again = mining.DistanceWeightedMiner(seed=3)(x, y)
    assert as_set(first) == as_set(again)
    anchors, pos, neg = (t.tolist() for t in first)
    assert len(anchors) == sum(len(positives(y, a)) for a in range(len(y)))
    d = Euclidean().matrix(x)
    for a, p, n in zip(anchors, pos, neg, strict=True):
        assert y[p] == y[a] and p != a and y[n] != y[a]
        assert d[a, n] < 1.4 or not any(d[a, k] < 1.4 for k in negatives(y, a))


def test_miner_input_is_checked() -> None:
    with pytest.raises(InvalidInputError):
        mining.BatchHardMiner()(torch.randn(4, 3), torch.tensor([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(InvalidInputError):
        mining.SemiHardMiner(margin=-1.0)

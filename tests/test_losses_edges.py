"""Edge cases every loss must survive, and the errors bad arguments raise."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from tripletnet import losses, mining
from tripletnet.checks import InvalidInputError
from tripletnet.distances import CosineSimilarity, Euclidean

PAIR_AND_TRIPLET: dict[str, Callable[[], losses.MetricLoss]] = {
    "triplet": losses.TripletMarginLoss,
    "triplet soft": lambda: losses.TripletMarginLoss(soft_margin=True),
    "triplet hard": lambda: losses.TripletMarginLoss(miner=mining.BatchHardMiner()),
    "triplet semi-hard": lambda: losses.TripletMarginLoss(miner=mining.SemiHardMiner()),
    "triplet easy-positive": lambda: losses.TripletMarginLoss(miner=mining.EasyPositiveMiner()),
    "triplet distance-weighted": lambda: losses.TripletMarginLoss(
        miner=mining.DistanceWeightedMiner()
    ),
    "distance ratio": losses.DistanceRatioTripletLoss,
    "contrastive": losses.ContrastiveLoss,
    "lifted": losses.LiftedStructureLoss,
    "ntxent": losses.NTXentLoss,
    "npair": losses.NPairLoss,
    "supcon": losses.SupConLoss,
    "multi-similarity": lambda: losses.MultiSimilarityLoss(miner=mining.MultiSimilarityMiner()),
    "circle": losses.CircleLoss,
    "contrastive pair-margin": lambda: losses.ContrastiveLoss(miner=mining.PairMarginMiner()),
}
PROXY: dict[str, Callable[[], losses.MetricLoss]] = {
    "arcface": lambda: losses.ArcFaceLoss(4, 6),
    "cosface": lambda: losses.CosFaceLoss(4, 6),
    "proxy-nca": lambda: losses.ProxyNCALoss(4, 6),
    "proxy-anchor": lambda: losses.ProxyAnchorLoss(4, 6),
}
ALL = {**PAIR_AND_TRIPLET, **PROXY}


def value_and_grad(
    loss: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[float, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    value = loss(x, y)
    value.backward()
    assert x.grad is not None
    return value.item(), x.grad


@pytest.mark.parametrize("name", list(ALL))
def test_identical_embeddings_give_finite_gradients(name: str) -> None:
    x = torch.ones(8, 6, dtype=torch.float64)
    value, grad = value_and_grad(ALL[name]().double(), x, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    assert torch.isfinite(torch.tensor(value)) and torch.isfinite(grad).all()


@pytest.mark.parametrize("name", list(PAIR_AND_TRIPLET))
@pytest.mark.parametrize("labels", [[0] * 6, [0, 1, 2, 3, 4, 5]], ids=["one class", "singletons"])
def test_batches_without_triplets_give_zero(name: str, labels: list[int]) -> None:
    x = torch.randn(6, 6, dtype=torch.float64)
    value, grad = value_and_grad(PAIR_AND_TRIPLET[name](), x, torch.tensor(labels))
    assert torch.isfinite(grad).all()
    pair_losses = ("contrastive", "multi-similarity", "lifted", "supcon")
    if labels == [0] * 6 and any(name.startswith(p) for p in pair_losses):
        return  # positive pairs alone still give a (finite) loss
    assert value == 0.0


@pytest.mark.parametrize("name", list(PAIR_AND_TRIPLET))
def test_an_empty_batch_gives_zero(name: str) -> None:
    x = torch.zeros(0, 6, dtype=torch.float64)
    value, grad = value_and_grad(PAIR_AND_TRIPLET[name](), x, torch.zeros(0, dtype=torch.long))
    assert value == 0.0 and grad.shape == (0, 6)


def test_batch_all_agrees_with_listed_triplets() -> None:
    x, y = torch.randn(40, 6, dtype=torch.float64), torch.randint(0, 5, (40,))
    fast = losses.TripletMarginLoss(margin=0.4)
    listed = losses.TripletMarginLoss(margin=0.4, miner=mining.BatchAllMiner())
    torch.testing.assert_close(fast(x, y), listed(x, y), rtol=1e-10, atol=0)


def test_cosine_triplet_uses_similarity_gap() -> None:
    x, y = torch.randn(20, 6, dtype=torch.float64), torch.randint(0, 3, (20,))
    loss = losses.TripletMarginLoss(
        margin=0.1, distance=CosineSimilarity(), miner=mining.BatchAllMiner()
    )
    a, p, n = mining.all_triplets(losses.pair_masks(y, y, True))
    s = CosineSimilarity().matrix(x)
    terms = torch.relu(s[a, n] - s[a, p] + 0.1)
    torch.testing.assert_close(loss(x, y), terms.sum() / (terms > 0).sum())


def test_reference_embeddings_compare_batch_with_reference() -> None:
    x, y = torch.randn(10, 4, dtype=torch.float64), torch.randint(0, 3, (10,))
    ref, ref_y = torch.randn(15, 4, dtype=torch.float64), torch.randint(0, 3, (15,))
    loss = losses.ContrastiveLoss(reduction="sum")
    d = Euclidean().matrix(x, ref)
    same = y[:, None] == ref_y[None]
    expected = 0.5 * (torch.where(same, d**2, torch.relu(1 - d) ** 2)).sum()
    torch.testing.assert_close(loss(x, y, ref, ref_y), expected)


def test_cross_batch_memory_equals_loss_against_batch_and_memory() -> None:
    first, second = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)
    y1, y2 = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), torch.tensor([0, 1, 1, 2, 2, 3, 3, 0])
    inner = losses.SupConLoss(reduction="sum")
    xbm = losses.CrossBatchMemory(inner, memory_size=12)
    torch.testing.assert_close(xbm(first, y1), inner(first, y1))
    both = xbm(second, y2)
    memory, memory_y = first[:4], y1[:4]  # the 12 most recent: this batch and 4 of the last
    reference = torch.cat([second, memory])
    from tripletnet.losses.base import Comparison

    expected = inner.compute(Comparison(second, y2, reference, torch.cat([y2, memory_y]), True))
    torch.testing.assert_close(both, expected)
    assert len(xbm.memory) == 12


@pytest.mark.parametrize("name", list(ALL))
def test_bad_input_is_refused(name: str) -> None:
    loss = ALL[name]()
    x, y = torch.randn(8, 6), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    with pytest.raises(InvalidInputError, match="NaN"):
        loss(x.clone().index_fill_(0, torch.tensor([2]), float("nan")), y)
    with pytest.raises(InvalidInputError, match="integer"):
        loss(x, y.float())
    with pytest.raises(InvalidInputError, match="labels"):
        loss(x, y[:5])
    with pytest.raises(InvalidInputError, match=r"\(N, D\)"):
        loss(x.view(8, 2, 3), y)


@pytest.mark.parametrize(
    "make",
    [
        lambda: losses.TripletMarginLoss(margin=-0.1),
        lambda: losses.ContrastiveLoss(neg_margin=-1.0),
        lambda: losses.LiftedStructureLoss(neg_margin=0.0),
        lambda: losses.NTXentLoss(temperature=-1.0),
        lambda: losses.CircleLoss(margin=-0.2),
        lambda: losses.ArcFaceLoss(3, 4, margin=-0.5),
        lambda: losses.TripletMarginLoss(reduction="median"),  # type: ignore[arg-type]
        lambda: losses.TripletMarginLoss(miner=mining.MultiSimilarityMiner()),  # type: ignore[arg-type]
        lambda: losses.ContrastiveLoss(miner=mining.BatchHardMiner()),  # type: ignore[arg-type]
        lambda: losses.MultiSimilarityLoss(distance=Euclidean()),
        lambda: losses.CrossBatchMemory(losses.ProxyNCALoss(3, 4)),
    ],
)
def test_bad_arguments_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(InvalidInputError):
        make()


def test_proxy_labels_out_of_range() -> None:
    with pytest.raises(InvalidInputError, match=r"\[0, 4\)"):
        losses.ArcFaceLoss(4, 6)(torch.randn(3, 6), torch.tensor([0, 1, 4]))

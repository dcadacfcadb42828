"""Our losses against pytorch-metric-learning (the test extra) as an oracle, in float64."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from tripletnet import losses, mining

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
pml_distances = pytest.importorskip("pytorch_metric_learning.distances")
pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
pml_reducers = pytest.importorskip("pytorch_metric_learning.reducers")

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SHAPES = [(16, 2), (32, 4), (60, 12)]  # (batch size, classes)


def data(size: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(size, 8, dtype=torch.float64, generator=generator)
    return x, torch.randint(0, classes, (size,), generator=generator)


def plain_l2() -> object:
    return pml_distances.LpDistance(normalize_embeddings=False, p=2, power=1)


def agree(ours: Loss, theirs: Loss, x: torch.Tensor, y: torch.Tensor) -> None:
    """Value and gradient agree to 1e-5 relative."""
    mine, other = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    value, expected = ours(mine, y), theirs(other, y)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-10)
    value.backward()
    expected.backward()
    torch.testing.assert_close(mine.grad, other.grad, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize(("size", "classes"), SHAPES)
def test_triplet_margin_batch_all(size: int, classes: int) -> None:
    x, y = data(size, classes)
    theirs = pml_losses.TripletMarginLoss(margin=0.3, distance=plain_l2())
    agree(losses.TripletMarginLoss(margin=0.3), theirs, x, y)


@pytest.mark.parametrize(("size", "classes"), SHAPES)
def test_triplet_batch_hard_soft_margin(size: int, classes: int) -> None:
    x, y = data(size, classes)
    miner = pml_miners.BatchHardMiner(distance=plain_l2())
    theirs = pml_losses.TripletMarginLoss(margin=0.0, smooth_loss=True, distance=plain_l2())
    ours = losses.TripletMarginLoss(soft_margin=True, miner=mining.BatchHardMiner())
    agree(ours, lambda x, y: theirs(x, y, miner(x, y)), x, y)


@pytest.mark.parametrize(("size", "classes"), SHAPES)
def test_lifted_structure(size: int, classes: int) -> None:
    x, y = data(size, classes)
    theirs = pml_losses.LiftedStructureLoss(neg_margin=1.0, pos_margin=0.0, distance=plain_l2())
    agree(losses.LiftedStructureLoss(neg_margin=1.0), theirs, x / 3, y)


@pytest.mark.parametrize(("size", "classes"), SHAPES)
@pytest.mark.parametrize("reduction", ["mean_nonzero", "mean", "sum"])
def test_contrastive(size: int, classes: int, reduction: str) -> None:
    """PML's ContrastiveLoss is a plain hinge, max(0, D - m_pos) and max(0, m_neg - D); Hadsell et
    al. square it and halve it. PML's unreduced per-pair hinges, squared and halved, are the oracle."""
    x, y = data(size, classes)
    hinges = pml_losses.ContrastiveLoss(
        pos_margin=0.5, neg_margin=3.0, distance=plain_l2(), reducer=pml_reducers.DoNothingReducer()
    )

    def theirs(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        terms = torch.cat([0.5 * part["losses"].pow(2) for part in hinges(x, y).values()])
        count = {"sum": 1, "mean": len(terms), "mean_nonzero": int(torch.count_nonzero(terms))}
        return terms.sum() / count[reduction]

    ours = losses.ContrastiveLoss(pos_margin=0.5, neg_margin=3.0, reduction=reduction)
    for scale in (1.0, 0.25):  # few negatives inside the margin, then most of them
        agree(ours, theirs, x * scale, y)


@pytest.mark.parametrize(("size", "classes"), SHAPES)
def test_softmax_family(size: int, classes: int) -> None:
    x, y = data(size, classes)
    ours = losses.NTXentLoss(temperature=0.2, reduction="mean_nonzero")
    agree(ours, pml_losses.NTXentLoss(temperature=0.2), x, y)
    agree(losses.SupConLoss(temperature=0.1), pml_losses.SupConLoss(temperature=0.1), x, y)


@pytest.mark.parametrize(("size", "classes"), SHAPES)
def test_multi_similarity_and_circle(size: int, classes: int) -> None:
    x, y = data(size, classes)
    theirs = pml_losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5)
    agree(losses.MultiSimilarityLoss(), theirs, x, y)
    agree(losses.CircleLoss(), pml_losses.CircleLoss(m=0.4, gamma=80), x, y)


@pytest.mark.parametrize(("size", "classes"), SHAPES)
def test_multi_similarity_miner(size: int, classes: int) -> None:
    x, y = data(size, classes)
    ours = losses.MultiSimilarityLoss(miner=mining.MultiSimilarityMiner(epsilon=0.1))
    miner = pml_miners.MultiSimilarityMiner(epsilon=0.1)
    theirs = pml_losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5)
    agree(ours, lambda x, y: theirs(x, y, miner(x, y)), x, y)


@pytest.mark.parametrize(("size", "classes"), SHAPES)
def test_classifier_losses(size: int, classes: int) -> None:
    x, y = data(size, classes)
    arc = losses.ArcFaceLoss(classes, 8, margin=0.5, scale=64.0).double()
    theirs = pml_losses.ArcFaceLoss(classes, 8, margin=math.degrees(0.5), scale=64).double()
    theirs.W.data = arc.proxies.data.T.clone()
    agree(arc, theirs, x, y)
    cos = losses.CosFaceLoss(classes, 8).double()
    theirs = pml_losses.CosFaceLoss(classes, 8, margin=0.35, scale=64).double()
    theirs.W.data = cos.proxies.data.T.clone()
    agree(cos, theirs, x, y)


@pytest.mark.parametrize(("size", "classes"), SHAPES)
def test_proxy_losses(size: int, classes: int) -> None:
    x, y = data(size, classes)
    nca = losses.ProxyNCALoss(classes, 8).double()
    theirs = pml_losses.ProxyNCALoss(classes, 8).double()
    theirs.proxies.data = nca.proxies.data.clone()
    agree(nca, theirs, x, y)
    anchor = losses.ProxyAnchorLoss(classes, 8).double()
    theirs = pml_losses.ProxyAnchorLoss(classes, 8, margin=0.1, alpha=32).double()
    theirs.proxies.data = anchor.proxies.data.clone()
    agree(anchor, theirs, x, y)


def test_pml_habits_get_errors_that_teach() -> None:
    """A PML indices_tuple as the third argument, or a PML miner given to our loss, is refused
    with the tripletnet way of doing it (the miner goes into the loss)."""
    from tripletnet.checks import InvalidInputError

    x, y = data(16, 4)
    indices = pml_miners.TripletMarginMiner()(x, y)
    with pytest.raises(InvalidInputError, match=r"indices_tuple\?.*miner=SemiHardMiner"):
        losses.TripletMarginLoss()(x, y, indices)
    with pytest.raises(InvalidInputError, match=r"pytorch-metric-learning's TripletMarginMiner"):
        losses.TripletMarginLoss(miner=pml_miners.TripletMarginMiner())
    with pytest.raises(InvalidInputError, match=r"MultiSimilarityMiner\(\)"):
        losses.ContrastiveLoss(miner=pml_miners.MultiSimilarityMiner())
    with pytest.raises(InvalidInputError, match="needs a PairMiner"):
        losses.ContrastiveLoss(miner=mining.SemiHardMiner())  # type: ignore[arg-type]

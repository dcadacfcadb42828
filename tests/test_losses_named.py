"""Issue 20's methods: SNR distance and contrastive loss and the TCM regulariser against
pytorch-metric-learning (float64, values and gradients to 1e-5); ElasticFace, energy confusion
and Metrix against brute-force loops; all of them on the degenerate batches."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tripletnet import losses
from tripletnet.checks import InvalidInputError
from tripletnet.distances import SNRDistance, pairwise_snr

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
pml_distances = pytest.importorskip("pytorch_metric_learning.distances")
pml_reducers = pytest.importorskip("pytorch_metric_learning.reducers")

SHAPES = [(16, 2), (32, 4), (60, 12)]


def data(size: int, classes: int, seed: int = 0, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(size, dim, dtype=torch.float64, generator=generator)
    return x, torch.randint(0, classes, (size,), generator=generator)


def agree(ours: Callable, theirs: Callable, x: torch.Tensor, *args: object) -> None:
    """Value and gradient agree to 1e-5 relative."""
    mine, other = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    value, expected = ours(mine, *args), theirs(other, *args)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-10)
    value.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(mine.grad, other.grad, rtol=1e-5, atol=1e-10)


# --- SNR (Yuan et al. 2019) ---------------------------------------------------------------


def test_snr_distance_matches_pml_and_the_definition() -> None:
    x, _ = data(20, 3)
    y, _ = data(7, 3, seed=1)
    plain = pml_distances.SNRDistance(normalize_embeddings=False)
    agree(lambda a: SNRDistance().matrix(a), plain, x)
    agree(lambda a: pairwise_snr(a, y), lambda a: plain(a, y), x)
    unit = SNRDistance(normalize=True)  # PML's default
    agree(lambda a: unit.matrix(a, y), lambda a: pml_distances.SNRDistance()(a, y), x)
    brute = torch.tensor(
        [[torch.var(y[j] - x[i]) / torch.var(x[i]) for j in range(7)] for i in range(20)]
    )
    torch.testing.assert_close(pairwise_snr(x, y), brute.double(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("size", "classes"), SHAPES)
@pytest.mark.parametrize("reduction", ["mean_nonzero", "mean", "sum"])
def test_snr_contrastive_matches_pml(size: int, classes: int, reduction: str) -> None:
    x, y = data(size, classes)
    hinges = pml_losses.SignalToNoiseRatioContrastiveLoss(
        pos_margin=0.1,
        neg_margin=2.0,
        reducer=pml_reducers.DoNothingReducer(),
        distance=pml_distances.SNRDistance(normalize_embeddings=False),
    )

    def theirs(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        terms = torch.cat([part["losses"] for part in hinges(x, y).values()])
        count = {"sum": 1, "mean": len(terms), "mean_nonzero": int(torch.count_nonzero(terms))}
        return terms.sum() / count[reduction]

    ours = losses.SNRContrastiveLoss(pos_margin=0.1, neg_margin=2.0, reduction=reduction)
    agree(ours, theirs, x, y)


def test_snr_contrastive_default_is_pml_default_on_one_kind_of_pair() -> None:
    """With only positive pairs PML's per-part mean over the non-zero terms is ours."""
    x, _ = data(12, 1)
    y = torch.zeros(12, dtype=torch.long)
    ours = losses.SNRContrastiveLoss(distance=SNRDistance(normalize=True))
    agree(ours, pml_losses.SignalToNoiseRatioContrastiveLoss(), x, y)


def test_snr_zero_mean_regulariser_is_added() -> None:
    x, y = data(16, 3)
    plain = losses.SNRContrastiveLoss()(x, y)
    regularised = losses.SNRContrastiveLoss(zero_mean_weight=0.5)(x, y)
    torch.testing.assert_close(regularised - plain, 0.5 * x.sum(dim=1).abs().mean())


# --- threshold-consistent margin (Zhang et al. 2024) ---------------------------------------


@pytest.mark.parametrize(("size", "classes"), SHAPES)
@pytest.mark.parametrize("margins", [(0.9, 0.5), (0.2, -0.1), (1.1, 0.0)])
def test_tcm_matches_pml(size: int, classes: int, margins: tuple[float, float]) -> None:
    x, y = data(size, classes, dim=4)
    kwargs = {"margin_plus": margins[0], "margin_minus": margins[1]}
    theirs = pml_losses.ThresholdConsistentMarginLoss(lambda_plus=0.7, lambda_minus=1.3, **kwargs)
    ours = losses.ThresholdConsistentMargin(*margins, pos_weight=0.7, neg_weight=1.3)
    agree(ours, theirs, x, y)


def test_regularized_adds_the_weighted_terms_and_keeps_proxies() -> None:
    x, y = data(24, 4)
    base = losses.ProxyAnchorLoss(4, 8).double()
    tcm, energy = losses.ThresholdConsistentMargin(), losses.EnergyConfusion()
    total = losses.Regularized(base, (0.5, tcm), (2.0, energy), (0.0, tcm))
    expected = base(x, y) + 0.5 * tcm(x, y) + 2.0 * energy(x, y)
    torch.testing.assert_close(total(x, y), expected)
    assert [p is base.proxies for p in total.parameters()] == [True]
    with pytest.raises(InvalidInputError, match="weight"):
        losses.Regularized(base, (-1.0, tcm))


# --- energy confusion (Chen & Deng 2019) ----------------------------------------------------


def _pair_energy(f: torch.Tensor, g: torch.Tensor, y: torch.Tensor, gy: torch.Tensor, same: bool):
    """Each pair's 0.5 ||f_i - g_j||^2, written plainly (self-pairs left out when g is f)."""
    return [
        0.5 * float(((f[i] - g[j]) ** 2).sum())
        for i in range(len(f))
        for j in range(len(g))
        if (y[i] == gy[j]) == same and not (g is f and i == j)
    ]


@pytest.mark.parametrize("normalize", [True, False])
def test_energy_confusion_is_the_log_of_the_weighted_pair_energy(normalize: bool) -> None:
    """The authors' layer: pairs weighted by 1 / (their kind's count), log E minimised."""
    x, y = data(14, 3)
    f = F.normalize(x, dim=1) if normalize else x
    same, different = _pair_energy(f, f, y, y, True), _pair_energy(f, f, y, y, False)
    expected = math.log(sum(same) / len(same) + sum(different) / len(different))
    value = losses.EnergyConfusion(normalize=normalize)(x, y)
    assert math.isclose(float(value), expected, rel_tol=1e-7)
    ref, ref_y = data(5, 3, seed=3)
    with_ref = losses.EnergyConfusion()(x, y, ref, ref_y)
    same, different = _pair_energy(x, ref, y, ref_y, True), _pair_energy(x, ref, y, ref_y, False)
    cross = sum(same) / len(same) + sum(different) / len(different)
    assert math.isclose(float(with_ref), math.log(cross), rel_tol=1e-7)


# --- ElasticFace (Boutros et al. 2022) ------------------------------------------------------


@pytest.mark.parametrize(("elastic", "fixed"), [
    (losses.ElasticArcFaceLoss, losses.ArcFaceLoss), (losses.ElasticCosFaceLoss, losses.CosFaceLoss),
])  # fmt: skip
def test_elasticface_without_spread_is_its_fixed_margin_loss(elastic: type, fixed: type) -> None:
    x, y = data(20, 5)
    torch.manual_seed(0)
    ours = elastic(5, 8, sigma=0.0).double()
    base = fixed(5, 8).double()
    base.proxies.data.copy_(ours.proxies.data)
    torch.testing.assert_close(ours(x, y), base(x, y))


def brute_margin_softmax(
    x: torch.Tensor, y: torch.Tensor, proxies: torch.Tensor, margins: list[float], arc: bool
) -> torch.Tensor:
    """Cross-entropy with each sample's own margin, one sample at a time."""
    total = torch.zeros((), dtype=x.dtype)
    for i in range(len(x)):
        cosine = F.normalize(x[i], dim=0) @ F.normalize(proxies, dim=1).T
        logits = cosine.clone()
        own, m = cosine[y[i]], margins[i]
        if arc:
            angle = torch.acos(own.clamp(-1, 1))
            logits[y[i]] = torch.cos(angle + m) if angle <= math.pi - m else own - m * math.sin(m)
        else:
            logits[y[i]] = own - m
        total = total - torch.log_softmax(64.0 * logits, dim=0)[y[i]]
    return total / len(x)


@pytest.mark.parametrize("arc", [True, False])
@pytest.mark.parametrize("plus", [False, True])
def test_elasticface_draws_per_sample_margins(arc: bool, plus: bool) -> None:
    x, y = data(30, 6)
    kind = losses.ElasticArcFaceLoss if arc else losses.ElasticCosFaceLoss
    loss = kind(6, 8, sigma=0.1, plus=plus, generator=torch.Generator().manual_seed(5)).double()
    draws = (
        (0.5 if arc else 0.35)
        + 0.1 * torch.randn(30, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ).tolist()
    if plus:  # the hardest sample (lowest cosine to its proxy) gets the largest margin
        own = (F.normalize(x, dim=1) * F.normalize(loss.proxies, dim=1)[y]).sum(1)
        order = torch.argsort(own).tolist()
        ranked = sorted(draws, reverse=True)
        margins = [0.0] * 30
        for rank, sample in enumerate(order):
            margins[sample] = ranked[rank]
        draws = margins
    expected = brute_margin_softmax(x, y, loss.proxies.detach(), draws, arc)
    torch.testing.assert_close(loss(x, y), expected, rtol=1e-9, atol=1e-9)


# --- Metrix (Venkataramanan et al. 2022) ----------------------------------------------------


def brute_targets(
    y: torch.Tensor, anchors: list[int], pairs: losses.MixPairs, self_out: bool
) -> list[list[tuple[float, float]]]:
    """(positive weight, negative weight) of each mixed example for each anchor label."""
    out = []
    for a, label in enumerate(anchors):
        row = []
        for k in range(len(pairs.first)):
            i, j, lam = int(pairs.first[k]), int(pairs.second[k]), float(pairs.lam[k])
            if self_out and a in (i, j):
                row.append((0.0, 0.0))
            elif int(y[i]) == label:
                row.append((lam, 1 - lam))
            elif int(y[j]) == label:
                row.append((1 - lam, lam))
            else:
                row.append((0.0, 0.0))
        out.append(row)
    return out


def brute_metrix(
    loss: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    mixed: torch.Tensor,
    pairs: losses.MixPairs,
) -> torch.Tensor:
    unit = F.normalize
    if isinstance(loss, losses.ProxyAnchorLoss):
        proxies = loss.proxies
        targets = brute_targets(y, list(range(len(proxies))), pairs, False)
        pulls, pushes, with_positive = [], [], 0
        for c, row in enumerate(targets):
            pos = sum(
                w
                * torch.exp(
                    -loss.alpha * (unit(mixed[k], dim=0) @ unit(proxies[c], dim=0) - loss.margin)
                )
                for k, (w, _) in enumerate(row)
                if w > 0
            )
            neg = sum(
                w
                * torch.exp(
                    loss.alpha * (unit(mixed[k], dim=0) @ unit(proxies[c], dim=0) + loss.margin)
                )
                for k, (_, w) in enumerate(row)
                if w > 0
            )
            with_positive += any(w > 0 for w, _ in row)
            pulls.append(torch.log(1 + pos))
            pushes.append(torch.log(1 + neg))
        return sum(pulls) / max(with_positive, 1) + sum(pushes) / len(proxies)
    targets = brute_targets(y, y.tolist(), pairs, True)
    if isinstance(loss, losses.MultiSimilarityLoss):
        terms = []
        for a, row in enumerate(targets):
            s = [unit(x[a], dim=0) @ unit(mixed[k], dim=0) for k in range(len(row))]
            pos = sum(
                w * torch.exp(-loss.alpha * (s[k] - loss.base))
                for k, (w, _) in enumerate(row)
                if w > 0
            )
            neg = sum(
                w * torch.exp(loss.beta * (s[k] - loss.base))
                for k, (_, w) in enumerate(row)
                if w > 0
            )
            terms.append(torch.log(1 + pos) / loss.alpha + torch.log(1 + neg) / loss.beta)
        return sum(terms) / len(terms)
    terms = []
    for a, row in enumerate(targets):
        for k, (wp, wn) in enumerate(row):
            if wp > 0 or wn > 0:
                d = torch.sqrt(((x[a] - mixed[k]) ** 2).sum() + 1e-12)
                terms.append(
                    wp * torch.relu(d - loss.pos_margin) ** 2 / 2
                    + wn * torch.relu(loss.neg_margin - d) ** 2 / 2
                )
    nonzero = sum(1 for t in terms if float(t) != 0)
    return sum(terms) / max(nonzero, 1)


@pytest.mark.parametrize("kind", ["contrastive", "multi-similarity", "proxy-anchor"])
def test_metrix_mixed_loss_matches_brute_force(kind: str) -> None:
    x, y = data(18, 4)
    loss = {
        "contrastive": lambda: losses.ContrastiveLoss(pos_margin=0.2, neg_margin=3.0),
        "multi-similarity": losses.MultiSimilarityLoss,
        "proxy-anchor": lambda: losses.ProxyAnchorLoss(4, 8).double(),
    }[kind]()
    metrix = losses.Metrix(loss, weight=0.5)
    pairs = metrix.pairs(y, np.random.default_rng(0))
    assert (y[pairs.first] != y[pairs.second]).all() and len(pairs.first) == 18
    mixed = losses.mix(x, pairs)
    torch.testing.assert_close(
        metrix.mixed_loss(x, y, mixed, pairs),
        brute_metrix(loss, x, y, mixed, pairs),
        rtol=1e-9,
        atol=1e-12,
    )
    total = metrix(x, y, np.random.default_rng(0))  # embedding mixup: base + w * mixed
    torch.testing.assert_close(total, loss(x, y) + 0.5 * brute_metrix(loss, x, y, mixed, pairs))


def test_mix_interpolates_rows_of_any_shape() -> None:
    images = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    pairs = losses.MixPairs(
        torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([0.25, 1.0], dtype=torch.float64)
    )
    mixed = losses.mix(images, pairs)
    torch.testing.assert_close(mixed[0], 0.25 * images[0] + 0.75 * images[1])
    torch.testing.assert_close(mixed[1], images[2])


def test_metrix_refuses_losses_the_paper_does_not_mix() -> None:
    with pytest.raises(InvalidInputError, match="contrastive, multi-similarity and proxy-anchor"):
        losses.Metrix(losses.TripletMarginLoss())


# --- degenerate batches ---------------------------------------------------------------------

NEW: dict[str, Callable[[], Callable[..., torch.Tensor]]] = {
    "snr contrastive": lambda: losses.SNRContrastiveLoss(zero_mean_weight=0.1),
    "tcm": losses.ThresholdConsistentMargin,
    "energy confusion": losses.EnergyConfusion,
    "regularized": lambda: losses.Regularized(
        losses.MultiSimilarityLoss(),
        (1.0, losses.ThresholdConsistentMargin()),
        (0.1, losses.EnergyConfusion()),
    ),
    "elasticface-arc": lambda: losses.ElasticArcFaceLoss(6, 6).double(),
    "elasticface-cos-plus": lambda: losses.ElasticCosFaceLoss(6, 6, plus=True).double(),
    "metrix contrastive": lambda: losses.Metrix(losses.ContrastiveLoss()),
    "metrix multi-similarity": lambda: losses.Metrix(losses.MultiSimilarityLoss()),
    "metrix proxy-anchor": lambda: losses.Metrix(losses.ProxyAnchorLoss(6, 6).double()),
}
BATCHES = {
    "one class": (torch.randn(6, 6, dtype=torch.float64), [0] * 6),
    "singletons": (torch.randn(6, 6, dtype=torch.float64), [0, 1, 2, 3, 4, 5]),
    "identical": (torch.ones(6, 6, dtype=torch.float64), [0, 0, 1, 1, 2, 2]),
    "zero vectors": (torch.zeros(6, 6, dtype=torch.float64), [0, 0, 1, 1, 2, 2]),
    "one sample": (torch.randn(1, 6, dtype=torch.float64), [3]),
}


@pytest.mark.parametrize("batch", list(BATCHES))
@pytest.mark.parametrize("name", list(NEW))
def test_degenerate_batches_are_finite(name: str, batch: str) -> None:
    x, labels = BATCHES[batch]
    x = x.clone().requires_grad_(True)
    value = NEW[name]()(x, torch.tensor(labels))
    value.backward()
    assert torch.isfinite(value) and x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", ["snr contrastive", "tcm", "energy confusion", "regularized"])
def test_an_empty_batch_gives_zero(name: str) -> None:
    x = torch.zeros(0, 6, dtype=torch.float64, requires_grad=True)
    value = NEW[name]()(x, torch.zeros(0, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0


def test_snr_of_a_constant_anchor_is_finite() -> None:
    x = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    distance = pairwise_snr(x)
    distance.sum().backward()
    assert torch.isfinite(distance).all() and torch.isfinite(x.grad).all()

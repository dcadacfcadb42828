"""Each loss against a brute-force loop over its tuples, in float64: value and gradient."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from tripletnet import losses
from tripletnet.distances import DotProduct, Euclidean

LABELS = {
    "two classes": [0, 1, 0, 1, 1, 0, 0, 1],
    "three classes": [i % 3 for i in range(15)],
    "singletons mixed in": [0, 0, 0, 1, 1, 2, 3, 4, 4, 4, 5, 0],
    "six classes": [i % 6 for i in range(24)],
}


def batch(name: str, dim: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.tensor(LABELS[name])
    x = torch.randn(len(labels), dim, dtype=torch.float64, generator=generator)
    return x, labels


def euclidean(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(((u - v) ** 2).sum() + 1e-12)


def cosine(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u * v).sum() / (u.norm() * v.norm())


def pairs(labels: torch.Tensor) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Ordered positive pairs (i != j) and negative pairs, listed by a plain loop."""
    positive, negative = [], []
    for i in range(len(labels)):
        for j in range(len(labels)):
            if i != j and labels[i] == labels[j]:
                positive.append((i, j))
            elif labels[i] != labels[j]:
                negative.append((i, j))
    return positive, negative


def reduce_plain(terms: list[torch.Tensor], reduction: str) -> torch.Tensor:
    if not terms:
        return torch.zeros((), dtype=torch.float64)
    total = sum(terms, torch.zeros((), dtype=torch.float64))
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / len(terms)
    nonzero = sum(1 for term in terms if float(term.detach()) != 0)
    return total / max(nonzero, 1)


def assert_same(
    ours: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    reference: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    labels: torch.Tensor,
) -> None:
    """Value and gradient agree to 1e-5 relative."""
    mine = x.clone().requires_grad_(True)
    theirs = x.clone().requires_grad_(True)
    value, expected = ours(mine, labels), reference(theirs, labels)
    torch.testing.assert_close(value, expected.to(value.dtype), rtol=1e-5, atol=1e-10)
    value.backward()
    if expected.requires_grad:
        expected.backward()
    grad_expected = theirs.grad if theirs.grad is not None else torch.zeros_like(x)
    assert mine.grad is not None and torch.isfinite(mine.grad).all()
    torch.testing.assert_close(mine.grad, grad_expected, rtol=1e-5, atol=1e-10)


def triplet_terms(
    x: torch.Tensor,
    labels: torch.Tensor,
    term: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> list[torch.Tensor]:
    positive, negative = pairs(labels)
    terms = []
    for a, p in positive:
        for a2, n in negative:
            if a2 == a:
                terms.append(term(euclidean(x[a], x[p]), euclidean(x[a], x[n])))
    return terms


@pytest.mark.parametrize("name", list(LABELS))
@pytest.mark.parametrize("reduction", ["mean_nonzero", "mean", "sum"])
def test_triplet_margin_batch_all(name: str, reduction: str) -> None:
    x, labels = batch(name)
    loss = losses.TripletMarginLoss(margin=0.5, reduction=reduction)  # type: ignore[arg-type]

    def reference(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        terms = triplet_terms(x, labels, lambda dp, dn: torch.relu(dp - dn + 0.5))
        return reduce_plain(terms, reduction)

    assert_same(loss, reference, x, labels)


@pytest.mark.parametrize("name", ["three classes", "singletons mixed in"])
def test_triplet_soft_margin_and_squared(name: str) -> None:
    x, labels = batch(name)
    soft = losses.TripletMarginLoss(soft_margin=True, reduction="mean")

    def soft_reference(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return reduce_plain(triplet_terms(x, labels, lambda dp, dn: F.softplus(dp - dn)), "mean")

    assert_same(soft, soft_reference, x, labels)
    squared = losses.TripletMarginLoss(margin=1.0, distance=Euclidean(squared=True))

    def squared_reference(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        terms = triplet_terms(x, labels, lambda dp, dn: torch.relu(dp**2 - dn**2 + 1.0))
        return reduce_plain(terms, "mean_nonzero")

    assert_same(squared, squared_reference, x, labels)


@pytest.mark.parametrize("form", ["mse", "nll"])
def test_distance_ratio_over_all_triplets(form: str) -> None:
    x, labels = batch("three classes")
    loss = losses.DistanceRatioTripletLoss(form=form)  # type: ignore[arg-type]

    def term(dp: torch.Tensor, dn: torch.Tensor) -> torch.Tensor:
        p_pos = math.e**dp / (math.e**dp + math.e**dn)
        return p_pos**2 if form == "mse" else -torch.log(1 - p_pos)

    assert_same(loss, lambda x, y: reduce_plain(triplet_terms(x, y, term), "mean"), x, labels)


@pytest.mark.parametrize("name", list(LABELS))
@pytest.mark.parametrize("neg_margin", [0.8, 2.0, 20.0])  # few, some, all negatives inside
def test_contrastive(name: str, neg_margin: float) -> None:
    x, labels = batch(name)
    loss = losses.ContrastiveLoss(pos_margin=0.3, neg_margin=neg_margin)

    def reference(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        positive, negative = pairs(labels)
        terms = [torch.relu(euclidean(x[i], x[j]) - 0.3) ** 2 / 2 for i, j in positive]
        terms += [torch.relu(neg_margin - euclidean(x[i], x[j])) ** 2 / 2 for i, j in negative]
        return reduce_plain(terms, "mean_nonzero")

    assert_same(loss, reference, x, labels)


@pytest.mark.parametrize("name", list(LABELS))
def test_lifted_structure(name: str) -> None:
    x, labels = batch(name, seed=1)
    x = x / 2  # distances near the margin, so that both signs of J occur
    loss = losses.LiftedStructureLoss(neg_margin=1.0)

    def reference(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        positive, negative = pairs(labels)
        terms = []
        for i, j in positive:
            inner = [torch.exp(1.0 - euclidean(x[a], x[k])) for a, k in negative if a in (i, j)]
            joint = torch.log(sum(inner)) + euclidean(x[i], x[j]) if inner else None
            terms.append(torch.relu(joint) ** 2 / 2 if joint is not None else x.sum() * 0)
        return reduce_plain(terms, "mean")

    assert_same(loss, reference, x, labels)


def ntxent_reference(
    similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], temperature: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def reference(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        positive, negative = pairs(labels)
        terms = []
        for a, p in positive:
            top = torch.exp(similarity(x[a], x[p]) / temperature)
            bottom = top + sum(
                (torch.exp(similarity(x[i], x[n]) / temperature) for i, n in negative if i == a),
                torch.zeros((), dtype=torch.float64),
            )
            terms.append(-torch.log(top / bottom))
        return reduce_plain(terms, "mean")

    return reference


@pytest.mark.parametrize("name", list(LABELS))
def test_ntxent_and_npair(name: str) -> None:
    x, labels = batch(name)
    assert_same(losses.NTXentLoss(temperature=0.3), ntxent_reference(cosine, 0.3), x, labels)
    dot = losses.NPairLoss()
    assert_same(dot, ntxent_reference(lambda u, v: (u * v).sum(), 1.0), x / 2, labels)
    assert isinstance(dot.distance, DotProduct)


@pytest.mark.parametrize("name", list(LABELS))
def test_supcon(name: str) -> None:
    x, labels = batch(name)
    t = 0.2

    def reference(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        terms = []
        for a in range(len(labels)):
            others = [k for k in range(len(labels)) if k != a]
            positives = [p for p in others if labels[p] == labels[a]]
            if not positives:
                continue
            log_denominator = torch.log(sum(torch.exp(cosine(x[a], x[k]) / t) for k in others))
            terms.append(
                -sum(cosine(x[a], x[p]) / t - log_denominator for p in positives) / len(positives)
            )
        return reduce_plain(terms, "mean")

    assert_same(losses.SupConLoss(temperature=t), reference, x, labels)


def similarities(
    x: torch.Tensor, labels: torch.Tensor, i: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Cosine similarities of sample i to its positives and to its negatives."""
    others = range(len(labels))
    pos = [cosine(x[i], x[k]) for k in others if k != i and labels[k] == labels[i]]
    neg = [cosine(x[i], x[k]) for k in others if labels[k] != labels[i]]
    return pos, neg


@pytest.mark.parametrize("name", list(LABELS))
def test_multi_similarity(name: str) -> None:
    x, labels = batch(name)
    alpha, beta, base = 2.0, 10.0, 0.3

    def reference(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        terms = []
        for i in range(len(labels)):
            pos, neg = similarities(x, labels, i)
            pull = torch.log(1 + sum((torch.exp(-alpha * (s - base)) for s in pos), x.sum() * 0))
            push = torch.log(1 + sum((torch.exp(beta * (s - base)) for s in neg), x.sum() * 0))
            terms.append(pull / alpha + push / beta)
        return reduce_plain(terms, "mean")

    assert_same(losses.MultiSimilarityLoss(alpha, beta, base), reference, x, labels)


@pytest.mark.parametrize("name", list(LABELS))
def test_circle(name: str) -> None:
    x, labels = batch(name)
    m, gamma = 0.25, 16.0

    def reference(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        terms = []
        for i in range(len(labels)):
            pos, neg = similarities(x, labels, i)
            if not pos or not neg:
                terms.append(x.sum() * 0)
                continue
            pos_sum = sum(
                torch.exp(-gamma * torch.relu(1 + m - s).detach() * (s - 1 + m)) for s in pos
            )
            neg_sum = sum(torch.exp(gamma * torch.relu(s + m).detach() * (s - m)) for s in neg)
            terms.append(torch.log(1 + pos_sum * neg_sum))
        return reduce_plain(terms, "mean_nonzero")

    assert_same(losses.CircleLoss(margin=m, gamma=gamma), reference, x, labels)


def margin_softmax_reference(
    proxies: torch.Tensor, scale: float, target: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def reference(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        terms = []
        for i in range(len(labels)):
            logits = [cosine(x[i], w) for w in proxies]
            logits[int(labels[i])] = target(logits[int(labels[i])])
            terms.append(-torch.log_softmax(scale * torch.stack(logits), dim=0)[int(labels[i])])
        return reduce_plain(terms, "mean")

    return reference


@pytest.mark.parametrize("name", ["three classes", "six classes"])
def test_arcface_and_cosface(name: str) -> None:
    x, labels = batch(name)
    arc = losses.ArcFaceLoss(6, 5, margin=0.5, scale=8.0).double()
    proxies = arc.proxies.detach()

    def widen(c: torch.Tensor) -> torch.Tensor:  # past pi - m the paper's code falls back linearly
        angle = torch.acos(c)
        return torch.cos(angle + 0.5) if angle <= math.pi - 0.5 else c - 0.5 * math.sin(0.5)

    widened = margin_softmax_reference(proxies, 8.0, widen)
    assert_same(arc, widened, x, labels)
    cos = losses.CosFaceLoss(6, 5, margin=0.35, scale=8.0).double()
    shifted = margin_softmax_reference(cos.proxies.detach(), 8.0, lambda c: c - 0.35)
    assert_same(cos, shifted, x, labels)


@pytest.mark.parametrize("name", ["three classes", "six classes"])
def test_proxy_nca_and_proxy_anchor(name: str) -> None:
    x, labels = batch(name)
    nca = losses.ProxyNCALoss(6, 5, scale=3.0).double()
    proxies = F.normalize(nca.proxies.detach(), dim=1)

    def nca_reference(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        terms = []
        for i in range(len(labels)):
            unit = x[i] / x[i].norm()
            logits = torch.stack([-3.0 * ((unit - p) ** 2).sum() for p in proxies])
            terms.append(-torch.log_softmax(logits, dim=0)[int(labels[i])])
        return reduce_plain(terms, "mean")

    assert_same(nca, nca_reference, x, labels)
    anchor = losses.ProxyAnchorLoss(6, 5, margin=0.1, alpha=4.0).double()

    def anchor_reference(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        proxies, present = anchor.proxies.detach(), set(labels.tolist())
        pull, push = x.sum() * 0, x.sum() * 0
        for c, proxy in enumerate(proxies):
            own = [cosine(x[i], proxy) for i in range(len(labels)) if labels[i] == c]
            other = [cosine(x[i], proxy) for i in range(len(labels)) if labels[i] != c]
            if own:
                pull = pull + torch.log(1 + sum(torch.exp(-4.0 * (s - 0.1)) for s in own))
            push = push + torch.log(1 + sum(torch.exp(4.0 * (s + 0.1)) for s in other))
        return pull / len(present) + push / len(proxies)

    assert_same(anchor, anchor_reference, x, labels)

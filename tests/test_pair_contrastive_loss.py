"""Hadsell et al.'s contrastive loss (the Siamese baseline) against a hand computation."""

import pytest
import torch

from tripletnet.losses import PairContrastiveLoss


def test_matches_hand_computation() -> None:
    first = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    second = torch.tensor([[3.0, 4.0], [0.0, 0.5], [0.0, 3.0]])  # D = 5, 0.5, 3
    same = torch.tensor([True, False, False])
    # similar: D^2 / 2 = 12.5; dissimilar inside the margin 2: (2 - 0.5)^2 / 2 = 1.125; outside: 0
    expected = (12.5 + 1.125 + 0.0) / 3
    assert PairContrastiveLoss(margin=2.0)(first, second, same).item() == pytest.approx(
        expected, rel=1e-5
    )


def test_identical_embeddings_give_finite_gradients() -> None:
    x = torch.zeros(3, 4, requires_grad=True)
    PairContrastiveLoss()(x, x, torch.tensor([True, False, True])).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_margin_must_be_positive() -> None:
    with pytest.raises(ValueError, match="margin must be positive"):
        PairContrastiveLoss(margin=0.0)

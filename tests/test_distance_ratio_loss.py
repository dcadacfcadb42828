"""Hoffer & Ailon's distance-ratio loss against a hand computation."""

import math

import pytest
import torch

from tripletnet.losses import DistanceRatioLoss, distance_ratio_loss


def test_mse_form_matches_hand_computation() -> None:
    anchor = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    positive = torch.tensor([[3.0, 4.0], [1.0, 1.0]])  # d+ = 5, 0
    negative = torch.tensor([[0.0, 1.0], [1.0, 3.0]])  # d- = 1, 2
    # softmax(d+, d-)[0] = e^d+ / (e^d+ + e^d-); MSE against (0, 1) averaged over 2 outputs = p+^2
    p1 = math.exp(5) / (math.exp(5) + math.exp(1))
    p2 = 1 / (1 + math.exp(2))
    expected = (p1**2 + p2**2) / 2
    loss = DistanceRatioLoss("mse")(anchor, positive, negative)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_nll_form_matches_hand_computation() -> None:
    d_pos, d_neg = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.5])
    expected = (
        -(
            math.log(math.exp(2) / (math.exp(1) + math.exp(2)))
            + math.log(math.exp(0.5) / (math.exp(3) + math.exp(0.5)))
        )
        / 2
    )
    assert distance_ratio_loss(d_pos, d_neg, "nll").item() == pytest.approx(expected, rel=1e-6)


def test_identical_embeddings_give_finite_gradients() -> None:
    x = torch.ones(4, 8, requires_grad=True)
    loss = DistanceRatioLoss()(x, x, x)
    loss.backward()
    assert torch.isfinite(loss)
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_loss_decreases_when_negative_moves_away() -> None:
    anchor, positive = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    near, far = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 5.0]])
    loss = DistanceRatioLoss()
    assert loss(anchor, positive, far) < loss(anchor, positive, near)


def test_unknown_form_is_refused() -> None:
    with pytest.raises(ValueError, match="'mse' or 'nll'"):
        DistanceRatioLoss("hinge")  # type: ignore[arg-type]

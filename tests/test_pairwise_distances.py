"""The fused pairwise Euclidean distance: values and gradients against plain autograd."""

from __future__ import annotations

import pytest
import torch

from tripletnet.distances import EPS, pairwise_euclidean, pairwise_squared_euclidean


def plain(x: torch.Tensor, y: torch.Tensor, squared: bool) -> torch.Tensor:
    squares = (x[:, None, :] - y[None, :, :]).pow(2).sum(-1)
    return squares if squared else torch.sqrt(squares + EPS)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("symmetric", [False, True])
def test_matches_plain_autograd(squared: bool, symmetric: bool) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    y = x if symmetric else torch.randn(6, 5, dtype=torch.float64, generator=generator)
    y.requires_grad_(True)
    weights = torch.randn(7, len(y), dtype=torch.float64, generator=generator)
    function = pairwise_squared_euclidean if squared else pairwise_euclidean
    value = function(x, None if symmetric else y)
    grads = torch.autograd.grad((value * weights).sum(), [x] if symmetric else [x, y])
    expected = plain(x, y, squared)
    expected_grads = torch.autograd.grad((expected * weights).sum(), [x] if symmetric else [x, y])
    off_diagonal = ~torch.eye(7, len(y), dtype=torch.bool) if symmetric else slice(None)
    torch.testing.assert_close(value[off_diagonal], expected[off_diagonal], rtol=1e-9, atol=1e-9)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-7, atol=1e-7)


def test_identical_rows_give_zero_finite_gradient() -> None:
    x = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
    pairwise_euclidean(x).sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad, torch.zeros_like(x))

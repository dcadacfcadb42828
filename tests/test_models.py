"""Embedding nets: options that reach the layers, and the mixed-precision forward."""

import pytest
import torch

from tripletnet.errors import TripletnetError
from tripletnet.models import build_model
from tripletnet.models.feature_maps import feature_map
from tripletnet.training import TrainConfig


def test_dropout_option_reaches_every_dropout_layer() -> None:
    net = build_model("mnist", (1, 28, 28), dropout=0.5)
    rates = [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    assert rates and all(p == 0.5 for p in rates)


def test_dropout_is_refused_where_it_cannot_apply() -> None:
    with pytest.raises(TripletnetError, match="no dropout"):
        build_model("semisup-mnist", (1, 28, 28), dropout=0.5)
    with pytest.raises(TripletnetError, match="--dropout must be a finite number >= 0 and < 1"):
        TrainConfig(dropout=1.0).resolved()


def test_the_final_relu_can_be_dropped() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 1, 28, 28)
    with_relu, plain = (build_model("mnist", (1, 28, 28), final_relu=f) for f in (None, False))
    plain.load_state_dict(with_relu.state_dict())  # same weights: the ReLU has none
    plain.eval(), with_relu.eval()
    assert with_relu.final_relu is True and (with_relu(x) >= 0).all()
    assert plain.final_relu is False and (plain(x) < 0).any()
    assert torch.equal(with_relu(x), plain(x).clamp(min=0))
    cifar = build_model("cifar", (3, 32, 32), final_relu=False)
    assert not any(isinstance(m, torch.nn.ReLU) for m in list(cifar.net)[-2:])


def test_batch_norm_follows_every_conv_and_normalises_in_training() -> None:
    torch.manual_seed(0)
    for architecture, shape in (("mnist", (1, 28, 28)), ("cifar", (3, 32, 32))):
        net = build_model(architecture, shape, batch_norm=True)
        layers = list(net.net)
        convs = [i for i, m in enumerate(layers) if isinstance(m, torch.nn.Conv2d)]
        assert all(isinstance(layers[i + 1], torch.nn.BatchNorm2d) for i in convs)
        assert net.batch_norm is True and net.layer_options()["batch_norm"] is True
    plain = build_model("mnist", (1, 28, 28))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    first_conv = net.net[:2].train()  # the CIFAR net's first conv and its batch norm
    out = first_conv(torch.randn(32, 3, 32, 32) * 5 + 3)
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (out.var(dim=(0, 2, 3)) - 1).abs().max() < 1e-2


@pytest.mark.parametrize("option", ["final_relu", "batch_norm"])
def test_layer_options_are_refused_where_they_cannot_apply(option: str) -> None:
    flag = option.replace("_", "-")
    with pytest.raises(TripletnetError, match=f"no {flag} choice"):
        build_model("mlp", (64,), **{option: False})
    with pytest.raises(TripletnetError, match=f"no {flag} choice"):
        TrainConfig(**{option: True}).resolved()  # digits: the small-conv net
    with pytest.raises(TripletnetError, match=f"no {flag} choice"):
        build_model("semisup-mnist", (1, 28, 28), **{option: True})


def test_bf16_forward_gives_float32_embeddings_close_to_the_float32_ones() -> None:
    torch.manual_seed(0)
    net = build_model("mnist", (1, 28, 28)).eval()
    x = torch.randn(8, 1, 28, 28)
    full = net(x)
    net.compute_dtype = torch.bfloat16
    mixed = net(x)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, full, atol=0.02 * full.abs().max().item(), rtol=0.05)
    mixed.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in net.parameters())


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(TripletnetError, match="precision must be one of fp32, bf16"):
        TrainConfig(precision="fp8").resolved()


def test_bf16_reaches_the_feature_maps_of_spatial_contrasting() -> None:
    torch.manual_seed(0)
    net = build_model("mnist", (1, 28, 28)).eval()
    x = torch.randn(4, 1, 28, 28)
    full = feature_map(net, x, 3)
    net.compute_dtype = torch.bfloat16
    with torch.autocast("cpu", enabled=False):  # the net itself must switch autocast on
        mixed = feature_map(net, x, 3)
    assert mixed.dtype == torch.float32 and not torch.equal(mixed, full)
    torch.testing.assert_close(mixed, full, atol=0.02 * full.abs().max().item(), rtol=0.05)

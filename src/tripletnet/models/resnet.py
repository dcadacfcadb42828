"""ResNet-18 and ResNet-50 backbones (He et al. 2016, "Deep Residual Learning for Image
Recognition"), in our own code, with torchvision's parameter names so its ImageNet weights load.

A residual block computes ``relu(F(x) + shortcut(x))``: F is two 3x3 convs (BasicBlock,
ResNet-18) or a 1x1-3x3-1x1 bottleneck with 4x expansion (Bottleneck, ResNet-50, the stride on
the 3x3 conv as in torchvision, "ResNet v1.5"); the shortcut is the identity, or a strided 1x1 conv
and batch norm (``downsample``) where the shape changes. The stem is the ImageNet one: a 7x7
stride-2 conv, batch norm, ReLU and a 3x3 stride-2 max-pool. As a backbone the net returns the
global-average-pooled features, (N, 512) or (N, 2048); torchvision's classifier ``fc`` is left
out, and its weights are ignored on load.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ..errors import TripletnetError
from .external import check_state_dict, read_weights

RESNETS = ("resnet18", "resnet50")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


def _downsample(in_planes: int, out_planes: int, stride: int) -> nn.Sequential | None:
    """The projection shortcut (1x1 conv + batch norm) where the block changes the shape."""
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, two 3x3 convs."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """``relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))``: 1x1 down to
    ``planes``, 3x3 (strided), 1x1 up to ``4 * planes``."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """A ResNet backbone: stem, four stages of residual blocks (64, 128, 256, 512 planes; stride
    2 from the second on), global average pooling; (N, C, H, W) -> (N, ``num_features``).

    Any input size works (a 32x32 image reaches layer4 as 1x1) and any number of input channels
    (``in_channels``). Channels-last inputs stay channels-last through the convolutions.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise TripletnetError(f"a ResNet needs at least 1 input channel, got {in_channels}")
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        planes_in = 64
        stages = []
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stride = 1 if index == 0 else 2
            stage = [block(planes_in, planes, stride)]
            planes_in = planes * block.expansion
            stage += [block(planes_in, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = planes_in
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's initialisation: He-normal convs (fan-out), batch norm 1 and 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The layer4 feature map, (N, num_features, H/32, W/32) (rounded up)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise TripletnetError(
                f"this ResNet takes (N, {self.in_channels}, H, W) images, got shape "
                f"{tuple(x.shape)}; build it with in_channels={x.shape[1] if x.ndim == 4 else '?'}"
            )
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.forward_maps(x)), 1)


def resnet18(in_channels: int = 3) -> ResNet:
    """ResNet-18: BasicBlocks (2, 2, 2, 2), 512 features."""
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels)


def resnet50(in_channels: int = 3) -> ResNet:
    """ResNet-50: Bottlenecks (3, 4, 6, 3), 2048 features."""
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels)


def build_resnet(name: str, in_channels: int = 3) -> ResNet:
    """``resnet18`` or ``resnet50`` by name."""
    if name == "resnet18":
        return resnet18(in_channels)
    if name == "resnet50":
        return resnet50(in_channels)
    raise TripletnetError(f"unknown ResNet {name!r}; choose one of: {', '.join(RESNETS)}")


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """The stem's (64, 3, 7, 7) RGB weights for ``in_channels`` inputs. One channel: summed over
    RGB, so a grey image gives what the RGB net gives on (grey, grey, grey). Other counts (timm's
    rule): the RGB filters repeated cyclically and scaled by 3 / in_channels, which keeps the
    response to a constant image exactly when in_channels is a multiple of 3."""
    saved = weight.shape[1]
    if saved == in_channels:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_channels / saved)
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (saved / in_channels)


# torchvision's ResNets by (bottleneck blocks?, blocks per stage)
_DEPTHS: dict[tuple[bool, tuple[int, ...]], str] = {
    (False, (2, 2, 2, 2)): "resnet18",
    (False, (3, 4, 6, 3)): "resnet34",
    (True, (3, 4, 6, 3)): "resnet50",
    (True, (3, 4, 23, 3)): "resnet101",
    (True, (3, 8, 36, 3)): "resnet152",
}


def guess_resnet(names: Iterable[str]) -> str | None:
    """Which torchvision ResNet a state dict's names come from (None: none of them)."""
    names = set(names)
    blocks = tuple(
        len({name.split(".")[1] for name in names if name.startswith(f"layer{stage}.")})
        for stage in range(1, 5)
    )
    return _DEPTHS.get(("layer1.0.conv3.weight" in names, blocks))


def load_torchvision_weights(model: ResNet, path: str | Path) -> None:
    """Load a safetensors file of a torchvision ResNet's ``state_dict()`` (its names, e.g.
    ``layer1.0.conv1.weight``) into ``model``. ``fc.*`` is ignored; RGB stem weights are adapted
    to the model's input channels (:func:`adapt_input_conv`). Names or shapes that do not match
    raise one TripletnetError listing a few of them."""
    tensors = {
        name: tensor for name, tensor in read_weights(path).items() if not name.startswith("fc.")
    }
    stem = tensors.get("conv1.weight")
    if stem is not None and stem.ndim == 4 and stem.shape[1] in (1, 3):
        tensors["conv1.weight"] = adapt_input_conv(stem, model.in_channels)
    ours, theirs = guess_resnet(model.state_dict()), guess_resnet(tensors)
    if theirs is not None and theirs != ours:
        hint = f"the file holds a {theirs}'s weights" + (
            f"; use --model {theirs}"
            if theirs in RESNETS
            else f"; only {' and '.join(RESNETS)} are built in"
        )
    else:
        hint = (
            "save a torchvision ResNet of the same depth with "
            "safetensors.torch.save_file(model.state_dict(), PATH)"
        )
    check_state_dict(model, tensors, path, hint)
    model.load_state_dict(tensors, strict=False)  # strict but for num_batches_tracked


__all__ = [
    "RESNETS",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "adapt_input_conv",
    "build_resnet",
    "guess_resnet",
    "load_torchvision_weights",
    "resnet18",
    "resnet50",
]

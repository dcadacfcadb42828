"""The net your own data gets without ``--model``, chosen from its samples' shape.

Each paper net accepts only some input sizes (nets.py): the ``cifar`` net exactly 32 x 32 (its
convolutions end at 1 x 1 without global pooling), the ``mnist`` net any side from 20 pixels (a
5x5 conv, two 2x2 poolings and two 3x3 convs, then a global max-pool), the ``small-conv`` any
side from 2 (padded convs, one 2x2 pooling, then an adaptive pooling). The rule picks a net
that accepts the shape, in this order:

- vectors (D,) and images smaller than 2 x 2: ``mlp``;
- images with a side under 20 pixels (e.g. the 8 x 8 digits): ``small-conv``;
- 32 x 32 colour (3 channels or more): ``cifar``, the paper's CIFAR-10 net;
- other images up to SMALL_SIDE pixels a side (e.g. 28 x 28 greyscale): ``mnist``, the
  paper's MNIST net (1-32-64-128 feature maps; any number of input channels);
- larger images: ``resnet18`` (a ResNet-18 from scratch, or from ``--weights``).
"""

from __future__ import annotations

SMALL_SIDE = 48  # images up to this many pixels a side get a paper net; larger ones a ResNet
MNIST_MIN_SIDE = 20  # the smallest side the mnist net accepts
SMALL_CONV_MIN_SIDE = 2  # the smallest side the small-conv net accepts (its 2x2 max-pool)


def architecture_for(input_shape: tuple[int, ...]) -> str:
    """The net for samples of ``input_shape`` ((D,) vectors or (C, H, W) images): see above."""
    if len(input_shape) != 3:
        return "mlp"
    channels, height, width = input_shape
    side = min(height, width)
    if side < SMALL_CONV_MIN_SIDE:
        return "mlp"
    if side < MNIST_MIN_SIDE:
        return "small-conv"
    if (height, width) == (32, 32) and channels >= 3:
        return "cifar"
    if max(height, width) <= SMALL_SIDE:
        return "mnist"
    return "resnet18"


def describe_input(input_shape: tuple[int, ...]) -> str:
    """``28x28 greyscale images``, ``32x32 colour images``, ``64-d vectors``..."""
    if len(input_shape) != 3:
        size = 1
        for part in input_shape:
            size *= part
        return f"{size}-d vectors"
    channels, height, width = input_shape
    kind = {1: "greyscale", 3: "colour"}.get(channels, f"{channels}-channel")
    return f"{height}x{width} {kind} images"


def choice_line(architecture: str, input_shape: tuple[int, ...]) -> str:
    """The one line a run prints when it chose its net from the data."""
    return f"net: {architecture} ({describe_input(input_shape)}; --model to choose another)"
